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
func (d *DB) LookupUser(ctx context.Context, req *backends.Request) (fields.Fields, bool, error) {
	if req.User == "" || strings.ContainsAny(req.User, ":\n\x00") {
		return nil, false, nil
	}
	u, err := user.Lookup(req.User)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("passwd lookup %q: %w", req.User, err)
	}
	return fields.Fields{
		{Key: "system_groups_user", Value: u.Username},
		{Key: "uid", Value: u.Uid},
		{Key: "gid", Value: u.Gid},
		{Key: "home", Value: u.HomeDir},
	}, true, nil
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
