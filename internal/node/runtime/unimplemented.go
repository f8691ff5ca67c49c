package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// unimplemented is the error of a CRI method this runtime does not offer.
func unimplemented(method string) error {
	return status.Errorf(codes.Unimplemented, "%s is not implemented by volplane's runtime", method)
}

// ReopenContainerLog implements RuntimeService: conmon reopens the log
// file when told so on the container's control fifo.
func (r *Runtime) ReopenContainerLog(ctx context.Context, id string) error {
	if _, err := r.running(id); err != nil {
		return err
	}
	ctl, err := os.OpenFile(filepath.Join(r.bundle(id), "ctl"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("reopen log of %s: %w", id, err)
	}
	defer ctl.Close()
	_, err = ctl.WriteString("2 0 0\n")
	return err
}

// Exec implements RuntimeService. The URL-returning variant needs a
// streaming server of the runtime's own; volplane's kubelet API calls
// Streamer.Exec instead.
func (r *Runtime) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	return nil, unimplemented("Exec (use Runtime.Streamer)")
}

// Attach implements RuntimeService; see Exec.
func (r *Runtime) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	return nil, unimplemented("Attach (use Runtime.Streamer)")
}

// PortForward implements RuntimeService; see Exec.
func (r *Runtime) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	return nil, unimplemented("PortForward (use Runtime.Streamer)")
}

// CheckpointContainer implements RuntimeService.
func (r *Runtime) CheckpointContainer(ctx context.Context, req *runtimeapi.CheckpointContainerRequest) error {
	return unimplemented("CheckpointContainer")
}

// GetContainerEvents implements RuntimeService. Without events the
// kubelet (and volplane's agent) relists.
func (r *Runtime) GetContainerEvents(ctx context.Context, ch chan *runtimeapi.ContainerEventResponse, connected func(runtimeapi.RuntimeService_GetContainerEventsClient)) error {
	return unimplemented("GetContainerEvents")
}

// UpdatePodSandboxResources implements RuntimeService.
func (r *Runtime) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	return nil, unimplemented("UpdatePodSandboxResources")
}

// CheckpointPod implements RuntimeService.
func (r *Runtime) CheckpointPod(ctx context.Context, req *runtimeapi.CheckpointPodRequest) error {
	return unimplemented("CheckpointPod")
}

// RestorePod implements RuntimeService.
func (r *Runtime) RestorePod(ctx context.Context, req *runtimeapi.RestorePodRequest) (*runtimeapi.RestorePodResponse, error) {
	return nil, unimplemented("RestorePod")
}

// PodSandboxStats implements RuntimeService.
func (r *Runtime) PodSandboxStats(ctx context.Context, id string) (*runtimeapi.PodSandboxStats, error) {
	return nil, unimplemented("PodSandboxStats")
}

// ListPodSandboxStats implements RuntimeService.
func (r *Runtime) ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	return nil, unimplemented("ListPodSandboxStats")
}

// ListMetricDescriptors implements RuntimeService.
func (r *Runtime) ListMetricDescriptors(ctx context.Context) ([]*runtimeapi.MetricDescriptor, error) {
	return nil, unimplemented("ListMetricDescriptors")
}

// ListPodSandboxMetrics implements RuntimeService.
func (r *Runtime) ListPodSandboxMetrics(ctx context.Context) ([]*runtimeapi.PodSandboxMetrics, error) {
	return nil, unimplemented("ListPodSandboxMetrics")
}
