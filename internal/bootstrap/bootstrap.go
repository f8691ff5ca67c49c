// Package bootstrap makes the objects `volplane up` promises exist on a
// fresh cluster: the default StorageClass of the built-in driver, which it
// only creates when missing and never overwrites, and the built-in
// driver's CSIDriver object (csidriver.go), whose fields the driver owns
// are set back when they drift while the others are left as they are.
package bootstrap

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"volplane/internal/csidriver"
)

const (
	// DefaultStorageClass is the class `volplane up` creates.
	DefaultStorageClass = "volplane-local"
	// DefaultClassAnnotation marks the cluster's default StorageClass.
	DefaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"
)

// DefaultClass is the StorageClass `volplane up` creates.
func DefaultClass() *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        DefaultStorageClass,
			Annotations: map[string]string{DefaultClassAnnotation: "true"},
		},
		Provisioner:          csidriver.DriverName,
		ReclaimPolicy:        ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode:    ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
		AllowVolumeExpansion: ptr.To(true),
	}
}

// EnsureDefaultClass creates the default StorageClass unless it exists.
func EnsureDefaultClass(ctx context.Context, cs kubernetes.Interface) error {
	_, err := cs.StorageV1().StorageClasses().Create(ctx, DefaultClass(), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("storage class %s: %w", DefaultStorageClass, err)
	}
	return nil
}

// NoProvisioner is the provisioner of classes whose PVs are made
// beforehand (local PVs): the PV controller never provisions for them.
const NoProvisioner = "kubernetes.io/no-provisioner"

// LocalClass is the class of the local static provisioner's PVs
// (--local-storage-class): no provisioner, WaitForFirstConsumer (a claim
// is bound once the scheduler has chosen a node for its pod), Delete.
func LocalClass(name string) *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: name},
		Provisioner:       NoProvisioner,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
}

// EnsureLocalClass creates the local PVs' class name unless it exists.
func EnsureLocalClass(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.StorageV1().StorageClasses().Create(ctx, LocalClass(name), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("storage class %s: %w", name, err)
	}
	return nil
}

// WaitForDefaultServiceAccount waits until upstream's service account
// controller has made the default namespace's "default" service account:
// until then admission refuses every pod there ("serviceaccount
// \"default\" not found"), so `up` is not ready for `kubectl run` before.
func WaitForDefaultServiceAccount(ctx context.Context, cs kubernetes.Interface) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the default service account: %w", err)
	}
	return nil
}
