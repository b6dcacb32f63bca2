// Package prefetch is the prefetch userdb: it returns the userdb_* fields
// the passdb already returned, without a lookup (protocol.md §5.7). A
// request with no such fields (LDA, doveadm user: no passdb ran) is "not
// found", so a real userdb belongs after it.
package prefetch

import (
	"context"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
)

// DB is the prefetch userdb.
type DB struct{}

// LookupUser implements backends.Userdb.
func (DB) LookupUser(ctx context.Context, req *backends.Request) (fields.Fields, bool, error) {
	if len(req.Prefetch) == 0 {
		return nil, false, nil
	}
	return req.Prefetch.Clone(), true, nil
}
