// Package passwd is the passwd userdb: system users from the password
// database, returning uid, gid, home and system_groups_user as Dovecot's
// userdb passwd does.
//
// In the default build (cgo) lookups go through NSS, as Dovecot's do:
// os/user calls getpwnam_r, so users of sssd, LDAP (nss-ldapd), systemd
// and any other module in /etc/nsswitch.conf are found; listing users
// (doveadm user '*') walks getpwent_r. The static build (CGO_ENABLED=0,
// make build-static, or the osusergo tag) reads /etc/passwd alone: os/user's
// pure-Go code, and the file for listing (nss_static.go).
package passwd

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
)

// DB is the passwd userdb.
type DB struct {
	// File is what the static build lists users from; the cgo build
	// lists them through NSS.
	File string
}

// New accepts Dovecot's args (blocking=…, none needed).
func New(args string) (*DB, error) {
	for _, a := range strings.Fields(args) {
		if !strings.HasPrefix(a, "blocking=") {
			return nil, fmt.Errorf("%w: passwd: unknown argument %q", backends.ErrConfig, a)
		}
	}
	return &DB{File: "/etc/passwd"}, nil
}

// LookupUser implements backends.Userdb.
func (d *DB) LookupUser(ctx context.Context, req *backends.Request) (backends.UserAnswer, error) {
	unknown := backends.UserAnswer{Outcome: backends.Unknown}
	if req.User == "" || strings.ContainsAny(req.User, ":\n\x00") {
		return unknown, nil
	}
	u, err := user.Lookup(req.User)
	if err != nil {
		var uerr user.UnknownUserError
		if errors.As(err, &uerr) {
			return unknown, nil
		}
		return backends.UserAnswer{}, fmt.Errorf("passwd lookup %q: %w", req.User, err)
	}
	return backends.UserAnswer{Outcome: backends.Found, Fields: fields.Fields{
		{Key: "system_groups_user", Value: u.Username},
		{Key: "uid", Value: u.Uid},
		{Key: "gid", Value: u.Gid},
		{Key: "home", Value: u.HomeDir},
	}}, nil
}

// IterateUsers implements backends.Iterator: every user NSS enumerates
// (cgo), or every user of File (static build).
func (d *DB) IterateUsers(ctx context.Context, fn func(user string) bool) error {
	return d.iterate(ctx, fn)
}

// UsesNSS reports whether this build looks users up through NSS (cgo) or
// reads /etc/passwd alone.
const UsesNSS = usesNSS
