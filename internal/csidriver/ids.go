package csidriver

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
)

const (
	volumePrefix   = "vol-"
	snapshotPrefix = "snap-"
	groupPrefix    = "group-"
)

// newID returns prefix followed by 16 random hex digits. IDs are random
// rather than derived from names: a name may be reused after its volume
// is deleted, an ID never is.
func newID(prefix string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return prefix + hex.EncodeToString(b)
}

var pageTokenRE = regexp.MustCompile(`^(vol|snap|group)-[0-9a-f]{16}$`)

// validPageToken reports whether token is one the driver could have handed
// out as a next_token: the ID of the first entry of the next page.
func validPageToken(token string) bool { return pageTokenRE.MatchString(token) }
