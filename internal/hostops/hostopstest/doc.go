// Package hostopstest gives root tests real filesystems on loop devices
// that clean themselves up: every mount under the test's directory and
// every loop device backed by a file there is removed when the test ends,
// also when it fails. Mounts and devices the test did not create are
// never touched.
package hostopstest
