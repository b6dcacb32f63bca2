// Package passwd is the passwd userdb: system users from the password
// database (NSS through os/user, which reads /etc/passwd when built
// without cgo), returning uid, gid, home and system_groups_user as
// Dovecot's userdb passwd does.
package passwd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
)

// DB is the passwd userdb.
type DB struct {
	// File is read for LIST only; lookups go through os/user.
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

// IterateUsers implements backends.Iterator over the passwd file.
func (d *DB) IterateUsers(ctx context.Context, fn func(user string) bool) error {
	f, err := os.Open(d.File)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		if name != "" && !fn(name) {
			return nil
		}
	}
	return sc.Err()
}
