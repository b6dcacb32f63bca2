// Package prefetch is the prefetch userdb: it returns the userdb_* fields
// the passdb already returned, without a lookup (docs/protocol.md §5.7). A
// request with no such fields (LDA, doveadm user: no passdb ran) is "not
// found", so a real userdb belongs after it; when prefetch is the only
// userdb, such a request is an internal failure, as in Dovecot.
package prefetch

import (
	"context"
	"errors"

	"github.com/authd-project/authd/backends"
)

// DB is the prefetch userdb.
type DB struct {
	// Only is set when prefetch is the configuration's only userdb: a
	// request without prefetched fields then fails instead of being "not
	// found" (Dovecot 2.3 and 2.4: "userdb lookup not possible with only
	// userdb prefetch", an internal failure, not an unknown user).
	Only bool
}

// ErrOnlyPrefetch is the internal failure of an Only prefetch userdb
// asked without prefetched fields.
var ErrOnlyPrefetch = errors.New("prefetch: no userdb fields from a passdb, and prefetch is the only userdb (a userdb lookup is not possible with only userdb prefetch)")

// LookupUser implements backends.Userdb.
func (d DB) LookupUser(ctx context.Context, req *backends.Request) (backends.UserAnswer, error) {
	if len(req.Prefetch) == 0 {
		if d.Only {
			return backends.UserAnswer{}, ErrOnlyPrefetch
		}
		return backends.UserAnswer{Outcome: backends.Unknown}, nil
	}
	return backends.UserAnswer{Outcome: backends.Found, Fields: req.Prefetch.Clone()}, nil
}
