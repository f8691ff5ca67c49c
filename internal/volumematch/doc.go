// Package volumematch holds the rules by which a PersistentVolumeClaim is
// matched to a PersistentVolume, shared by the PV controller
// (internal/controller/binder), which binds claims of Immediate classes,
// and the scheduler's binding plugin (internal/scheduler/volumebinding),
// which chooses volumes for claims of WaitForFirstConsumer classes. One
// set of rules, so the two never disagree about which volume fits.
//
// It owns the match index (volumes grouped by class, attributes class
// and volume mode, then by access-mode set, then ordered by capacity:
// the smallest fitting volume of the bucket with the fewest modes wins,
// as upstream chooses), the check for a claim that names its volume, and
// the check for a volume pre-bound to a claim. Index.BestFunc lets a
// caller narrow the candidates (the scheduler: a node's affinity and the
// volumes it has assumed). The package is pure: it calls apimachinery
// and component-helpers only, and never the API.
package volumematch
