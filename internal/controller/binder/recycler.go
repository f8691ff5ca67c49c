package binder

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// RecyclerPodConfig configures the recycler pod.
type RecyclerPodConfig struct {
	// Namespace of recycler pods (upstream: default).
	Namespace string
	// Image runs the scrub; any image with sh, find, test and ls.
	Image string
	// Timeout is the pod's activeDeadlineSeconds; the recycle fails
	// after it.
	Timeout time.Duration
	// PollInterval is how often the pod's phase and events are read.
	PollInterval time.Duration
}

func (c *RecyclerPodConfig) setDefaults() {
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.Image == "" {
		c.Image = "busybox"
	}
	if c.Timeout == 0 {
		c.Timeout = time.Minute
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
}

func (c *RecyclerPodConfig) validate() error {
	if c.Timeout < time.Second {
		return fmt.Errorf("recycler pod timeout %v is under a second", c.Timeout)
	}
	return nil
}

// recyclerScript empties /scrub and fails if anything is left, as
// upstream's recycler pod does.
const recyclerScript = `test -e /scrub && find /scrub -mindepth 1 -delete && test -z "$(ls -A /scrub)" || exit 1`

// annRecycledVolume marks a recycler pod with the UID of its volume.
const annRecycledVolume = "volplane.io/recycled-volume-uid"

// PodRecycler scrubs hostPath, local and NFS volumes with a pod, as
// upstream's recycler does: the pod mounts the volume at /scrub and
// deletes its content. It needs a node to run the pod; a local volume's
// pod is placed by the volume's node affinity.
type PodRecycler struct {
	client kubernetes.Interface
	cfg    RecyclerPodConfig
}

var _ Recycler = (*PodRecycler)(nil)

// NewPodRecycler returns a recycler creating pods through client.
func NewPodRecycler(client kubernetes.Interface, cfg RecyclerPodConfig) *PodRecycler {
	cfg.setDefaults()
	return &PodRecycler{client: client, cfg: cfg}
}

// recyclerPod returns the pod that scrubs pv, or ErrNotRecyclable.
func (r *PodRecycler) recyclerPod(pv *v1.PersistentVolume) (*v1.Pod, error) {
	var src v1.VolumeSource
	var affinity *v1.Affinity
	switch {
	case pv.Spec.HostPath != nil:
		src.HostPath = &v1.HostPathVolumeSource{Path: pv.Spec.HostPath.Path}
	case pv.Spec.Local != nil:
		src.HostPath = &v1.HostPathVolumeSource{Path: pv.Spec.Local.Path}
		if pv.Spec.NodeAffinity != nil && pv.Spec.NodeAffinity.Required != nil {
			affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: pv.Spec.NodeAffinity.Required.DeepCopy(),
			}}
		}
	case pv.Spec.NFS != nil:
		src.NFS = &v1.NFSVolumeSource{Server: pv.Spec.NFS.Server, Path: pv.Spec.NFS.Path}
	default:
		return nil, fmt.Errorf("volume %s: %w", pv.Name, ErrNotRecyclable)
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "recycler-for-" + pv.Name,
			Namespace:   r.cfg.Namespace,
			Annotations: map[string]string{annRecycledVolume: string(pv.UID)},
		},
		Spec: v1.PodSpec{
			RestartPolicy:         v1.RestartPolicyNever,
			ActiveDeadlineSeconds: ptr.To(int64(r.cfg.Timeout.Seconds())),
			Affinity:              affinity,
			Containers: []v1.Container{{
				Name:         "pv-recycler",
				Image:        r.cfg.Image,
				Command:      []string{"/bin/sh"},
				Args:         []string{"-c", recyclerScript},
				VolumeMounts: []v1.VolumeMount{{Name: "vol", MountPath: "/scrub"}},
			}},
			Volumes: []v1.Volume{{Name: "vol", VolumeSource: src}},
		},
	}, nil
}

// Recycle runs the recycler pod to completion and deletes it.
func (r *PodRecycler) Recycle(ctx context.Context, pv *v1.PersistentVolume, event func(eventtype, message string)) error {
	pod, err := r.recyclerPod(pv)
	if err != nil {
		return err
	}
	pods := r.client.CoreV1().Pods(pod.Namespace)
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		// A pod left by an earlier attempt (or a crash): reuse it if it
		// scrubs this volume and is not going away.
		old, gerr := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("reading recycler pod %s: %w", pod.Name, gerr)
		}
		if old.Annotations[annRecycledVolume] != string(pv.UID) || old.DeletionTimestamp != nil {
			return fmt.Errorf("recycler pod %s/%s exists for another volume or is being deleted", pod.Namespace, pod.Name)
		}
		created = old
	case err != nil:
		return fmt.Errorf("creating recycler pod: %w", err)
	}
	defer func() {
		// The pod is done or given up on; it must not outlive the attempt.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = pods.Delete(dctx, created.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &created.UID}})
	}()

	deadline := time.Now().Add(r.cfg.Timeout + 30*time.Second)
	seen := map[types.UID]bool{}
	for {
		r.forwardEvents(ctx, created, seen, event)
		p, err := pods.Get(ctx, created.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return errors.New("recycler pod was deleted")
		case err != nil:
			return fmt.Errorf("reading recycler pod: %w", err)
		case p.Status.Phase == v1.PodSucceeded:
			return nil
		case p.Status.Phase == v1.PodFailed:
			// Upstream's recycler client words it so.
			msg := p.Status.Message
			if msg == "" {
				msg = "pod failed, pod.Status.Message unknown"
			}
			return fmt.Errorf("failed to recycle volume: %s", msg)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("recycler pod did not finish within %v", r.cfg.Timeout)
		}
		if err := sleep(ctx, r.cfg.PollInterval); err != nil {
			return err
		}
	}
}

// forwardEvents passes the pod's new events on, so that the volume's
// events say what happened to its recycler.
func (r *PodRecycler) forwardEvents(ctx context.Context, pod *v1.Pod, seen map[types.UID]bool, event func(string, string)) {
	list, err := r.client.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.name": pod.Name, "involvedObject.uid": string(pod.UID)}.String(),
	})
	if err != nil {
		return
	}
	for _, e := range list.Items {
		if seen[e.UID] || e.InvolvedObject.UID != pod.UID {
			continue
		}
		seen[e.UID] = true
		event(e.Type, e.Message)
	}
}
