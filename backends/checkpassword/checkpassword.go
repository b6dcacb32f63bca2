// Package checkpassword is the checkpassword passdb and userdb: an
// external program decides, run the way Dovecot 2.3 runs it
// (db-checkpassword.c, passdb-checkpassword.c, userdb-checkpassword.c):
//
//	passdb { driver = checkpassword  args = /usr/bin/checkpassword }
//	userdb { driver = checkpassword  args = /usr/bin/checkpassword }
//
// args is the command (%-variables expanded, split at spaces); authd adds
// the reply program as the last argument, which a checkpassword program
// runs after a success. The program reads "user\0password\0timestamp\0"
// from fd 3 (the timestamp is empty, the password too for lookups), and
// the reply program writes TAB-separated key=value fields to fd 4 (its
// variables are listed on ReplyEnv). Exit statuses:
//
//	password check:  0 ok (with a reply), 1 wrong password, 2 misused
//	                 (a userdb-only program), 111 or anything else: temporary failure
//	lookups (AUTHORIZED=1 in the environment, the reply program then exits 2):
//	                 2 found (with a reply), 3 unknown user, anything else: temporary failure
//
// The environment carries what Dovecot puts there (env.go). The reply
// program is authd's own ("authd checkpassword-reply", reply.go), which
// reads and writes what Dovecot's checkpassword-reply does, so it needs
// no Dovecot installation; "reply=PATH" selects another one.
//
// Each child runs in its own process group, with /dev/null as stdin and
// stdout, its stderr logged, under a deadline (the request's, at most
// timeout=) after which the whole group is killed; at most max_children run at
// once (others wait for a slot within their deadline). Close kills the
// groups still running and reaps them.
package checkpassword

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
	"github.com/authd-project/authd/schemes"
)

// Defaults of the authd-only options.
const (
	DefaultMaxChildren = 16
	DefaultTimeout     = 30 * time.Second
	// maxRequest is Dovecot's CHECKPASSWORD_MAX_REQUEST_LEN: a longer
	// user+password is refused without running anything.
	maxRequest = 512
	maxReply   = 64 << 10
)

// DB runs one checkpassword program; it is both a passdb and a userdb.
type DB struct {
	cmd     *vars.Template
	reply   []string
	timeout time.Duration
	slots   chan struct{}
	log     *slog.Logger

	stop    context.Context // cancelled by Close: every child is killed
	cancel  context.CancelFunc
	running sync.WaitGroup
}

// New parses args: optional authd options (max_children=N, timeout=DUR,
// reply=PATH) before the command. Dovecot's args are the command alone,
// which New accepts unchanged.
func New(args string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db := &DB{timeout: DefaultTimeout, log: log}
	max := DefaultMaxChildren
	words := strings.Fields(args)
	for len(words) > 0 {
		k, v, ok := strings.Cut(words[0], "=")
		if !ok || strings.Contains(k, "/") {
			break
		}
		switch k {
		case "max_children":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				return nil, fmt.Errorf("%w: checkpassword: max_children=%q: want 1 to 10000", backends.ErrConfig, v)
			}
			max = n
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%w: checkpassword: timeout=%q: want a duration such as 10s", backends.ErrConfig, v)
			}
			db.timeout = d
		case "reply":
			db.reply = strings.Fields(v)
		default:
			return nil, fmt.Errorf("%w: checkpassword: unknown option %q before the command", backends.ErrConfig, k)
		}
		words = words[1:]
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("%w: checkpassword: args must name the checkpassword program", backends.ErrConfig)
	}
	t, err := vars.Parse(strings.Join(words, " "))
	if err != nil {
		return nil, fmt.Errorf("%w: checkpassword: %w", backends.ErrConfig, err)
	}
	db.cmd = t
	if db.reply == nil {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("%w: checkpassword: cannot find authd's own path for the reply program: %w", backends.ErrConfig, err)
		}
		db.reply = []string{exe, ReplyCommand}
	}
	db.slots = make(chan struct{}, max)
	db.stop, db.cancel = context.WithCancel(context.Background())
	return db, nil
}

// ReplyCommand is the authd subcommand that is the reply program.
const ReplyCommand = "checkpassword-reply"

// Close kills the children still running and waits until they are reaped.
func (db *DB) Close() error {
	db.cancel()
	db.running.Wait()
	return nil
}

// VerifiesPasswords implements backends.Verifier: the program checks.
func (db *DB) VerifiesPasswords() bool { return true }

// VerifyPass implements backends.Verifier.
func (db *DB) VerifyPass(ctx context.Context, req *backends.Request, password []byte) (backends.PassAnswer, error) {
	if !representable(req.User) || strings.IndexByte(string(password), 0) >= 0 {
		return backends.PassAnswer{Outcome: backends.Mismatch}, nil
	}
	if len(req.User)+len(password)+3 > maxRequest {
		db.log.Info("checkpassword: user name and password too long", "user", req.User)
		return backends.PassAnswer{Outcome: backends.Mismatch}, nil
	}
	res, err := db.run(ctx, req, password, true)
	if err != nil {
		return backends.PassAnswer{}, err
	}
	switch res.status {
	case 0:
		if len(res.reply) == 0 {
			return backends.PassAnswer{}, fmt.Errorf("checkpassword: exit status 0 without a reply (was the reply program run?)")
		}
		// Dovecot keeps a password= field only for its cache, which
		// this passdb does not use: the program is asked every time.
		pe := passEntry(res.reply)
		pe.HasPassword, pe.Scheme, pe.Data = false, "", ""
		return backends.PassAnswer{Outcome: backends.Found, PassEntry: pe}, nil
	case 1:
		return backends.PassAnswer{Outcome: backends.Mismatch}, nil
	case 2:
		return backends.PassAnswer{}, fmt.Errorf("checkpassword: exit status 2 (a userdb-only checkpassword program used as passdb?)")
	}
	return backends.PassAnswer{}, fmt.Errorf("checkpassword: exit status %d", res.status)
}

// LookupPass implements backends.Passdb: a lookup without a password
// (AUTHORIZED=1), for credentials mechanisms and passdb lookups. A
// password= field is the stored password (PLAIN when it has no {scheme}).
// Dovecot also sets CREDENTIALS_LOOKUP and SCHEME for a credentials
// lookup; the passdb contract does not say which scheme is wanted, so
// authd sets neither.
func (db *DB) LookupPass(ctx context.Context, req *backends.Request) (backends.PassAnswer, error) {
	fs, found, err := db.lookup(ctx, req)
	if err != nil || !found {
		return backends.PassAnswer{Outcome: backends.Unknown}, err
	}
	return backends.PassAnswer{Outcome: backends.Found, PassEntry: passEntry(fs)}, nil
}

// LookupUser implements backends.Userdb: the userdb_* fields of the reply,
// without the prefix.
func (db *DB) LookupUser(ctx context.Context, req *backends.Request) (backends.UserAnswer, error) {
	fs, found, err := db.lookup(ctx, req)
	if err != nil || !found {
		return backends.UserAnswer{Outcome: backends.Unknown}, err
	}
	var out fields.Fields
	for _, f := range fs {
		if k, ok := strings.CutPrefix(f.Key, "userdb_"); ok && k != "" {
			out.Set(k, f.Value)
		}
	}
	return backends.UserAnswer{Outcome: backends.Found, Fields: out}, nil
}

// lookup runs the program with AUTHORIZED=1 and reads its verdict.
func (db *DB) lookup(ctx context.Context, req *backends.Request) (fields.Fields, bool, error) {
	if !representable(req.User) || len(req.User)+3 > maxRequest {
		return nil, false, nil
	}
	res, err := db.run(ctx, req, nil, false)
	if err != nil {
		return nil, false, err
	}
	switch res.status {
	case 2:
		if len(res.reply) == 0 {
			return nil, false, fmt.Errorf("checkpassword: exit status 2 without a reply")
		}
		return res.reply, true, nil
	case 3:
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("checkpassword: exit status %d on a lookup (does the program support AUTHORIZED=1?)", res.status)
}

// representable reports whether a name can travel on fd 3, where NUL
// ends it: "alice\x00x" must not be asked about as "alice".
func representable(user string) bool { return user != "" && strings.IndexByte(user, 0) < 0 }

// passEntry turns a reply into a passdb entry: password= is the stored
// password, every other field is a passdb field.
func passEntry(reply fields.Fields) backends.PassEntry {
	var pe backends.PassEntry
	for _, f := range reply {
		if f.Key == "password" {
			pe.HasPassword = true
			pe.Scheme, pe.Data = schemes.SplitStrict(f.Value)
			if pe.Scheme == "" {
				pe.Scheme = "PLAIN"
			}
			continue
		}
		pe.Fields.Set(f.Key, f.Value)
	}
	return pe
}

// Interface checks.
var (
	_ backends.Verifier = (*DB)(nil)
	_ backends.Userdb   = (*DB)(nil)
	_ backends.Closer   = (*DB)(nil)
)
