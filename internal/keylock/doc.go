// Package keylock serialises work per key: one holder of a key at a time,
// with a lock that exists only while someone holds or waits for it. The
// PV controller locks volumes and claims with it so that a bind, a sync
// and an unbind of one object never interleave; the CSI driver locks
// volume IDs, names and snapshots so that a call repeated after a CO
// restart waits for the first instead of racing it.
package keylock
