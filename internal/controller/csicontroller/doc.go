// Package csicontroller runs the controller side of one CSI driver: the
// provisioner, the attacher and storage capacity, for the driver on one
// socket. It is what `volplane csi-controller --csi-address` runs against
// any cluster's API (one process where upstream runs external-provisioner
// and external-attacher), and what `volplane up`/`server` run in process
// for named drivers: Descriptor(Config{Name, Endpoint}) is a controller
// for the controller manager, one per driver.
//
// The driver need not answer when the manager starts: the informers are
// registered at Init, and Run waits for the driver (Connect: GetPluginInfo,
// Probe, capabilities, with backoff up to 10 s between attempts, for as
// long as it runs, each attempt on a fresh connection) before it builds
// the parts the driver's capabilities call for (the provisioner with CREATE_DELETE_VOLUME; the
// attacher always, which attaches without calls when the driver has no
// PUBLISH_UNPUBLISH_VOLUME). A socket that answers with another driver's
// name than Config.Name runs nothing and says so.
//
// Leader election is per driver: `volplane csi-controller` names its Lease
// LeaseName(driver), so two sidecars of one driver do not both act while
// sidecars of different drivers do not wait for each other. In process,
// the controllers run under the controller manager's own Lease.
//
// The package calls the controller packages and the CSI client.
package csicontroller
