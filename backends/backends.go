// Package backends is the contract between the engine and the passdb and
// userdb drivers (the subpackages), and in conformance/ the suite every
// driver runs. Every capability a driver may have is declared in this file
// and nowhere else; docs/architecture.md §Adding a driver says how to write
// one.
//
// A lookup answers with a value: an Outcome (found, unknown, disabled,
// expired, no credentials, mismatch) and what the backend had. The error
// result means only "could not tell" (server down, timeout, unreadable
// file, malformed row): nobody above this layer turns it into a wrong
// password, caches it, or counts it against the user
// (docs/architecture.md, house rule 1).
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
	// the prefetch userdb (docs/protocol.md §5.7).
	Prefetch fields.Fields
}

// Outcome is a backend's answer about one account. The zero value is no
// answer at all: a driver always sets one of the constants.
type Outcome uint8

// The outcomes. Each is a definite answer from the backend; "could not
// tell" is an error, never an Outcome.
const (
	// Found: the account exists. A passdb answer carries its stored
	// password (if any) and fields; a self-verifying passdb also means
	// that the password was right.
	Found Outcome = iota + 1
	// Unknown: no such account.
	Unknown
	// Disabled: the account exists but may not log in (a locked shadow
	// password, PAM's account stack refused it): FAIL code=user_disabled.
	Disabled
	// Expired: the account's password has expired: FAIL code=pass_expired.
	Expired
	// NoCredentials: the passdb can check a password but cannot hand one
	// out (PAM): a lookup without a password check cannot be answered.
	NoCredentials
	// Mismatch: a self-verifying passdb checked the password, and it is
	// wrong.
	Mismatch
)

var outcomeNames = [...]string{"", "found", "notfound", "disabled", "expired", "nocredentials", "mismatch"}

// String returns the outcome's name, also used as a metric label value.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && o != 0 {
		return outcomeNames[o]
	}
	return "invalid"
}

// Refusal reports outcomes that are the backend's refusal of an existing
// account: they end a passdb chain and are never served from an older
// cache entry.
func (o Outcome) Refusal() bool { return o == Disabled || o == Expired }

// PassEntry is what a passdb had for a user.
type PassEntry struct {
	// Scheme and Data are the stored password, split by the driver with its
	// own rule (passwd-file's lenient rule or SQL/LDAP's strict {…} rule,
	// docs/schemes.md §2.1) and with its default scheme filled in. Both
	// empty when the passdb gave no password.
	Scheme, Data string
	// HasPassword is false when the entry carries no password at all.
	HasPassword bool
	// Fields are the extra fields, in the order the backend produced them,
	// including userdb_* prefetch fields and flags such as nologin.
	Fields fields.Fields
}

// PassAnswer is a passdb's answer. With Found the entry is the user's;
// with Disabled or Expired it holds what the backend had (shadow's hash,
// so that the account state is revealed only to whoever knows the
// password; PAM's reason field); otherwise it is usually empty.
type PassAnswer struct {
	Outcome Outcome
	PassEntry
}

// UserAnswer is a userdb's answer: Found with the user's fields, or
// Unknown.
type UserAnswer struct {
	Outcome Outcome
	Fields  fields.Fields
}

// Passdb looks up a user's stored password and extra fields.
type Passdb interface {
	LookupPass(ctx context.Context, req *Request) (PassAnswer, error)
}

// Userdb looks up a user's userdb fields (uid, gid, home, mail …).
type Userdb interface {
	LookupUser(ctx context.Context, req *Request) (UserAnswer, error)
}

// Verifier is a passdb that can check a password itself instead of handing
// out a hash: LDAP with auth_bind = yes, PAM. VerifyPass answers Found
// (the password is right), Mismatch, Unknown, Disabled or Expired.
type Verifier interface {
	Passdb
	VerifyPass(ctx context.Context, req *Request, password []byte) (PassAnswer, error)
	// VerifiesPasswords reports whether the driver checks passwords
	// itself in its current configuration (LDAP does only with
	// auth_bind = yes). When false, the engine looks the hash up and
	// verifies it, keeping the password policy (nopassword, the cache's
	// fingerprints) in one place.
	VerifiesPasswords() bool
}

// SelfVerifier returns db as a Verifier when it checks passwords itself in
// its current configuration.
func SelfVerifier(db Passdb) (Verifier, bool) {
	v, ok := db.(Verifier)
	if !ok || !v.VerifiesPasswords() {
		return nil, false
	}
	return v, true
}

// Iterator lists users for the master protocol's LIST command.
type Iterator interface {
	// IterateUsers calls fn for every user until fn returns false.
	IterateUsers(ctx context.Context, fn func(user string) bool) error
}

// PassCacheKeyer is a passdb whose answers may be cached: the template's
// expansion is the cache key, made of exactly the variables the lookup
// depends on (its query, filter or templated path, docs/protocol.md §5.9).
// A nil template means "do not cache" (a passwd-file with a fixed path is
// memory already).
type PassCacheKeyer interface {
	PassCacheKey() *vars.Template
}

// UserCacheKeyer is PassCacheKeyer for userdb answers.
type UserCacheKeyer interface {
	UserCacheKey() *vars.Template
}

// PassdbChecker is a userdb that cannot tell whether a user exists (a
// static userdb without allow_all_users=yes): outside a login the engine
// asks the passdbs first, as Dovecot does.
type PassdbChecker interface {
	NeedsPassdbCheck() bool
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
