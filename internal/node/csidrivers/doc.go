// Package csidrivers is the node agent's list of the CSI drivers
// registered on this node: the seam between plugin registration, which
// adds and removes drivers as their registration sockets come and go
// under <root>/plugins_registry/, and the volume manager's CSI plugin,
// which looks a driver's endpoint up by name for every Node call.
//
// It holds names and endpoints only; it calls nothing.
package csidrivers
