// Package binder is volplane's PV controller ("persistentvolume-binder"):
// it binds PersistentVolumeClaims to PersistentVolumes, provisions volumes
// through in-process provisioners or hands claims to external ones,
// drives both objects' phases, and reclaims released volumes. It replaces
// upstream's controller of the same name, with the same annotations,
// phases, event reasons and write order, so kubectl, the scheduler and
// CSI sidecars see the behaviour they expect.
//
// # The state machine
//
// A binding is two pointers, PV spec.claimRef and PVC spec.volumeName,
// written one after the other without a transaction. The controller
// writes the volume first; whatever the objects look like after any
// write, the next sync knows how to go on:
//
//	PV phase   PVC phase  objects                                  next step (sync function)
//	---------  ---------  ---------------------------------------  -----------------------------------------
//	Pending    -          new volume, no claimRef                  Available (syncVolume); bindable
//	Available  Pending    claim unbound, no volumeName             matcher chooses; bind (batch.go, bind.go)
//	Available  Pending    PV claimRef names claim, no UID          bind (syncUnboundClaim: pre-bound PV)
//	Available  Pending    claim volumeName names unbound PV        bind if it fits, else VolumeMismatch
//	any        Pending    PV claimRef has claim UID (bind step 1,  bind finishes: PV status, PVC spec,
//	                      or a provisioner or the scheduler)       PVC status (syncUnboundClaim)
//	Bound      Pending    PVC volumeName + bind-completed          PVC status Bound (syncBoundClaim)
//	Bound      Bound      both pointers                            nothing
//	-          Bound      PV deleted                               Lost, ClaimLost event (syncBoundClaim)
//	Available  Lost       PV back with the claim's claimRef        Bound again (syncBoundClaim)
//	Bound      -          PVC deleted                              Released (syncVolume), then reclaim:
//	Released   -            Retain                                 stays Released until claimRef removed
//	Released   -            Delete                                 backend deleted, PV deleted (reclaim.go)
//	Released   -            Recycle                                scrubbed, claimRef removed, Available
//	Failed     -          delete/recycle failed                    retried with backoff
//	Bound      Bound      PV claimRef names a claim bound          unbind (controller's binding) or drop
//	                      elsewhere                                the UID (creator's pre-binding)
//
// A bind is four writes: PV spec (claimRef with UID, bound-by-controller
// annotation), PV status (Bound), PVC spec (volumeName, bind-completed and
// bound-by-controller annotations), PVC status (Bound, capacity, access
// modes). Each skips itself when already done, so a crash or a 409 at any
// write is resumed by the next sync: the claim's sync looks first for a
// volume whose claimRef carries its UID. A volume is never given to a
// second claim because only volumes without claimRef are matched, and a
// claim never gets a second volume because a volume pre-bound to it wins
// over matching.
//
// # Matching
//
// The match index (package volumematch, shared with the scheduler's
// binding plugin) keeps the bindable volumes by (class, attributes
// class, volume mode), then access-mode set (fewest modes first), then
// capacity, so a match costs O(log n). batch.go collects unbound claims
// during a settle window and matches a burst as a batch, largest request
// first: no claim is stranded by arrival order and each gets its exact
// fit when there is one. A burst that arrives over seconds (parallel
// kubectl processes) is held together by the burst gap: a claim whose
// only fit is larger than asked waits until its group has been quiet for
// its burst gap: Config.BurstGap (3s) for a lone arrival, growing with
// the burst's length (6 s from its second arrival, 9 s from its fourth,
// ... 21 s from its 64th), so a burst made by starved kubectl processes
// on a loaded machine is not cut short by a stall of a few seconds. Any
// burst whose gaps stay under its burst gap, and which lasts under
// Config.MaxBurstHold (2 min), ends with exact fits and nothing
// stranded. Claims of a WaitForFirstConsumer class only take
// volumes pre-bound to them (the scheduler binds the others), so they
// skip the batch, as does a claim of a class that provisions when no
// volume of its group fits and none has arrived for its burst gap: it is
// sent to provisioning at once, as upstream's sync would send it, and a
// burst of such claims is provisioned while it still arrives.
//
// # Concurrency
//
// Claim and volume syncs, and bind workers carrying out the matcher's
// decisions and the binds of pre-bound claims (a WaitForFirstConsumer
// claim whose volume the scheduler chose binds at once, with no batch),
// run in parallel; a keyed lock per volume and per claim
// (volume first) keeps two of them from working on one object. The store
// (store.go) holds the newest version of every object, including the
// answers to the controller's own writes, so stale informer events cause
// neither writes nor conflicts. Provisioning, deletion and recycling run
// as operations (operations.go), one per object, with exponential backoff.
//
// # Departures from upstream, on purpose
//
//   - Bursts are matched in batches (batch.go) rather than claim by claim
//     in arrival order.
//   - A claim whose spec.volumeName names a volume that does not exist
//     gets a Warning FailedBinding event saying so ("volume "X" requested
//     by the claim does not exist"), at each sync while it waits; upstream
//     only keeps such a claim Pending, silently. Bad input gets an event
//     that names the problem.
//
// The package may call client-go, component-helpers and prometheus; it
// never calls upstream's pkg/controller/volume or pkg/volume.
package binder
