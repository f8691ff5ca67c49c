// Package objectcache gives the configMap, secret and projected plugins
// the configMaps and secrets their volumes show, and tells them within
// moments when one changes, which is how a content update reaches a
// running pod in well under 2 s (upstream polls through a sync period and
// a cache TTL: 60-90 s).
//
// For every object some volume reads there is one watch: a list and watch
// of the object's namespace with the field selector metadata.name=<name>,
// which is what the Node authorizer lets a node do for objects its pods
// reference. Volumes that read the same object share its watch; the watch
// stops when Release has been called for the last of them. Until a watch
// has listed, a read is a direct GET, so the first SetUp of a pod never
// waits for a watch to start and gets the API's own error (a Forbidden
// while the Node authorizer does not yet know the pod).
//
// A missing object is an error for which apierrors.IsNotFound holds,
// worded as the kubelet's object managers word it: configmap "x" not
// found, secret "x" not found. When it appears later, the watch sees it
// and the volume is reported changed, so the failed SetUp is retried at
// once and succeeds by itself.
//
// OnChange registers a callback that gets the unique name of each volume
// whose object changed (added, updated, deleted), except for the version
// that volume was last handed. The callbacks run on the watch's goroutine
// and must not block; the plugins pass them on (package apivolume).
//
// The cache reads with the client it is given, the node's identity, and
// never logs an object's content.
package objectcache
