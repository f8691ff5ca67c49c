// Package cache holds the volume manager's two views of the node: the
// desired state of the world (which pod should have which volume, filled
// by the populator) and the actual state of the world (which volume is
// mounted where, filled by the reconciler and by reconstruction).
//
// Both are keyed by the volume's unique name (plugins.Plugin.VolumeName)
// and then by pod UID. They hold no logic beyond bookkeeping and never
// call a plugin or the host; the reconciler compares them. Every change
// to either state closes the channel Changed returned, so waiters (the
// agent's WaitForAttachAndMount) wake at once instead of polling.
//
// It may call: package plugins (types only).
package cache
