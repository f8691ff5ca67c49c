package volumematch

import (
	"cmp"
	"slices"
	"strings"
)

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

func (a sizeKey) compare(b sizeKey) int {
	return cmp.Or(cmp.Compare(a.size, b.size), strings.Compare(a.name, b.name))
}

// orderedSet is a sorted set of sizeKeys with a value per key, kept as a
// list of sorted chunks of at most chunkMax keys (a two-level B-tree):
// finding the first key of a size is two binary searches over contiguous
// memory (the sizes of a chunk are a plain []int64), so matching a claim
// costs about the same with 1,000 or 50,000 volumes; inserting or deleting
// moves at most one chunk's entries.
type orderedSet[V any] struct {
	chunks []*chunk[V]
	// lasts[i] is the last (largest) key of chunks[i].
	lasts []sizeKey
	n     int
}

type chunk[V any] struct {
	sizes []int64
	names []string
	vals  []V
}

func (c *chunk[V]) key(j int) sizeKey { return sizeKey{c.sizes[j], c.names[j]} }
func (c *chunk[V]) last() sizeKey     { return c.key(len(c.sizes) - 1) }

// search returns the position of the first key >= k, and whether it is k.
func (c *chunk[V]) search(k sizeKey) (int, bool) {
	j, _ := slices.BinarySearch(c.sizes, k.size)
	for ; j < len(c.sizes) && c.sizes[j] == k.size; j++ {
		if c.names[j] >= k.name {
			return j, c.names[j] == k.name
		}
	}
	return j, false
}

const chunkMax = 128

// Len is the number of keys in the set.
func (s *orderedSet[V]) Len() int { return s.n }

// chunkFor is the index of the first chunk whose last key is >= k, or
// len(chunks) when k is past every key.
func (s *orderedSet[V]) chunkFor(k sizeKey) int {
	i, _ := slices.BinarySearchFunc(s.lasts, k, sizeKey.compare)
	return i
}

// Set inserts k with value v, replacing the value if k is present.
func (s *orderedSet[V]) Set(k sizeKey, v V) {
	if len(s.chunks) == 0 {
		s.chunks = []*chunk[V]{{sizes: []int64{k.size}, names: []string{k.name}, vals: []V{v}}}
		s.lasts = []sizeKey{k}
		s.n = 1
		return
	}
	i := s.chunkFor(k)
	if i == len(s.chunks) {
		i-- // past the end: it goes last in the last chunk
	}
	c := s.chunks[i]
	j, found := c.search(k)
	if found {
		c.vals[j] = v
		return
	}
	c.sizes = slices.Insert(c.sizes, j, k.size)
	c.names = slices.Insert(c.names, j, k.name)
	c.vals = slices.Insert(c.vals, j, v)
	s.n++
	if len(c.sizes) > chunkMax {
		h := len(c.sizes) / 2
		right := &chunk[V]{sizes: slices.Clone(c.sizes[h:]), names: slices.Clone(c.names[h:]), vals: slices.Clone(c.vals[h:])}
		c.sizes, c.names, c.vals = slices.Clip(c.sizes[:h]), slices.Clip(c.names[:h]), slices.Clip(c.vals[:h])
		s.chunks = slices.Insert(s.chunks, i+1, right)
		s.lasts = slices.Insert(s.lasts, i+1, right.last())
	}
	s.lasts[i] = c.last()
}

// Delete removes k; it reports whether k was present.
func (s *orderedSet[V]) Delete(k sizeKey) bool {
	i := s.chunkFor(k)
	if i == len(s.chunks) {
		return false
	}
	c := s.chunks[i]
	j, found := c.search(k)
	if !found {
		return false
	}
	// slices.Delete clears the freed element: no stale reference stays.
	c.sizes = slices.Delete(c.sizes, j, j+1)
	c.names = slices.Delete(c.names, j, j+1)
	c.vals = slices.Delete(c.vals, j, j+1)
	s.n--
	switch {
	case len(c.sizes) == 0:
		s.chunks = slices.Delete(s.chunks, i, i+1)
		s.lasts = slices.Delete(s.lasts, i, i+1)
	case i+1 < len(s.chunks) && len(c.sizes)+len(s.chunks[i+1].sizes) <= chunkMax/2:
		// Merge thin neighbours so that deletions do not leave a long
		// list of near-empty chunks.
		next := s.chunks[i+1]
		c.sizes = append(c.sizes, next.sizes...)
		c.names = append(c.names, next.names...)
		c.vals = append(c.vals, next.vals...)
		s.chunks = slices.Delete(s.chunks, i+1, i+2)
		s.lasts = slices.Delete(s.lasts, i+1, i+2)
		s.lasts[i] = c.last()
	default:
		s.lasts[i] = c.last()
	}
	return true
}

// AscendFrom calls fn for every key with size >= minSize in ascending
// order until fn returns false.
func (s *orderedSet[V]) AscendFrom(minSize int64, fn func(k sizeKey, v V) bool) {
	i := s.chunkFor(sizeKey{size: minSize})
	if i == len(s.chunks) {
		return
	}
	j, _ := slices.BinarySearch(s.chunks[i].sizes, minSize)
	for ; i < len(s.chunks); i, j = i+1, 0 {
		c := s.chunks[i]
		for ; j < len(c.sizes); j++ {
			if !fn(c.key(j), c.vals[j]) {
				return
			}
		}
	}
}
