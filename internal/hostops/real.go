package hostops

// Real is the Host of the machine volplane runs on. It needs root (or
// CAP_SYS_ADMIN) and the tools of util-linux, e2fsprogs, xfsprogs and
// btrfs-progs.
type Real struct{}

// New returns the real Host.
func New() *Real { return &Real{} }

var _ Host = (*Real)(nil)
