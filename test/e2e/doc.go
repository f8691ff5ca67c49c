// Package e2e holds volplane's end-to-end tests: the real binary, started
// as `volplane up` or `volplane server`, driven with the real kubectl and
// with client-go. They are the third tier (after unit tests and root tests
// on real mounts) and run with `make test` or `make e2e`.
//
// The binary is $VOLPLANE_BIN, or built once by TestMain into a temporary
// directory. kubectl is $KUBECTL or the `kubectl` on PATH; the oldest and
// newest installed clients are /usr/lib/google-cloud-sdk/bin/kubectl.1.27
// and kubectl.1.33. A test that needs something this machine lacks fails
// with the reason; it is never skipped silently.
package e2e
