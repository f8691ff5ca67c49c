// Package image is the kubernetes.io/image volume plugin (GA upstream):
// an OCI image's filesystem mounted read-only into the pod. volplane
// resolves images by SPEC section 9's rule: image "a/b:c" is
// <Config.ImagesDir>/a_b_c/rootfs. SetUp bind-mounts that rootfs
// read-only (nosuid, nodev) onto the pod volume directory; an image with
// no rootfs there gets a clear error and the pod waits with a
// FailedMount event. pullPolicy is not used: images are not pulled. The
// unique volume name is per pod. TearDown unmounts.
//
// It may call: hostops.Host (BindMount, Unmount, IsMountPoint).
package image
