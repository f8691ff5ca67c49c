package csrapprover

import (
	"context"
	"fmt"
	"sync"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	certificateslisters "k8s.io/client-go/listers/certificates/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"volplane/internal/controller"
	"volplane/internal/logging"
)

// Name is the controller's name in the manager.
const Name = "kubelet-serving-csr-approver"

// ApprovedReason and approvedMessage are written in the Approved
// condition, as upstream's csrapproving writes "AutoApproved".
const (
	ApprovedReason  = "AutoApproved"
	approvedMessage = "Auto approving kubelet serving certificate: requested by node %s for its own addresses."
)

// byNode indexes kubelet-serving CSRs by the node that asked.
const byNode = "node"

// Descriptor returns the manager's descriptor for the approver.
func Descriptor() controller.Descriptor {
	return controller.Descriptor{
		Name: Name,
		Init: func(_ context.Context, cctx *controller.Context) (controller.Controller, error) {
			return New(cctx.Client, cctx.Informers)
		},
	}
}

// Controller approves kubelet-serving CSRs that pass decide.
type Controller struct {
	client kubernetes.Interface
	csrs   certificateslisters.CertificateSigningRequestLister
	index  cache.Indexer
	nodes  corelisters.NodeLister
	queue  workqueue.TypedRateLimitingInterface[string]
	synced []cache.InformerSynced
}

// New builds the approver and registers its informers: CSRs, and Nodes,
// so that a CSR that asked before its Node listed the addresses is
// looked at again when they appear.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory) (*Controller, error) {
	csrInf := factory.Certificates().V1().CertificateSigningRequests()
	nodeInf := factory.Core().V1().Nodes()
	if err := csrInf.Informer().AddIndexers(cache.Indexers{byNode: indexByNode}); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	c := &Controller{
		client: client,
		csrs:   csrInf.Lister(),
		index:  csrInf.Informer().GetIndexer(),
		nodes:  nodeInf.Lister(),
		queue:  controller.NewQueue(Name),
	}
	csrReg, err := csrInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onCSR,
		UpdateFunc: func(_, obj any) { c.onCSR(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	nodeReg, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onNode,
		UpdateFunc: func(_, obj any) { c.onNode(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	c.synced = []cache.InformerSynced{csrReg.HasSynced, nodeReg.HasSynced}
	return c, nil
}

// indexByNode indexes a pending kubelet-serving CSR under its node.
func indexByNode(obj any) ([]string, error) {
	csr, ok := obj.(*certificatesv1.CertificateSigningRequest)
	if !ok || !ours(csr) {
		return nil, nil
	}
	return []string{nodeOf(csr)}, nil
}

// ours reports whether csr is a pending kubelet-serving CSR from a node.
func ours(csr *certificatesv1.CertificateSigningRequest) bool {
	return csr.Spec.SignerName == certificatesv1.KubeletServingSignerName && nodeOf(csr) != "" && pending(csr)
}

func (c *Controller) onCSR(obj any) {
	if csr, ok := obj.(*certificatesv1.CertificateSigningRequest); ok && ours(csr) {
		c.queue.Add(csr.Name)
	}
}

func (c *Controller) onNode(obj any) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	objs, err := c.index.ByIndex(byNode, node.Name)
	if err != nil {
		return
	}
	for _, o := range objs {
		c.onCSR(o)
	}
}

// Run approves CSRs until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	logging.FromContext(ctx).Info("starting the kubelet serving CSR approver")
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			key, quit := c.queue.Get()
			if quit {
				return
			}
			_ = controller.Process(ctx, c.queue, key, c.sync)
			c.queue.Done(key)
		}
	})
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

// sync approves the CSR name if decide allows it, and otherwise leaves it
// pending: it is looked at again when it or its Node changes.
func (c *Controller) sync(ctx context.Context, name string) error {
	csr, err := c.csrs.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !ours(csr) {
		return nil
	}
	log := logging.FromContext(ctx).With("csr", name, "requester", csr.Spec.Username)
	node, err := c.nodes.Get(nodeOf(csr)) // nil when there is none
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if why := decide(csr, node); why != nil {
		log.Info("leaving kubelet serving CSR pending", "reason", why.Error())
		return nil
	}
	clone := csr.DeepCopy()
	clone.Status.Conditions = append(clone.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type:           certificatesv1.CertificateApproved,
		Status:         corev1.ConditionTrue,
		Reason:         ApprovedReason,
		Message:        fmt.Sprintf(approvedMessage, node.Name),
		LastUpdateTime: metav1.Now(),
	})
	if _, err := c.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, name, clone, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("approving CSR %s: %w", name, err)
	}
	log.Info("approved kubelet serving CSR", "node", node.Name)
	return nil
}
