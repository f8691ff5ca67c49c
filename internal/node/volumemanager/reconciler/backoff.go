package reconciler

import (
	"strings"
	"sync"
	"time"
)

const (
	initialBackoff = 500 * time.Millisecond
	maxBackoff     = 2*time.Minute + 2*time.Second
)

// backoff is exponential backoff per operation key.
type backoff struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]backoffEntry
}

type backoffEntry struct {
	delay time.Duration
	until time.Time
}

func newBackoff(now func() time.Time) *backoff {
	return &backoff{now: now, entries: map[string]backoffEntry{}}
}

// allowed reports whether key may run now.
func (b *backoff) allowed(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	return !ok || !b.now().Before(e.until)
}

// failed doubles key's delay (starting at initialBackoff).
func (b *backoff) failed(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[key]
	switch {
	case e.delay == 0:
		e.delay = initialBackoff
	case e.delay*2 > maxBackoff:
		e.delay = maxBackoff
	default:
		e.delay *= 2
	}
	e.until = b.now().Add(e.delay)
	b.entries[key] = e
	return e.delay
}

// succeeded forgets key.
func (b *backoff) succeeded(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, key)
}

// forget drops the delays of the keys whose volume (the part after the
// first "|") match selects.
func (b *backoff) forget(match func(volume string) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for key := range b.entries {
		if _, volume, _ := strings.Cut(key, "|"); match(volume) {
			delete(b.entries, key)
		}
	}
}
