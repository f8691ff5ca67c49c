package csidrivers

import (
	"fmt"
	"slices"
	"sync"
)

// Driver is one registered CSI driver.
type Driver struct {
	// Name is the driver's name, as in its CSIDriver object.
	Name string
	// Endpoint is its Node service's socket, unix:///path.
	Endpoint string
	// Versions are the CSI versions it said it supports.
	Versions []string
}

// Registry is the set of drivers registered on this node. The zero value
// is empty and ready; it is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	drivers map[string]Driver
	watch   []func(name string)
}

// Add registers d, replacing a driver of the same name.
func (r *Registry) Add(d Driver) {
	r.mu.Lock()
	if r.drivers == nil {
		r.drivers = map[string]Driver{}
	}
	d.Versions = slices.Clone(d.Versions)
	r.drivers[d.Name] = d
	watch := slices.Clone(r.watch)
	r.mu.Unlock()
	for _, f := range watch {
		f(d.Name)
	}
}

// Remove unregisters the driver name; unknown names are ignored.
func (r *Registry) Remove(name string) {
	r.mu.Lock()
	_, ok := r.drivers[name]
	delete(r.drivers, name)
	watch := slices.Clone(r.watch)
	r.mu.Unlock()
	if ok {
		for _, f := range watch {
			f(name)
		}
	}
}

// Get returns the driver name, or an error that says it is not
// registered on this node (upstream's wording, which users search for).
func (r *Registry) Get(name string) (Driver, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.drivers[name]
	if !ok {
		return Driver{}, fmt.Errorf("driver name %s not found in the list of registered CSI drivers", name)
	}
	return d, nil
}

// Names lists the registered drivers, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.drivers))
	for n := range r.drivers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// OnChange calls f, outside the registry's lock, with a driver's name
// each time it is added, replaced or removed: how the CSI plugin retries
// the mounts that waited for a driver.
func (r *Registry) OnChange(f func(name string)) {
	r.mu.Lock()
	r.watch = append(r.watch, f)
	r.mu.Unlock()
}
