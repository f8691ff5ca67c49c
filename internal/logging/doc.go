// Package logging sets up volplane's one logger: log/slog, carried in the
// context, with klog (which client-go and the embedded upstream components
// use) routed into it.
//
// Upstream components are chatty, so their messages are filtered by
// verbosity: at the default level only warnings and errors from upstream
// and volplane's own info messages are printed; -v N lets upstream's
// klog.V(N) messages through as debug records. A short list of benign
// upstream warnings and errors, expected in volplane's configuration, is
// kept to -v; so is everything upstream says once the process is stopping.
//
// An upstream klog.Fatal ends the process as upstream intends, with its
// reason logged and the AtFatal hook (the control plane's stop) run first;
// during a stop it only parks the failing goroutine, since a component
// that loses its API while being stopped has nothing left to report.
package logging
