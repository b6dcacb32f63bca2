// Package static is the static passdb and userdb: fields given in args,
// the same for every user, with %-variables (docs/protocol.md §5.5).
//
//	passdb { driver = static  args = nopassword=y allow_nets=192.0.2.0/24 }
//	userdb { driver = static  args = uid=vmail gid=vmail home=/var/mail/%d/%n allow_all_users=yes }
//
// A static userdb without allow_all_users=yes cannot know whether a user
// exists; like Dovecot, the engine then asks the passdbs first (see
// NeedsPassdbCheck).
package static

import (
	"context"
	"fmt"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
	"github.com/authd-project/authd/schemes"
)

// DB is a static passdb or userdb.
type DB struct {
	fields        []vars.FieldTemplate
	allowAll      bool
	defaultScheme string
}

// New parses args: space-separated key=value templates. allow_all_users=
// is the userdb's switch; password= is the passdb's password (default
// scheme PLAIN).
func New(args string) (*DB, error) {
	fts, err := vars.ParseFields(args)
	if err != nil {
		return nil, fmt.Errorf("%w: static: %w", backends.ErrConfig, err)
	}
	d := &DB{defaultScheme: "PLAIN"}
	for _, f := range fts {
		if f.Key == "allow_all_users" {
			v := strings.ToLower(f.Value.String())
			d.allowAll = v == "yes" || v == "y" || v == "1"
			continue
		}
		d.fields = append(d.fields, f)
	}
	return d, nil
}

// New24 builds a Dovecot 2.4 static passdb or userdb: the password is
// passdb_static_password (a 2.4 template, "" for none), the userdb's
// switch userdb_static_allow_all_users; the fields of 2.4's fields { }
// are applied by the engine, as for every driver.
func New24(password string, allowAllUsers bool) (*DB, error) {
	d := &DB{defaultScheme: "PLAIN", allowAll: allowAllUsers}
	if password != "" {
		f, err := vars.Syntax24.Field("password", password)
		if err != nil {
			return nil, fmt.Errorf("%w: static: passdb_static_password: %w", backends.ErrConfig, err)
		}
		d.fields = []vars.FieldTemplate{f}
	}
	return d, nil
}

// NeedsPassdbCheck reports whether a userdb lookup outside a login must
// first ask the passdbs whether the user exists (allow_all_users=no).
func (d *DB) NeedsPassdbCheck() bool { return !d.allowAll }

func (d *DB) expand(vc *vars.Context) fields.Fields {
	fs := make(fields.Fields, 0, len(d.fields))
	for _, f := range d.fields {
		switch {
		case f.Remove:
			fs.Del(f.Key)
		case f.Protected:
			fs.SetDefault(f.Key, f.Value.Expand(vc, nil))
		default:
			fs.Set(f.Key, f.Value.Expand(vc, nil))
		}
	}
	return fs
}

// LooksUpInMemory tells the engine that a lookup never waits: the
// answer is made from the configuration.
func (d *DB) LooksUpInMemory() bool { return true }

// LookupPass implements backends.Passdb: every user exists.
func (d *DB) LookupPass(ctx context.Context, req *backends.Request) (backends.PassAnswer, error) {
	fs := d.expand(req.Vars)
	pe := backends.PassEntry{}
	if pw, ok := fs.Get("password"); ok {
		fs.Del("password")
		pe.HasPassword = true
		pe.Scheme, pe.Data = schemes.SplitStrict(pw)
		if pe.Scheme == "" {
			pe.Scheme = d.defaultScheme
		}
	}
	pe.Fields = fs
	return backends.PassAnswer{Outcome: backends.Found, PassEntry: pe}, nil
}

// LookupUser implements backends.Userdb.
func (d *DB) LookupUser(ctx context.Context, req *backends.Request) (backends.UserAnswer, error) {
	return backends.UserAnswer{Outcome: backends.Found, Fields: d.expand(req.Vars)}, nil
}
