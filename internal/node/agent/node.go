package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	baseversion "k8s.io/component-base/version"
	"k8s.io/utils/ptr"

	"volplane/internal/logging"
)

const (
	// ControllerManagedAttachAnnotation tells the attach/detach
	// controller that it, not the node, attaches this node's volumes.
	ControllerManagedAttachAnnotation = "volumes.kubernetes.io/controller-managed-attach-detach"
	// statusCheckPeriod is how often the agent looks for a change the
	// Node's status must show.
	statusCheckPeriod = time.Second
	// statusMinInterval is the least time between two writes of the
	// status for a change of the volumes in use, so that a burst of new
	// pods costs a few writes, not one each.
	statusMinInterval = 100 * time.Millisecond
	// maxPods is the pods capacity the Node reports, upstream's default.
	maxPods = 110
)

// nodeObject is the Node as the agent registers it: labels, the
// attach/detach annotation and the parts of the status that do not
// change while the agent runs.
func (a *Agent) nodeObject() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: a.cfg.NodeName,
			Labels: map[string]string{
				corev1.LabelHostname:   a.cfg.NodeName,
				corev1.LabelOSStable:   runtime.GOOS,
				corev1.LabelArchStable: runtime.GOARCH,
			},
			Annotations: map[string]string{ControllerManagedAttachAnnotation: "true"},
		},
	}
}

// registerNode creates the Node, or brings an existing one's labels and
// annotation back to what the agent sets, leaving everything else (a
// user's labels and taints) as it is.
func (a *Agent) registerNode(ctx context.Context) error {
	want := a.nodeObject()
	nodes := a.client.CoreV1().Nodes()
	if _, err := nodes.Create(ctx, want, metav1.CreateOptions{}); err == nil {
		return nil
	} else if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node %s: %w", a.cfg.NodeName, err)
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		changed := false
		for _, m := range []struct{ have, want *map[string]string }{
			{&cur.Labels, &want.Labels}, {&cur.Annotations, &want.Annotations},
		} {
			if *m.have == nil {
				*m.have = map[string]string{}
			}
			for k, v := range *m.want {
				if (*m.have)[k] != v {
					(*m.have)[k] = v
					changed = true
				}
			}
		}
		if !changed {
			return nil
		}
		_, err = nodes.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// updateStatus writes the Node's status: capacity, addresses, the
// kubelet endpoint, node info, conditions and volumesInUse. It patches
// only those fields, as the kubelet does: an update of the whole object
// would carry the spec it read, and NodeRestriction refuses a node that
// seems to change its own taints when the node-lifecycle controller has
// changed them meanwhile. status.volumesAttached stays the attach/detach
// controller's. Once the write succeeded it tells the volume manager
// which volumes the Node returned lists in volumesInUse (upstream's
// markVolumesFromNode): an attachable volume is staged only after that,
// so the attach/detach controller never detaches a volume being staged.
// It returns that list.
func (a *Agent) updateStatus(ctx context.Context) ([]corev1.UniqueVolumeName, error) {
	nodes := a.heartbeat.CoreV1().Nodes()
	cur, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	st := cur.Status.DeepCopy()
	a.fillStatus(st, time.Now())
	patch, err := json.Marshal(map[string]any{"status": map[string]any{
		"capacity":        st.Capacity,
		"allocatable":     st.Allocatable,
		"addresses":       st.Addresses,
		"daemonEndpoints": st.DaemonEndpoints,
		"nodeInfo":        st.NodeInfo,
		"conditions":      st.Conditions,
		"volumesInUse":    st.VolumesInUse,
	}})
	if err != nil {
		return nil, err
	}
	updated, err := nodes.PatchStatus(ctx, a.cfg.NodeName, patch)
	if err != nil {
		return nil, err
	}
	if a.volumes != nil {
		a.volumes.MarkVolumesAsReportedInUse(updated.Status.VolumesInUse)
	}
	for _, reason := range conditionEvents(cur.Status.Conditions, st.Conditions) {
		a.recordNodeEvent(reason, fmt.Sprintf("Node %s status is now: %s", a.cfg.NodeName, reason))
	}
	return updated.Status.VolumesInUse, nil
}

// conditionEvents are the events upstream's kubelet records when it sets
// the Node's conditions from old to new: a pressure condition that is new
// or changes status ("NodeHasSufficientMemory", ...), and Ready when an
// existing condition changes ("NodeReady", "NodeNotReady"); in the order
// of new.
func conditionEvents(old, new []corev1.NodeCondition) []string {
	reasons := map[corev1.NodeConditionType][2]string{ // status True, else
		corev1.NodeMemoryPressure: {"NodeHasInsufficientMemory", "NodeHasSufficientMemory"},
		corev1.NodeDiskPressure:   {"NodeHasDiskPressure", "NodeHasNoDiskPressure"},
		corev1.NodePIDPressure:    {"NodeHasInsufficientPID", "NodeHasSufficientPID"},
		corev1.NodeReady:          {"NodeReady", "NodeNotReady"},
	}
	var out []string
	for _, c := range new {
		r, ok := reasons[c.Type]
		if !ok {
			continue
		}
		i := slices.IndexFunc(old, func(o corev1.NodeCondition) bool { return o.Type == c.Type })
		if (i >= 0 && old[i].Status == c.Status) || (i < 0 && c.Type == corev1.NodeReady) {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			out = append(out, r[0])
		} else {
			out = append(out, r[1])
		}
	}
	return out
}

// recordNodeEvent posts a Normal event about the Node, as upstream's
// kubelet does: its reference to the Node carries the node's name as UID
// (kubectl describe node looks for both that and the object's UID).
func (a *Agent) recordNodeEvent(reason, message string) {
	if a.recorder == nil {
		return
	}
	ref := &corev1.ObjectReference{Kind: "Node", Name: a.cfg.NodeName, UID: types.UID(a.cfg.NodeName)}
	a.recorder.Event(ref, corev1.EventTypeNormal, reason, message)
}

// fillStatus sets everything the agent reports in status, keeping the
// conditions' transition times while their status stays.
func (a *Agent) fillStatus(s *corev1.NodeStatus, now time.Time) {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:  *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourcePods: *resource.NewQuantity(maxPods, resource.DecimalSI),
	}
	if mem, err := memTotal(); err == nil {
		capacity[corev1.ResourceMemory] = *resource.NewQuantity(mem, resource.BinarySI)
	}
	var st unix.Statfs_t
	if unix.Statfs(a.cfg.RootDir, &st) == nil {
		capacity[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(st.Blocks)*st.Bsize, resource.BinarySI)
	}
	s.Capacity = capacity
	s.Allocatable = capacity.DeepCopy()
	s.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: a.nodeIP},
		{Type: corev1.NodeHostName, Address: a.cfg.NodeName},
	}
	s.DaemonEndpoints.KubeletEndpoint.Port = int32(a.cfg.KubeletPort)
	s.NodeInfo = a.nodeInfo()
	if inUse, ok := a.volumesInUse(); ok {
		s.VolumesInUse = inUse
	}

	conds := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	for i := range conds {
		c := &conds[i]
		c.LastHeartbeatTime = metav1.NewTime(now)
		c.LastTransitionTime = metav1.NewTime(now)
		if j := slices.IndexFunc(s.Conditions, func(o corev1.NodeCondition) bool { return o.Type == c.Type }); j >= 0 && s.Conditions[j].Status == c.Status {
			c.LastTransitionTime = s.Conditions[j].LastTransitionTime
		}
	}
	s.Conditions = conds
}

// volumesInUse is the Node's status.volumesInUse, sorted; false until
// the volume manager has reconstructed what was mounted before a restart,
// when the Node's list is to be kept as it is, as upstream's kubelet
// keeps it: a shorter list would let the attach/detach controller detach
// a volume still mounted here.
func (a *Agent) volumesInUse() ([]corev1.UniqueVolumeName, bool) {
	if a.volumes == nil {
		return nil, true
	}
	if !a.volumes.StatesSynced() {
		return nil, false
	}
	v := a.volumes.VolumesInUse()
	slices.Sort(v)
	return v, true
}

func (a *Agent) nodeInfo() corev1.NodeSystemInfo {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return corev1.NodeSystemInfo{
		MachineID:               readTrimmed("/etc/machine-id"),
		SystemUUID:              readTrimmed("/sys/class/dmi/id/product_uuid"),
		BootID:                  readTrimmed("/proc/sys/kernel/random/boot_id"),
		KernelVersion:           unix.ByteSliceToString(u.Release[:]),
		OSImage:                 osImage(),
		ContainerRuntimeVersion: a.runtimeVersion,
		KubeletVersion:          baseversion.Get().GitVersion,
		OperatingSystem:         runtime.GOOS,
		Architecture:            runtime.GOARCH,
	}
}

// runLease keeps the Node's Lease in kube-node-lease renewed, so that
// upstream's node-lifecycle controller sees the node alive.
func (a *Agent) runLease(ctx context.Context) {
	log := logging.FromContext(ctx)
	tick := time.NewTicker(a.cfg.LeaseRenewInterval)
	defer tick.Stop()
	for {
		if err := a.renewLease(ctx); err != nil && ctx.Err() == nil {
			log.Warn("renewing the node lease", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (a *Agent) renewLease(ctx context.Context) error {
	leases := a.heartbeat.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(a.cfg.NodeName),
				LeaseDurationSeconds: ptr.To(int32(a.cfg.LeaseDuration / time.Second)),
				RenewTime:            &now,
			},
		}
		if node, err := a.heartbeat.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{}); err == nil {
			lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.HolderIdentity = ptr.To(a.cfg.NodeName)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(a.cfg.LeaseDuration / time.Second))
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// runStatus writes the Node's status every StatusUpdateFrequency, and
// as soon as the volumes in use differ from those the last successful
// write listed (at most every statusMinInterval): the attach/detach
// controller reads them before it detaches, and the volume manager stages
// a new attachable volume only once a write has listed it, so that write
// is on the path of every pod start. last is what the write before it
// listed (nil when it failed).
func (a *Agent) runStatus(ctx context.Context, last []corev1.UniqueVolumeName) {
	log := logging.FromContext(ctx)
	tick := time.NewTicker(statusCheckPeriod)
	defer tick.Stop()
	var changed <-chan struct{}
	arm := func() {
		if a.volumes != nil {
			changed = a.volumes.VolumesInUseChanged()
		}
	}
	arm()
	written, attempted := time.Now(), time.Time{}
	for {
		inUse, synced := a.volumesInUse()
		if (synced && !slices.Equal(inUse, last)) || time.Since(written) >= a.cfg.StatusUpdateFrequency {
			if wait := statusMinInterval - time.Since(attempted); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			attempted = time.Now()
			if listed, err := a.updateStatus(ctx); err != nil {
				if ctx.Err() == nil {
					log.Warn("updating the node status", "err", err)
				}
			} else {
				last, written = listed, time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-changed:
		}
		// Armed again before the next look, so no change is missed.
		arm()
	}
}

func memTotal() (int64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}

func readTrimmed(path string) string {
	data, _ := os.ReadFile(path)
	return strings.TrimSpace(string(data))
}

func osImage() string {
	data, _ := os.ReadFile("/etc/os-release")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}
