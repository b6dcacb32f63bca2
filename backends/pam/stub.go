//go:build !(pam && cgo)

package pam

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/vars"
)

// Available reports whether this binary has the PAM driver. It is false
// in a build without the pam tag or without cgo; see ErrNotBuilt.
const Available = false

// DB is the PAM passdb. In this build it cannot be constructed; the type
// and its methods exist so that callers compile the same with and without
// the pam tag.
type DB struct{}

// New checks args (so that `authd check` also reports bad arguments) and
// then fails with an error wrapping backends.ErrConfig and ErrNotBuilt.
func New(args string, log *slog.Logger) (*DB, error) {
	if _, err := parseArgs(args); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: passdb pam: %w", backends.ErrConfig, ErrNotBuilt)
}

// VerifyPass implements backends.Verifier; in this build it only fails.
func (d *DB) VerifyPass(ctx context.Context, req *backends.Request, password []byte) (backends.PassAnswer, error) {
	return backends.PassAnswer{}, ErrNotBuilt
}

// VerifiesPasswords implements backends.Verifier.
func (d *DB) VerifiesPasswords() bool { return true }

// LookupPass implements backends.Passdb; in this build it only fails.
func (d *DB) LookupPass(ctx context.Context, req *backends.Request) (backends.PassAnswer, error) {
	return backends.PassAnswer{}, ErrNotBuilt
}

// PassCacheKey implements backends.PassCacheKeyer (never cached in this build).
func (d *DB) PassCacheKey() *vars.Template { return nil }

// Close implements backends.Closer.
func (d *DB) Close() error { return nil }
