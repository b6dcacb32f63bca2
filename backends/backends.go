// Package backends defines the contract every passdb and userdb driver
// implements, and (in conformance.go) the suite every driver runs.
//
// Every lookup has three outcomes (design.md, house rule 1): found, not
// found, and "could not tell" (an error). An error is never turned into a
// wrong-password answer by anyone above this layer.
package backends

import (
	"context"
	"errors"

	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
)

// Request is what a driver needs for one lookup.
type Request struct {
	// User is the name to look up, after name processing (%u).
	User string
	// Vars holds the request's values for %-variable expansion in paths,
	// queries and filters. Vars.User equals User.
	Vars *vars.Context
	// Prefetch holds the userdb_* fields an earlier passdb returned, for
	// the prefetch userdb (protocol.md §5.7).
	Prefetch fields.Fields
}

// PassEntry is a passdb lookup result.
type PassEntry struct {
	// Scheme and Data are the stored password, split by the driver with its
	// own rule (passwd-file's $1$ rule or SQL/LDAP's strict {…} rule) and
	// with its default scheme filled in. Both empty when the passdb gave no
	// password.
	Scheme, Data string
	// HasPassword is false when the entry carries no password at all.
	HasPassword bool
	// Fields are the extra fields, in the order the backend produced them,
	// including userdb_* prefetch fields and flags such as nologin.
	Fields fields.Fields
}

// Passdb looks up a user's stored password and extra fields.
type Passdb interface {
	// LookupPass returns (entry, true, nil) when the user exists,
	// (zero, false, nil) when it does not, and an error when it could not
	// tell (backend down, timeout, unreadable file).
	LookupPass(ctx context.Context, req *Request) (PassEntry, bool, error)
}

// Userdb looks up a user's userdb fields (uid, gid, home, mail …).
type Userdb interface {
	LookupUser(ctx context.Context, req *Request) (fields.Fields, bool, error)
}

// Iterator lists users for the master protocol's LIST command.
type Iterator interface {
	// IterateUsers calls fn for every user until fn returns false.
	IterateUsers(ctx context.Context, fn func(user string) bool) error
}

// Closer is implemented by drivers that hold connections or goroutines.
type Closer interface {
	Close() error
}

// Reloader is implemented by drivers that cache files and can re-read them
// on SIGHUP.
type Reloader interface {
	Reload() error
}

// ErrConfig marks a driver configuration error (bad args), reported by
// authd check with the block's file:line.
var ErrConfig = errors.New("invalid driver configuration")

// Verifier is a passdb that checks the password itself instead of
// returning a hash: LDAP with auth_bind, PAM. found=false is an unknown
// user, found && !ok a wrong password, err "could not tell".
type Verifier interface {
	VerifyPass(ctx context.Context, req *Request, password []byte) (entry PassEntry, found bool, ok bool, err error)
}

// AuthBinder is implemented by Verifiers that check passwords themselves
// only in some configurations (LDAP with auth_bind = yes); when AuthBind
// is false the engine looks the hash up and verifies it, keeping the
// password policy (nopassword, the cache's fingerprints) in one place.
type AuthBinder interface {
	AuthBind() bool
}

// ErrNoCredentials is returned by LookupPass of a Verifier that cannot
// hand out passwords (PAM): lookups without authentication fail with
// Dovecot's "Configured passdbs don't support credentials lookups".
var ErrNoCredentials = errors.New("passdb does not support credentials lookups")

// Account states a passdb reports as errors: the engine answers them with
// FAIL code=user_disabled / code=pass_expired (protocol.md §1.5).
var (
	ErrUserDisabled = errors.New("account disabled")
	ErrPassExpired  = errors.New("password expired")
)
