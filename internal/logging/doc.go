// Package logging sets up volplane's one logger: log/slog, carried in the
// context, with klog (which client-go and the embedded upstream components
// use) routed into it.
//
// Upstream components are chatty, so their messages are filtered by
// verbosity: at the default level only warnings and errors from upstream
// and volplane's own info messages are printed; -v N lets upstream's
// klog.V(N) messages through as debug records.
package logging
