// Package prefetch is the prefetch userdb: it returns the userdb_* fields
// the passdb already returned, without a lookup (docs/protocol.md §5.7). A
// request with no such fields (LDA, doveadm user: no passdb ran) is "not
// found", so a real userdb belongs after it.
package prefetch

import (
	"context"

	"github.com/authd-project/authd/backends"
)

// DB is the prefetch userdb.
type DB struct{}

// LookupUser implements backends.Userdb.
func (DB) LookupUser(ctx context.Context, req *backends.Request) (backends.UserAnswer, error) {
	if len(req.Prefetch) == 0 {
		return backends.UserAnswer{Outcome: backends.Unknown}, nil
	}
	return backends.UserAnswer{Outcome: backends.Found, Fields: req.Prefetch.Clone()}, nil
}
