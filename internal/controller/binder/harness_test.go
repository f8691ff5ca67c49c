package binder

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/utils/ptr"

	"volplane/internal/controller/podindex"
	"volplane/internal/logging"
)

// ---- objects ----

type pvOpt func(*v1.PersistentVolume)

func newPV(name, size string, opts ...pvOpt) *v1.PersistentVolume {
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)},
		Spec: v1.PersistentVolumeSpec{
			Capacity:                      v1.ResourceList{v1.ResourceStorage: resource.MustParse(size)},
			AccessModes:                   []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: v1.PersistentVolumeReclaimRetain,
			VolumeMode:                    ptr.To(v1.PersistentVolumeFilesystem),
			PersistentVolumeSource:        v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/data/" + name}},
		},
		Status: v1.PersistentVolumeStatus{Phase: v1.VolumeAvailable},
	}
	for _, o := range opts {
		o(pv)
	}
	return pv
}

func pvClass(c string) pvOpt { return func(pv *v1.PersistentVolume) { pv.Spec.StorageClassName = c } }
func pvModes(m ...v1.PersistentVolumeAccessMode) pvOpt {
	return func(pv *v1.PersistentVolume) { pv.Spec.AccessModes = m }
}
func pvPhase(p v1.PersistentVolumePhase) pvOpt {
	return func(pv *v1.PersistentVolume) { pv.Status.Phase = p }
}
func pvPolicy(p v1.PersistentVolumeReclaimPolicy) pvOpt {
	return func(pv *v1.PersistentVolume) { pv.Spec.PersistentVolumeReclaimPolicy = p }
}
func pvBlock() pvOpt {
	return func(pv *v1.PersistentVolume) { pv.Spec.VolumeMode = ptr.To(v1.PersistentVolumeBlock) }
}
func pvLabels(kv ...string) pvOpt {
	return func(pv *v1.PersistentVolume) {
		pv.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			pv.Labels[kv[i]] = kv[i+1]
		}
	}
}
func pvAnn(k, v string) pvOpt {
	return func(pv *v1.PersistentVolume) { metav1.SetMetaDataAnnotation(&pv.ObjectMeta, k, v) }
}
func pvDeleting() pvOpt {
	return func(pv *v1.PersistentVolume) {
		pv.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
		pv.Finalizers = []string{"kubernetes.io/pv-protection"}
	}
}

// pvClaim sets claimRef to default/<claim>; uid "" pre-binds by name.
func pvClaim(claim string, uid types.UID) pvOpt {
	return func(pv *v1.PersistentVolume) {
		ns, name := "default", claim
		if i := strings.IndexByte(claim, '/'); i >= 0 {
			ns, name = claim[:i], claim[i+1:]
		}
		pv.Spec.ClaimRef = &v1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns, Name: name, UID: uid}
	}
}

type pvcOpt func(*v1.PersistentVolumeClaim)

func newPVC(name, size string, opts ...pvcOpt) *v1.PersistentVolumeClaim {
	pvc := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes:      []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:        v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse(size)}},
			VolumeMode:       ptr.To(v1.PersistentVolumeFilesystem),
			StorageClassName: ptr.To(""),
		},
		Status: v1.PersistentVolumeClaimStatus{Phase: v1.ClaimPending},
	}
	for _, o := range opts {
		o(pvc)
	}
	return pvc
}

func pvcClass(c string) pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) { pvc.Spec.StorageClassName = ptr.To(c) }
}
func pvcNoClass() pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) { pvc.Spec.StorageClassName = nil }
}
func pvcModes(m ...v1.PersistentVolumeAccessMode) pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) { pvc.Spec.AccessModes = m }
}
func pvcBlock() pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) { pvc.Spec.VolumeMode = ptr.To(v1.PersistentVolumeBlock) }
}
func pvcVolume(v string) pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) { pvc.Spec.VolumeName = v }
}
func pvcSelector(kv ...string) pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		pvc.Spec.Selector = &metav1.LabelSelector{MatchLabels: m}
	}
}
func pvcAnn(k, v string) pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) { metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, k, v) }
}
func pvcDeleting() pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) {
		pvc.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
		pvc.Finalizers = []string{"kubernetes.io/pvc-protection"}
	}
}
func pvcPhase(p v1.PersistentVolumeClaimPhase) pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) { pvc.Status.Phase = p }
}

// pvcBound makes a claim look bound to volume by the controller.
func pvcBound(volume string) pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) {
		pvc.Spec.VolumeName = volume
		metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, storagehelpers.AnnBindCompleted, "yes")
		metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, storagehelpers.AnnBoundByController, "yes")
		pvc.Status.Phase = v1.ClaimBound
	}
}

func newClass(name, provisioner string, mode storagev1.VolumeBindingMode, opts ...func(*storagev1.StorageClass)) *storagev1.StorageClass {
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: name},
		Provisioner:       provisioner,
		VolumeBindingMode: &mode,
		ReclaimPolicy:     ptr.To(v1.PersistentVolumeReclaimDelete),
	}
	for _, o := range opts {
		o(sc)
	}
	return sc
}

func classDefault(sc *storagev1.StorageClass) {
	metav1.SetMetaDataAnnotation(&sc.ObjectMeta, annDefaultClass, "true")
}

// ---- events ----

type recordedEvent struct {
	object, typ, reason, message string
}

func (e recordedEvent) String() string {
	return fmt.Sprintf("%s %s %s %s", e.object, e.typ, e.reason, e.message)
}

// eventRecorder records events; it implements record.EventRecorder.
type eventRecorder struct {
	mu     sync.Mutex
	events []recordedEvent
}

func objectName(o runtime.Object) string {
	switch o := o.(type) {
	case *v1.PersistentVolume:
		return "pv/" + o.Name
	case *v1.PersistentVolumeClaim:
		return "pvc/" + o.Namespace + "/" + o.Name
	}
	return fmt.Sprintf("%T", o)
}

func (r *eventRecorder) Event(o runtime.Object, typ, reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, recordedEvent{objectName(o), typ, reason, message})
}

func (r *eventRecorder) Eventf(o runtime.Object, typ, reason, format string, args ...any) {
	r.Event(o, typ, reason, fmt.Sprintf(format, args...))
}

func (r *eventRecorder) AnnotatedEventf(o runtime.Object, _ map[string]string, typ, reason, format string, args ...any) {
	r.Eventf(o, typ, reason, format, args...)
}

// distinct returns the recorded events without repeats, as
// "object Type Reason message", sorted.
func (r *eventRecorder) distinct() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := map[string]bool{}
	for _, e := range r.events {
		set[e.String()] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// ---- queue ----

// testQueue is a keyQueue the driver steps by hand; rate-limited adds
// wait in retry until the driver moves them back.
type testQueue struct {
	items []string
	in    map[string]bool
	retry map[string]bool
}

func newTestQueue(string) keyQueue {
	return &testQueue{in: map[string]bool{}, retry: map[string]bool{}}
}

func (q *testQueue) Add(k string) {
	if !q.in[k] {
		q.in[k] = true
		q.items = append(q.items, k)
	}
}
func (q *testQueue) AddRateLimited(k string)            { q.retry[k] = true }
func (q *testQueue) AddAfter(k string, _ time.Duration) { q.retry[k] = true }
func (q *testQueue) Forget(string)                      {}
func (q *testQueue) Done(string)                        {}
func (q *testQueue) Len() int                           { return len(q.items) }
func (q *testQueue) ShutDown()                          {}
func (q *testQueue) Get() (string, bool) {
	if len(q.items) == 0 {
		return "", true
	}
	k := q.items[0]
	q.items = q.items[1:]
	delete(q.in, k)
	return k, false
}

// takeRetry moves the retried keys back into the queue; it reports
// whether there were any.
func (q *testQueue) takeRetry() bool {
	keys := slices.Sorted(maps.Keys(q.retry))
	clear(q.retry)
	for _, k := range keys {
		q.Add(k)
	}
	return len(keys) > 0
}

// ---- harness ----

// harness runs one controller against a fakeAPI, step by step, in one
// goroutine: informer events are delivered between steps, operations run
// inline, the matcher runs as soon as claims are pending.
type harness struct {
	t      testing.TB
	api    *fakeAPI
	client *fake.Clientset
	ctrl   *Controller
	events *eventRecorder
	ctx    context.Context
	// clock is the controller's time; the driver moves it on when only
	// claims held for their burst to settle are left, unless arriving
	// says a burst is still arriving.
	clock    time.Time
	arriving bool
}

type setup struct {
	classes []*storagev1.StorageClass
	pods    []*v1.Pod
	nodes   []string
	cfg     Config
}

func newHarness(t testing.TB, api *fakeAPI, s setup) *harness {
	t.Helper()
	client := fake.NewClientset()
	api.install(client)
	classIdx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, sc := range s.classes {
		if err := classIdx.Add(sc); err != nil {
			t.Fatal(err)
		}
	}
	podIdx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, podindex.Indexers())
	for _, p := range s.pods {
		if err := podIdx.Add(p); err != nil {
			t.Fatal(err)
		}
		if _, err := client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range s.nodes {
		node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}
		if _, err := client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := s.cfg
	cfg.ProvisionRetryInterval = time.Millisecond
	if cfg.Recycler == nil {
		cfg.Recycler = &fakeRecycler{}
	}
	rec := &eventRecorder{}
	c, err := newController(cfg, deps{
		client:   client,
		recorder: rec,
		classes:  storagelisters.NewStorageClassLister(classIdx),
		pods:     podIdx,
		queues:   newTestQueue,
		inline:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := logging.NewContext(context.Background(), slog.New(slog.DiscardHandler))
	h := &harness{t: t, api: api, client: client, ctrl: c, events: rec, ctx: ctx, clock: time.Unix(1_800_000_000, 0)}
	c.now = func() time.Time { return h.clock }
	return h
}

// start delivers every object the API holds, as an informer's first list.
func (h *harness) start() {
	for _, pv := range h.api.volumes() {
		h.ctrl.onVolume(pv)
	}
	for _, pvc := range h.api.claims() {
		h.ctrl.onClaim(pvc)
	}
}

func (h *harness) deliver() {
	for _, e := range h.api.takeEvents() {
		switch o := e.obj.(type) {
		case *v1.PersistentVolume:
			if e.typ == watch.Deleted {
				h.ctrl.onVolumeDelete(o)
			} else {
				h.ctrl.onVolume(o)
			}
		case *v1.PersistentVolumeClaim:
			if e.typ == watch.Deleted {
				h.ctrl.onClaimDelete(o)
			} else {
				h.ctrl.onClaim(o)
			}
		}
	}
}

func (h *harness) queues() []*testQueue {
	return []*testQueue{h.ctrl.claimQueue.(*testQueue), h.ctrl.volumeQueue.(*testQueue), h.ctrl.bindQueue.(*testQueue)}
}

// drain runs steps until nothing is queued; it returns the number of
// writes the API applied.
func (h *harness) drain() int {
	before := len(h.api.writes)
	c := h.ctrl
	for step := 0; ; step++ {
		if step > 100000 {
			h.t.Fatalf("controller does not settle; last writes: %v", lastN(h.api.writes, 20))
		}
		h.deliver()
		cq, vq, bq := h.queues()[0], h.queues()[1], h.queues()[2]
		switch {
		case cq.Len() > 0:
			k, _ := cq.Get()
			c.process(h.ctx, cq, "claim", k, c.syncClaimKey)
		case vq.Len() > 0:
			k, _ := vq.Get()
			c.process(h.ctx, vq, "volume", k, c.syncVolumeKey)
		case c.batcher.hasWork():
			c.matchRound(h.ctx)
		case bq.Len() > 0:
			k, _ := bq.Get()
			c.process(h.ctx, bq, "bind", k, c.processDecision)
		case c.batcher.hasHeld() && !h.arriving:
			// Nothing arrives any more: the burst has settled.
			h.clock = h.clock.Add(c.cfg.BurstGap)
			if ready, _ := c.batcher.due(h.clock, c.cfg.SettleWindow, c.cfg.MaxSettleDelay, c.cfg.MaxBurstHold); ready {
				c.matchRound(h.ctx)
			}
		default:
			return len(h.api.writes) - before
		}
	}
}

func lastN(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// run drives the controller until it is idle: retries are run again while
// they make progress (a retry that writes nothing twice in a row is a
// persistent failure, left to backoff).
func (h *harness) run() {
	idle := 0
	for pass := 0; pass < 50; pass++ {
		wrote := h.drain()
		retried := false
		for _, q := range h.queues() {
			if q.takeRetry() {
				retried = true
			}
		}
		if !retried {
			return
		}
		if wrote == 0 {
			idle++
			if idle >= 2 {
				for _, q := range h.queues() {
					q.items, q.in = nil, map[string]bool{}
				}
				return
			}
		} else {
			idle = 0
		}
	}
	h.t.Fatalf("controller keeps retrying; last writes: %v", lastN(h.api.writes, 20))
}

// resync queues everything, as the periodic resync does, and runs.
func (h *harness) resync() {
	h.ctrl.resync()
	h.run()
}

// ---- summaries ----

var shortAnn = map[string]string{
	storagehelpers.AnnBindCompleted:          "bind-completed",
	storagehelpers.AnnBoundByController:      "bound-by-controller",
	storagehelpers.AnnDynamicallyProvisioned: "provisioned-by",
	storagehelpers.AnnStorageProvisioner:     "storage-provisioner",
	storagehelpers.AnnBetaStorageProvisioner: "beta-storage-provisioner",
	storagehelpers.AnnSelectedNode:           "selected-node",
}

func annSummary(a map[string]string) string {
	var out []string
	for k, v := range a {
		s, ok := shortAnn[k]
		if !ok {
			continue
		}
		if v != "yes" {
			s += "=" + v
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// pvSummary is the part of a volume the tables compare.
func pvSummary(pv *v1.PersistentVolume) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", pv.Name, pv.Status.Phase)
	if ref := pv.Spec.ClaimRef; ref != nil {
		fmt.Fprintf(&b, " claim=%s/%s", ref.Namespace, ref.Name)
		if ref.UID != "" {
			fmt.Fprintf(&b, "(%s)", ref.UID)
		}
	}
	if a := annSummary(pv.Annotations); a != "" {
		fmt.Fprintf(&b, " [%s]", a)
	}
	if pv.Status.Reason != "" {
		fmt.Fprintf(&b, " reason=%s", pv.Status.Reason)
	}
	if slices.Contains(pv.Finalizers, storagehelpers.PVDeletionInTreeProtectionFinalizer) {
		b.WriteString(" fin=pv-controller")
	}
	if pv.DeletionTimestamp != nil {
		b.WriteString(" deleting")
	}
	return b.String()
}

// pvcSummary is the part of a claim the tables compare.
func pvcSummary(pvc *v1.PersistentVolumeClaim) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", pvc.Name, pvc.Status.Phase)
	if pvc.Spec.VolumeName != "" {
		fmt.Fprintf(&b, " volume=%s", pvc.Spec.VolumeName)
	}
	if q, ok := pvc.Status.Capacity[v1.ResourceStorage]; ok {
		fmt.Fprintf(&b, " cap=%s", q.String())
	}
	if a := annSummary(pvc.Annotations); a != "" {
		fmt.Fprintf(&b, " [%s]", a)
	}
	if pvc.Spec.StorageClassName == nil {
		b.WriteString(" class=nil")
	} else if *pvc.Spec.StorageClassName != "" {
		fmt.Fprintf(&b, " class=%s", *pvc.Spec.StorageClassName)
	}
	if pvc.DeletionTimestamp != nil {
		b.WriteString(" deleting")
	}
	return b.String()
}

func (f *fakeAPI) summary() (pvs, pvcs []string) {
	for _, pv := range f.volumes() {
		pvs = append(pvs, pvSummary(pv))
	}
	for _, pvc := range f.claims() {
		pvcs = append(pvcs, pvcSummary(pvc))
	}
	return pvs, pvcs
}

// ---- fakes ----

// fakeProvisioner provisions hostPath-like volumes in memory.
type fakeProvisioner struct {
	name      string
	mu        sync.Mutex
	volumes   map[string]bool
	failProv  error
	failDel   error
	deleted   []string
	provCalls int
	// dead, when set and true, is a crashed controller process: it makes
	// no more backend calls.
	dead func() bool
}

func newFakeProvisioner(name string) *fakeProvisioner {
	return &fakeProvisioner{name: name, volumes: map[string]bool{}}
}

func (p *fakeProvisioner) Name() string { return p.name }

func (p *fakeProvisioner) Provision(_ context.Context, req ProvisionRequest) (*v1.PersistentVolume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.provCalls++
	if p.dead != nil && p.dead() {
		return nil, errCrashed
	}
	if p.failProv != nil {
		return nil, p.failProv
	}
	p.volumes[req.PVName] = true
	return &v1.PersistentVolume{Spec: v1.PersistentVolumeSpec{
		Capacity:               v1.ResourceList{v1.ResourceStorage: req.Claim.Spec.Resources.Requests[v1.ResourceStorage]},
		AccessModes:            req.Claim.Spec.AccessModes,
		VolumeMode:             req.Claim.Spec.VolumeMode,
		PersistentVolumeSource: v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/fake/" + req.PVName}},
	}}, nil
}

func (p *fakeProvisioner) Delete(_ context.Context, pv *v1.PersistentVolume) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead != nil && p.dead() {
		return errCrashed
	}
	if p.failDel != nil {
		return p.failDel
	}
	delete(p.volumes, pv.Name)
	p.deleted = append(p.deleted, pv.Name)
	return nil
}

// fakeRecycler scrubs nothing and records what it was asked to scrub.
type fakeRecycler struct {
	mu       sync.Mutex
	recycled []string
	fail     error
}

func (r *fakeRecycler) Recycle(_ context.Context, pv *v1.PersistentVolume, event func(string, string)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pv.Spec.HostPath == nil && pv.Spec.Local == nil {
		return fmt.Errorf("volume %s: %w", pv.Name, ErrNotRecyclable)
	}
	if r.fail != nil {
		return r.fail
	}
	event(v1.EventTypeNormal, "scrubbed")
	r.recycled = append(r.recycled, pv.Name)
	return nil
}

func requestQ(c *v1.PersistentVolumeClaim) string {
	q := c.Spec.Resources.Requests[v1.ResourceStorage]
	return q.String()
}
