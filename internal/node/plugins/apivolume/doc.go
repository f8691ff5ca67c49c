// Package apivolume is what the configMap, secret, downwardAPI and
// projected plugins share: the life of the volume directory, the unique
// volume name, and the change notifier the volume manager listens to.
//
// # The volume directory
//
// SetUp creates <root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>
// (mode 0777, as upstream's wrapped emptyDir), mounts a tmpfs on it where
// upstream wraps a memory emptyDir (secret, downwardAPI and every
// projected volume, so secrets and tokens never touch the disk; only
// configMap volumes live on disk), and writes the payload with package
// atomicwriter. A SetUp that mounted the
// tmpfs and then failed unmounts it again, so a volume that never came up
// leaves no mount behind for a teardown that may never come.
//
// TearDown unmounts the tmpfs (nothing mounted is fine), refuses to go on
// while anything is still mounted at or below the directory, then removes
// the directory and tells the object cache, the token manager and the
// pod certificate manager (through the plugin's Release hook) that the
// volume reads nothing any more.
//
// A volume whose SetUp never succeeded gets no TearDown; when its pod
// goes, the volume manager calls ForgetPod(uid) on every plugin that has
// it, so the watches and tokens the volume held are released.
//
// # Unique names
//
// A volume's name is "<plugin>/<pod uid>-<volume name>", upstream's name
// for volumes that live as long as the pod; NameFromDir gives it back
// from the pod volume directory, which is all TearDown is handed.
//
// The volumes are read-only in containers, as upstream mounts them; the
// volume manager's populator says so, not the plugins.
//
// # Change notification (the seam with the volume manager)
//
// When a volume's content changed, the plugin calls Host.Remount with the
// volume's pod (the volume manager then sets the pod's Remounter volumes
// up again), and the OnChange callbacks with the volume's unique name.
// Every plugin built on Base implements Notifier:
//
//	OnChange(fn func(volumeName string))
//
// A volume manager that prefers names to pods calls OnChange once per
// plugin, after Init, with a function that marks the named volume for a
// new SetUp (these volumes are Remounters; SetUp is idempotent and a
// no-op when the content is unchanged). Both are called when a configMap,
// secret or ClusterTrustBundle the volume shows changed, appeared or went
// away, when a service account token of the volume reaches 80% of its
// life (or 24 h), and when a pod certificate request is answered or its
// certificate reaches beginRefreshAt. They run on a watch or timer goroutine and must not
// block: queue the work and return.
//
// downwardAPI content depends only on the pod (and, for resourceFieldRef
// without limits, on the node's allocatable): the volume manager calls
// SetUp again when the pod object it is given changes; no notifier is
// involved.
package apivolume
