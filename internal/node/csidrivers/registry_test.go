package csidrivers

import (
	"slices"
	"strings"
	"testing"
)

func TestRegistry(t *testing.T) {
	var r Registry
	var changed []string
	r.OnChange(func(n string) { changed = append(changed, n) })
	if _, err := r.Get("a"); err == nil || !strings.Contains(err.Error(), "not found in the list of registered CSI drivers") {
		t.Fatalf("Get of an unknown driver: %v", err)
	}
	r.Add(Driver{Name: "b", Endpoint: "unix:///b"})
	r.Add(Driver{Name: "a", Endpoint: "unix:///a", Versions: []string{"1.0.0"}})
	r.Add(Driver{Name: "a", Endpoint: "unix:///a2"})
	if d, err := r.Get("a"); err != nil || d.Endpoint != "unix:///a2" {
		t.Fatalf("Get(a) = %+v, %v; want the replacement", d, err)
	}
	if got := r.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Names = %v", got)
	}
	r.Remove("b")
	r.Remove("nope")
	if _, err := r.Get("b"); err == nil {
		t.Fatal("b still registered after Remove")
	}
	if want := []string{"b", "a", "a", "b"}; !slices.Equal(changed, want) {
		t.Fatalf("changes = %v, want %v", changed, want)
	}
}
