package bootstrap

import (
	"context"
	"fmt"
	"slices"

	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"volplane/internal/csidriver"
)

// BuiltinDriver is the CSIDriver object of the built-in driver: volumes
// are attached (ControllerPublish pins them to their node) and staged,
// pods' identity reaches NodePublish, capacity is published per node,
// fsGroup applies to its filesystems, persistent and inline (ephemeral)
// volumes.
func BuiltinDriver() *storagev1.CSIDriver {
	return &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: csidriver.DriverName},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:       ptr.To(true),
			PodInfoOnMount:       ptr.To(true),
			StorageCapacity:      ptr.To(true),
			FSGroupPolicy:        ptr.To(storagev1.FileFSGroupPolicy),
			RequiresRepublish:    ptr.To(false),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral},
		},
	}
}

// EnsureBuiltinDriver makes the built-in driver's CSIDriver object exist
// with the fields BuiltinDriver sets; the other fields are left as they
// are. A drifted mutable field is set back by an update; a drifted
// immutable one (attachRequired, volumeLifecycleModes) can only be set
// back by deleting the object and creating it again, which also lets the
// garbage collector take capacity objects owned by the old one (the
// capacity controller publishes them again for the new one).
func EnsureBuiltinDriver(ctx context.Context, cs kubernetes.Interface) error {
	want := BuiltinDriver()
	api := cs.StorageV1().CSIDrivers()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := api.Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = api.Create(ctx, want, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		if !sameImmutable(&cur.Spec, &want.Spec) {
			uid := cur.UID
			err := api.Delete(ctx, want.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
			if err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			_, err = api.Create(ctx, want, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				// Someone created it in between: look again.
				return apierrors.NewConflict(storagev1.Resource("csidrivers"), want.Name, err)
			}
			return err
		}
		if sameMutable(&cur.Spec, &want.Spec) {
			return nil
		}
		upd := cur.DeepCopy()
		upd.Spec.PodInfoOnMount = want.Spec.PodInfoOnMount
		upd.Spec.StorageCapacity = want.Spec.StorageCapacity
		upd.Spec.FSGroupPolicy = want.Spec.FSGroupPolicy
		upd.Spec.RequiresRepublish = want.Spec.RequiresRepublish
		_, err = api.Update(ctx, upd, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("CSIDriver %s: %w", want.Name, err)
	}
	return nil
}

func sameImmutable(a, b *storagev1.CSIDriverSpec) bool {
	return ptr.Equal(a.AttachRequired, b.AttachRequired) && slices.Equal(a.VolumeLifecycleModes, b.VolumeLifecycleModes)
}

func sameMutable(a, b *storagev1.CSIDriverSpec) bool {
	return ptr.Equal(a.PodInfoOnMount, b.PodInfoOnMount) && ptr.Equal(a.StorageCapacity, b.StorageCapacity) &&
		ptr.Equal(a.FSGroupPolicy, b.FSGroupPolicy) && ptr.Equal(a.RequiresRepublish, b.RequiresRepublish)
}
