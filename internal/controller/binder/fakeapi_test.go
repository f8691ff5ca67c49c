package binder

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	storagehelpers "k8s.io/component-helpers/storage/volume"
)

// fakeAPI stands in for the API server's PersistentVolume and claim
// storage with the semantics the controller relies on: resource versions
// and 409 on a stale one, status subresources, finalizers and deletion
// timestamps, create resetting status, lastPhaseTransitionTime. It records
// every write, can fail the Nth write with a conflict or a crash, keeps
// the watch events it would send for the test driver to deliver, and
// checks the binding invariants after every write it applies.
type fakeAPI struct {
	mu     sync.Mutex
	rv     uint64
	now    time.Time
	pvs    map[string]*v1.PersistentVolume
	pvcs   map[string]*v1.PersistentVolumeClaim
	writes []string
	events []watchEvent

	// failAt is the 1-based number of the write to fail, 0 for none;
	// writeCount counts every write attempted.
	failAt     int
	failMode   failMode
	writeCount int
	crashed    bool
	// violations are invariant failures seen after writes; baseline are
	// those the initial objects already had (a scenario may start from a
	// broken state on purpose).
	violations []string
	baseline   map[string]bool
	// watchers, when a test runs real informers, get the events instead
	// of the driver.
	watchers map[string][]*watch.FakeWatcher
}

// emit sends a watch event to the watchers of its resource, or keeps it
// for the driver when there are none.
func (f *fakeAPI) emit(typ watch.EventType, obj runtime.Object) {
	res := "persistentvolumeclaims"
	if _, ok := obj.(*v1.PersistentVolume); ok {
		res = "persistentvolumes"
	}
	if ws := f.watchers[res]; len(ws) > 0 {
		for _, w := range ws {
			if !w.IsStopped() {
				w.Action(typ, obj.DeepCopyObject())
			}
		}
		return
	}
	f.events = append(f.events, watchEvent{typ, obj})
}

// installWatch serves watches of volumes and claims from f, for tests that
// run the controller with real informers.
func (f *fakeAPI) installWatch(cs *fake.Clientset) {
	for _, res := range []string{"persistentvolumes", "persistentvolumeclaims"} {
		cs.PrependWatchReactor(res, func(core.Action) (bool, watch.Interface, error) {
			w := watch.NewFakeWithChanSize(1<<16, false)
			f.mu.Lock()
			if f.watchers == nil {
				f.watchers = map[string][]*watch.FakeWatcher{}
			}
			f.watchers[res] = append(f.watchers[res], w)
			// Replay what exists: an object created between the
			// informer's list and this watch is not lost.
			if res == "persistentvolumes" {
				for _, pv := range f.pvs {
					w.Add(pv.DeepCopy())
				}
			} else {
				for _, pvc := range f.pvcs {
					w.Add(pvc.DeepCopy())
				}
			}
			f.mu.Unlock()
			return true, w, nil
		})
	}
}

type failMode int

const (
	failConflict failMode = iota
	// failCrash applies the write and then behaves as if the controller
	// died: the write's answer is lost and no later write reaches the API.
	failCrash
)

var errCrashed = errors.New("controller crashed (injected)")

type watchEvent struct {
	typ watch.EventType
	obj runtime.Object
}

var (
	pvResource  = schema.GroupResource{Resource: "persistentvolumes"}
	pvcResource = schema.GroupResource{Resource: "persistentvolumeclaims"}
)

func newFakeAPI() *fakeAPI {
	return &fakeAPI{
		now:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		pvs:  map[string]*v1.PersistentVolume{},
		pvcs: map[string]*v1.PersistentVolumeClaim{},
	}
}

func (f *fakeAPI) nextRV() string {
	f.rv++
	return strconv.FormatUint(f.rv, 10)
}

// add puts initial objects in, as if created before the controller ran.
func (f *fakeAPI) add(objs ...runtime.Object) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range objs {
		switch o := o.(type) {
		case *v1.PersistentVolume:
			o = o.DeepCopy()
			o.ResourceVersion = f.nextRV()
			f.pvs[o.Name] = o
		case *v1.PersistentVolumeClaim:
			o = o.DeepCopy()
			o.ResourceVersion = f.nextRV()
			f.pvcs[o.Namespace+"/"+o.Name] = o
		default:
			panic(fmt.Sprintf("fakeAPI: unexpected %T", o))
		}
	}
}

// clone returns a fake API holding the same objects and no history.
func (f *fakeAPI) clone() *fakeAPI {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := newFakeAPI()
	g.rv = f.rv
	for k, v := range f.pvs {
		g.pvs[k] = v.DeepCopy()
	}
	for k, v := range f.pvcs {
		g.pvcs[k] = v.DeepCopy()
	}
	return g
}

// isCrashed reports whether the controller has crashed and not yet been
// restarted.
func (f *fakeAPI) isCrashed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.crashed
}

// restart ends a crash: the next controller's writes reach the API.
func (f *fakeAPI) restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashed = false
	f.failAt = 0
	f.events = nil
}

func (f *fakeAPI) takeEvents() []watchEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := f.events
	f.events = nil
	return ev
}

func (f *fakeAPI) volumes() []*v1.PersistentVolume {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*v1.PersistentVolume
	for _, v := range f.pvs {
		out = append(out, v.DeepCopy())
	}
	slices.SortFunc(out, func(a, b *v1.PersistentVolume) int { return compareStrings(a.Name, b.Name) })
	return out
}

func (f *fakeAPI) claims() []*v1.PersistentVolumeClaim {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*v1.PersistentVolumeClaim
	for _, v := range f.pvcs {
		out = append(out, v.DeepCopy())
	}
	slices.SortFunc(out, func(a, b *v1.PersistentVolumeClaim) int { return compareStrings(claimKey(a), claimKey(b)) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// install routes the clientset's PV and PVC calls to f.
func (f *fakeAPI) install(cs *fake.Clientset) {
	cs.PrependReactor("*", "persistentvolumes", f.react)
	cs.PrependReactor("*", "persistentvolumeclaims", f.react)
}

// beginWrite applies failure injection; it returns an error when the
// write must not happen, and whether the write must be reported failed
// after it happened (a crash).
func (f *fakeAPI) beginWrite(desc string, gr schema.GroupResource, name string) (crashAfter bool, err error) {
	if f.crashed {
		return false, errCrashed
	}
	f.writeCount++
	if f.writeCount != f.failAt {
		return false, nil
	}
	if f.failMode == failConflict {
		f.writes = append(f.writes, desc+" (conflict)")
		return false, apierrors.NewConflict(gr, name, errors.New("injected conflict"))
	}
	return true, nil
}

func (f *fakeAPI) endWrite(desc string, crashAfter bool) error {
	f.writes = append(f.writes, desc)
	f.checkInvariants()
	if crashAfter {
		f.crashed = true
		return errCrashed
	}
	return nil
}

func (f *fakeAPI) react(action core.Action) (bool, runtime.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	isPV := action.GetResource().Resource == "persistentvolumes"
	gr := pvcResource
	if isPV {
		gr = pvResource
	}
	switch action.GetVerb() {
	case "get":
		a := action.(core.GetAction)
		if isPV {
			if pv, ok := f.pvs[a.GetName()]; ok {
				return true, pv.DeepCopy(), nil
			}
		} else if pvc, ok := f.pvcs[a.GetNamespace()+"/"+a.GetName()]; ok {
			return true, pvc.DeepCopy(), nil
		}
		return true, nil, apierrors.NewNotFound(gr, a.GetName())
	case "list":
		a := action.(core.ListAction)
		if isPV {
			l := &v1.PersistentVolumeList{}
			for _, pv := range f.pvs {
				l.Items = append(l.Items, *pv.DeepCopy())
			}
			return true, l, nil
		}
		l := &v1.PersistentVolumeClaimList{}
		for _, pvc := range f.pvcs {
			if a.GetNamespace() == "" || pvc.Namespace == a.GetNamespace() {
				l.Items = append(l.Items, *pvc.DeepCopy())
			}
		}
		return true, l, nil
	case "create":
		return f.create(action.(core.CreateAction), isPV, gr)
	case "update":
		return f.update(action.(core.UpdateAction), isPV, gr)
	case "delete":
		return f.delete(action.(core.DeleteAction), isPV, gr)
	}
	return true, nil, fmt.Errorf("fakeAPI: unsupported %s %s", action.GetVerb(), action.GetResource().Resource)
}

func (f *fakeAPI) create(a core.CreateAction, isPV bool, gr schema.GroupResource) (bool, runtime.Object, error) {
	meta, _ := metaOf(a.GetObject())
	desc := "create " + gr.Resource + " " + meta.GetName()
	exists := false
	if isPV {
		_, exists = f.pvs[meta.GetName()]
	} else {
		_, exists = f.pvcs[meta.GetNamespace()+"/"+meta.GetName()]
	}
	if exists && !f.crashed {
		return true, nil, apierrors.NewAlreadyExists(gr, meta.GetName())
	}
	crash, err := f.beginWrite(desc, gr, meta.GetName())
	if err != nil {
		return true, nil, err
	}
	now := metav1.NewTime(f.now)
	var out runtime.Object
	if isPV {
		pv := a.GetObject().(*v1.PersistentVolume).DeepCopy()
		pv.UID = types.UID("uid-" + pv.Name)
		pv.ResourceVersion = f.nextRV()
		pv.CreationTimestamp = now
		pv.Status = v1.PersistentVolumeStatus{Phase: v1.VolumePending, LastPhaseTransitionTime: &now}
		f.pvs[pv.Name] = pv
		out = pv.DeepCopy()
	} else {
		pvc := a.GetObject().(*v1.PersistentVolumeClaim).DeepCopy()
		pvc.UID = types.UID("uid-" + pvc.Name)
		pvc.ResourceVersion = f.nextRV()
		pvc.CreationTimestamp = now
		pvc.Status = v1.PersistentVolumeClaimStatus{Phase: v1.ClaimPending}
		f.pvcs[pvc.Namespace+"/"+pvc.Name] = pvc
		out = pvc.DeepCopy()
	}
	f.emit(watch.Added, out.DeepCopyObject())
	return true, out, f.endWrite(desc, crash)
}

func metaOf(o runtime.Object) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no metadata", o)
	}
	return m, nil
}

func (f *fakeAPI) update(a core.UpdateAction, isPV bool, gr schema.GroupResource) (bool, runtime.Object, error) {
	meta, _ := metaOf(a.GetObject())
	verb := "update"
	if a.GetSubresource() == "status" {
		verb = "update-status"
	}
	key := meta.GetName()
	if !isPV {
		key = meta.GetNamespace() + "/" + meta.GetName()
	}
	desc := verb + " " + gr.Resource + " " + key
	var cur metav1.Object
	if isPV {
		if pv, ok := f.pvs[key]; ok {
			cur = pv
		}
	} else if pvc, ok := f.pvcs[key]; ok {
		cur = pvc
	}
	if cur == nil {
		if f.crashed {
			return true, nil, errCrashed
		}
		return true, nil, apierrors.NewNotFound(gr, meta.GetName())
	}
	crash, err := f.beginWrite(desc, gr, meta.GetName())
	if err != nil {
		return true, nil, err
	}
	if meta.GetResourceVersion() != cur.GetResourceVersion() {
		f.writes = append(f.writes, desc+" (stale)")
		return true, nil, apierrors.NewConflict(gr, meta.GetName(), errors.New("the object has been modified"))
	}
	var out runtime.Object
	var gone bool
	if isPV {
		old := cur.(*v1.PersistentVolume)
		pv := a.GetObject().(*v1.PersistentVolume).DeepCopy()
		if verb == "update" {
			pv.Status = old.Status
		} else {
			st := pv.Status
			pv = old.DeepCopy()
			pv.Status = st
			if st.Phase != old.Status.Phase && (st.LastPhaseTransitionTime == nil || st.LastPhaseTransitionTime.Equal(old.Status.LastPhaseTransitionTime)) {
				now := metav1.NewTime(f.now)
				pv.Status.LastPhaseTransitionTime = &now
			} else if st.Phase == old.Status.Phase && st.LastPhaseTransitionTime == nil {
				pv.Status.LastPhaseTransitionTime = old.Status.LastPhaseTransitionTime
			}
		}
		pv.UID, pv.CreationTimestamp, pv.DeletionTimestamp = old.UID, old.CreationTimestamp, old.DeletionTimestamp
		pv.ResourceVersion = f.nextRV()
		if pv.DeletionTimestamp != nil && len(pv.Finalizers) == 0 {
			delete(f.pvs, key)
			gone = true
		} else {
			f.pvs[key] = pv
		}
		out = pv.DeepCopy()
	} else {
		old := cur.(*v1.PersistentVolumeClaim)
		pvc := a.GetObject().(*v1.PersistentVolumeClaim).DeepCopy()
		if verb == "update" {
			pvc.Status = old.Status
		} else {
			st := pvc.Status
			pvc = old.DeepCopy()
			pvc.Status = st
		}
		pvc.UID, pvc.CreationTimestamp, pvc.DeletionTimestamp = old.UID, old.CreationTimestamp, old.DeletionTimestamp
		pvc.ResourceVersion = f.nextRV()
		if pvc.DeletionTimestamp != nil && len(pvc.Finalizers) == 0 {
			delete(f.pvcs, key)
			gone = true
		} else {
			f.pvcs[key] = pvc
		}
		out = pvc.DeepCopy()
	}
	typ := watch.Modified
	if gone {
		typ = watch.Deleted
	}
	f.emit(typ, out.DeepCopyObject())
	return true, out, f.endWrite(desc, crash)
}

func (f *fakeAPI) delete(a core.DeleteAction, isPV bool, gr schema.GroupResource) (bool, runtime.Object, error) {
	key := a.GetName()
	if !isPV {
		key = a.GetNamespace() + "/" + a.GetName()
	}
	desc := "delete " + gr.Resource + " " + key
	var cur runtime.Object
	if isPV {
		if pv, ok := f.pvs[key]; ok {
			cur = pv
		}
	} else if pvc, ok := f.pvcs[key]; ok {
		cur = pvc
	}
	if cur == nil {
		if f.crashed {
			return true, nil, errCrashed
		}
		return true, nil, apierrors.NewNotFound(gr, a.GetName())
	}
	meta, _ := metaOf(cur)
	if pre := a.GetDeleteOptions().Preconditions; pre != nil && pre.UID != nil && *pre.UID != meta.GetUID() {
		return true, nil, apierrors.NewConflict(gr, a.GetName(), errors.New("UID precondition failed"))
	}
	crash, err := f.beginWrite(desc, gr, a.GetName())
	if err != nil {
		return true, nil, err
	}
	f.deleteLocked(key, isPV)
	return true, nil, f.endWrite(desc, crash)
}

// deleteLocked deletes an object as the API does: with finalizers it only
// gets a deletion timestamp.
func (f *fakeAPI) deleteLocked(key string, isPV bool) {
	now := metav1.NewTime(f.now)
	if isPV {
		pv := f.pvs[key]
		if len(pv.Finalizers) > 0 {
			if pv.DeletionTimestamp == nil {
				pv.DeletionTimestamp = &now
				pv.ResourceVersion = f.nextRV()
				f.emit(watch.Modified, pv.DeepCopy())
			}
			return
		}
		delete(f.pvs, key)
		f.emit(watch.Deleted, pv.DeepCopy())
		return
	}
	pvc := f.pvcs[key]
	if len(pvc.Finalizers) > 0 {
		if pvc.DeletionTimestamp == nil {
			pvc.DeletionTimestamp = &now
			pvc.ResourceVersion = f.nextRV()
			f.emit(watch.Modified, pvc.DeepCopy())
		}
		return
	}
	delete(f.pvcs, key)
	f.emit(watch.Deleted, pvc.DeepCopy())
}

// userDelete deletes an object as a user would (no failure injection).
func (f *fakeAPI) userDelete(pv bool, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleteLocked(key, pv)
}

// userUpdate changes an object as a user would.
func (f *fakeAPI) userUpdateVolume(name string, mutate func(*v1.PersistentVolume)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pv := f.pvs[name].DeepCopy()
	mutate(pv)
	pv.ResourceVersion = f.nextRV()
	f.pvs[name] = pv
	f.emit(watch.Modified, pv.DeepCopy())
}

// userCreate creates an object as a user would.
func (f *fakeAPI) userCreate(o runtime.Object) {
	f.add(o)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch o := o.(type) {
	case *v1.PersistentVolume:
		f.emit(watch.Added, f.pvs[o.Name].DeepCopy())
	case *v1.PersistentVolumeClaim:
		f.emit(watch.Added, f.pvcs[o.Namespace+"/"+o.Name].DeepCopy())
	}
}

// checkInvariants records a violation of "never a claim bound to two
// volumes, never a volume bound to two claims": no two volumes chosen by
// the controller (not provisioned for the claim) carry one claim's UID,
// and no two claims the controller bound name one volume.
func (f *fakeAPI) checkInvariants() {
	if f.baseline == nil {
		return
	}
	for _, v := range f.invariantViolations() {
		if !f.baseline[v] {
			f.violations = append(f.violations, fmt.Sprintf("after write %d (%s): %s", len(f.writes), f.writes[len(f.writes)-1], v))
		}
	}
}

// snapshotInvariants records the violations the objects have now as the
// baseline.
func (f *fakeAPI) snapshotInvariants() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.baseline = map[string]bool{}
	for _, v := range f.invariantViolations() {
		f.baseline[v] = true
	}
}

func (f *fakeAPI) invariantViolations() []string {
	var out []string
	byClaim := map[types.UID][]string{}
	for _, pv := range f.pvs {
		ref := pv.Spec.ClaimRef
		if ref == nil || ref.UID == "" || metav1.HasAnnotation(pv.ObjectMeta, storagehelpers.AnnDynamicallyProvisioned) {
			continue
		}
		byClaim[ref.UID] = append(byClaim[ref.UID], pv.Name)
	}
	for uid, vols := range byClaim {
		if len(vols) > 1 {
			slices.Sort(vols)
			out = append(out, fmt.Sprintf("claim %s is the claimRef of volumes %v", uid, vols))
		}
	}
	byVolume := map[string][]string{}
	for k, pvc := range f.pvcs {
		if pvc.Spec.VolumeName != "" && metav1.HasAnnotation(pvc.ObjectMeta, storagehelpers.AnnBoundByController) {
			byVolume[pvc.Spec.VolumeName] = append(byVolume[pvc.Spec.VolumeName], k)
		}
	}
	for v, cls := range byVolume {
		if len(cls) > 1 {
			slices.Sort(cls)
			out = append(out, fmt.Sprintf("volume %s is bound by the controller to claims %v", v, cls))
		}
	}
	return out
}
