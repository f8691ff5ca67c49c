// Package state is the persistent memory of the built-in CSI driver: the
// records of its volumes, snapshots and group snapshots, with what the
// controller (publications) and the node (staging, targets) did with them.
//
// The Store interface states the contracts: not-found and already-exists
// errors are sentinel values wrapped with %w, Put is durable before it
// returns, Delete is idempotent, records handed out are copies.
//
// FileStore keeps one JSON file per record under <pool>/meta and a
// journal of the changes since they were last written (journal.go). A
// put or delete is durable once its entry is in the journal, which
// concurrent writes share: one write and one fdatasync for all of them.
// The record files are brought up to date from memory by folds: in the
// background once the journal is large, on a clean stop (Fold, from the
// driver's Release) and at open after replaying what a crash left. Each
// file is written to a temporary file, fsynced and renamed, so a crash
// leaves the old or the new record.
// Temporary files found at start are the traces of folds that never
// completed and are removed. Memory holds the decoded records, each
// changed only after its journal entry is durable; reads hand out deep
// copies (Clone). Writes of different records run in parallel, those of
// one record in order.
//
// Records carry a Phase so that operations spanning several steps
// (create the record, make the subvolume, set its limit) can be resumed or
// finished after a crash: the driver writes Creating before it touches the
// pool, Ready after, and Deleting before it removes anything.
//
// This package calls nothing outside the standard library.
package state
