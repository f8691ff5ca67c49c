package component

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// recorder records the order of starts and stops.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) component(name string, fail error) Component {
	return Component{Name: name, Run: func(ctx context.Context, ready func()) error {
		r.add("start " + name)
		if fail != nil {
			return fail
		}
		ready()
		<-ctx.Done()
		r.add("stop " + name)
		return nil
	}}
}

func TestRunnerStartsInOrderAndStopsInReverse(t *testing.T) {
	var r recorder
	ctx, cancel := context.WithCancel(context.Background())
	runner := Runner{
		Components: []Component{r.component("a", nil), r.component("b", nil), r.component("c", nil)},
		Ready:      func() { r.add("ready"); cancel() },
	}
	if err := runner.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{"start a", "start b", "start c", "ready", "stop c", "stop b", "stop a"}
	if !slices.Equal(r.events, want) {
		t.Fatalf("events %v, want %v", r.events, want)
	}
}

func TestRunnerStopsStartedComponentsWhenOneFails(t *testing.T) {
	var r recorder
	boom := errors.New("boom")
	runner := Runner{
		Components: []Component{r.component("a", nil), r.component("b", boom), r.component("c", nil)},
		Ready:      func() { t.Error("ready despite a failed component") },
	}
	err := runner.Run(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "b:") {
		t.Fatalf("Run: %v, want b's failure", err)
	}
	want := []string{"start a", "start b", "stop a"}
	if !slices.Equal(r.events, want) {
		t.Fatalf("events %v, want %v", r.events, want)
	}
}

func TestRunnerReportsAComponentThatStopsOnItsOwn(t *testing.T) {
	var r recorder
	quits := make(chan struct{})
	runner := Runner{
		Components: []Component{r.component("a", nil), {Name: "b", Run: func(ctx context.Context, ready func()) error {
			ready()
			<-quits
			return nil
		}}},
		Ready: func() { close(quits) },
	}
	err := runner.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "b stopped on its own") {
		t.Fatalf("Run: %v, want b stopped on its own", err)
	}
	if !slices.Equal(r.events, []string{"start a", "stop a"}) {
		t.Fatalf("events %v", r.events)
	}
}
