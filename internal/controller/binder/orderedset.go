package binder

// sizeKey orders available volumes inside one bucket of the match index:
// smallest capacity first, ties broken by name so that the choice is
// deterministic.
type sizeKey struct {
	size int64
	name string
}

func (a sizeKey) less(b sizeKey) bool {
	if a.size != b.size {
		return a.size < b.size
	}
	return a.name < b.name
}

// orderedSet is a treap of sizeKeys with a value per key: insert, delete
// and "ascend from the first key with size >= s" all cost O(log n)
// expected, so that matching a claim does not grow with the number of
// volumes.
type orderedSet[V any] struct {
	root *treapNode[V]
	n    int
	seed uint64
}

type treapNode[V any] struct {
	key         sizeKey
	val         V
	prio        uint64
	left, right *treapNode[V]
}

// Len is the number of keys in the set.
func (s *orderedSet[V]) Len() int { return s.n }

// nextPrio is a xorshift generator: priorities need only be well spread,
// and a fixed seed keeps the tree shape (and thus tests) reproducible.
func (s *orderedSet[V]) nextPrio() uint64 {
	if s.seed == 0 {
		s.seed = 0x9e3779b97f4a7c15
	}
	s.seed ^= s.seed << 13
	s.seed ^= s.seed >> 7
	s.seed ^= s.seed << 17
	return s.seed
}

// split divides t into keys < k and keys >= k.
func split[V any](t *treapNode[V], k sizeKey) (l, r *treapNode[V]) {
	if t == nil {
		return nil, nil
	}
	if t.key.less(k) {
		t.right, r = split(t.right, k)
		return t, r
	}
	l, t.left = split(t.left, k)
	return l, t
}

// merge joins l and r where every key of l is less than every key of r.
func merge[V any](l, r *treapNode[V]) *treapNode[V] {
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	case l.prio > r.prio:
		l.right = merge(l.right, r)
		return l
	default:
		r.left = merge(l, r.left)
		return r
	}
}

// Set inserts k with value v, replacing the value if k is present.
func (s *orderedSet[V]) Set(k sizeKey, v V) {
	if n := s.find(k); n != nil {
		n.val = v
		return
	}
	l, r := split(s.root, k)
	s.root = merge(merge(l, &treapNode[V]{key: k, val: v, prio: s.nextPrio()}), r)
	s.n++
}

func (s *orderedSet[V]) find(k sizeKey) *treapNode[V] {
	t := s.root
	for t != nil {
		switch {
		case k.less(t.key):
			t = t.left
		case t.key.less(k):
			t = t.right
		default:
			return t
		}
	}
	return nil
}

// Delete removes k; it reports whether k was present.
func (s *orderedSet[V]) Delete(k sizeKey) bool {
	var removed bool
	s.root = deleteNode(s.root, k, &removed)
	if removed {
		s.n--
	}
	return removed
}

func deleteNode[V any](t *treapNode[V], k sizeKey, removed *bool) *treapNode[V] {
	if t == nil {
		return nil
	}
	switch {
	case k.less(t.key):
		t.left = deleteNode(t.left, k, removed)
	case t.key.less(k):
		t.right = deleteNode(t.right, k, removed)
	default:
		*removed = true
		return merge(t.left, t.right)
	}
	return t
}

// AscendFrom calls fn for every key with size >= minSize in ascending
// order until fn returns false.
func (s *orderedSet[V]) AscendFrom(minSize int64, fn func(k sizeKey, v V) bool) {
	// An explicit stack holds the nodes whose left part is done and whose
	// own key and right subtree remain.
	var stack []*treapNode[V]
	t := s.root
	for t != nil {
		if t.key.size >= minSize {
			stack = append(stack, t)
			t = t.left
		} else {
			t = t.right
		}
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !fn(n.key, n.val) {
			return
		}
		for c := n.right; c != nil; c = c.left {
			stack = append(stack, c)
		}
	}
}
