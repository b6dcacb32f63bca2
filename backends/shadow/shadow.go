// Package shadow is the shadow passdb: local system accounts checked
// against the crypt(3) hashes in /etc/shadow, in pure Go (no cgo, no NSS).
//
//	passdb {
//	  driver = shadow
//	  args = [blocking=yes|no] [file=/path/to/shadow]
//	}
//
// blocking= is Dovecot's and has no effect here. file= is authd's own (for
// tests, chroots and copies of the file); Dovecot 2.3 would reject it.
//
// # Lookups
//
// LookupPass returns the stored hash under the CRYPT scheme (Dovecot's
// SHADOW_PASS_SCHEME), so the engine verifies it like any other hash and
// every crypt(3) format works: $y$ yescrypt (Debian 12's default), $6$,
// $5$, $1$, bcrypt, DES … (docs/schemes.md, crypt family). A "{SCHEME}" prefix
// in the file is honoured as Dovecot's password parsing does.
//
// # Locked and expired accounts
//
// A password field that is empty or starts with '*' or '!' ("!", "!!",
// "*", and "!$y$…" after usermod -L) is a locked account: LookupPass
// answers backends.Disabled (FAIL code=user_disabled), which is what
// Dovecot 2.3's passdb-shadow.c does (IS_VALID_PASSWD →
// PASSDB_RESULT_USER_DISABLED).
//
// Dovecot's shadow passdb ignores the aging fields; authd does not. An
// account that pam_unix's account check (check_shadow_expiry in Linux-PAM
// 1.5.2, modules/pam_unix/passverify.c) would refuse — sp_expire reached
// (chage -E), a forced change (last change 0: chage -d 0, passwd -e), a
// password older than sp_max, or older than sp_max+sp_inact — gets
// backends.Expired (FAIL code=pass_expired). That is the answer
// Dovecot's PAM passdb gives for the same accounts (PAM_ACCT_EXPIRED and
// PAM_NEW_AUTHTOK_REQD both map to PASSDB_RESULT_PASS_EXPIRED there), so
// moving between driver = pam and driver = shadow changes nothing for the
// user. For an expired account the answer carries the entry (with the
// hash), so that the engine, which verifies the password before honouring
// the account state, keeps that state from anyone who does not know the
// password.
//
// # The file
//
// The file is re-read when it changes (checked by stat on every lookup;
// passwd, chpasswd and usermod replace it by rename, so the inode changes).
// Lines follow shadow(5) as glibc parses them: missing or empty numeric
// fields are -1, NIS "+"/"-" lines and comments are skipped, the first of
// duplicate names wins, a malformed line is skipped with a file:line
// warning (its content never reaches the log). An unreadable file (authd
// not in group shadow) is an error — a temporary failure — never "unknown
// user".
//
// Only the file is read; shadow entries from other NSS sources (sss, ldap)
// are not seen. Use driver = pam for those.
package shadow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/textlines"
	"github.com/authd-project/authd/schemes"
)

// DefaultFile is the shadow file read without file=.
const DefaultFile = "/etc/shadow"

// Scheme is the default scheme of the stored hashes, Dovecot's
// SHADOW_PASS_SCHEME.
const Scheme = "CRYPT"

// maxLine bounds one line; longer lines are malformed.
const maxLine = 64 * 1024

// DB is the shadow passdb. It is safe for concurrent use.
type DB struct {
	path string
	log  *slog.Logger
	// now is time.Now, replaceable in tests of the aging rules.
	now func() time.Time

	mu    sync.Mutex
	stamp fileStamp
	users map[string]*entry // nil until read, or after a read error
	err   error             // the last read error, kept until the file changes
}

// fileStamp identifies one version of the file.
type fileStamp struct {
	mtime, ctime time.Time
	size         int64
	ino          uint64
}

// entry is one shadow(5) line. Day counts are days since 1970-01-01; -1
// means the field was empty, as getspnam reports it.
type entry struct {
	hash                                 string
	lastChange, min, max, warn, inactive int64
	expire                               int64
}

// New parses the passdb args: `[blocking=yes|no] [file=PATH]`.
func New(args string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DB{path: DefaultFile, log: log, now: time.Now}
	for _, a := range strings.Fields(args) {
		switch {
		case a == "blocking=yes" || a == "blocking=no":
			// Dovecot runs getspnam in an auth worker process; authd
			// reads the file itself and has nothing to block on.
		case strings.HasPrefix(a, "file="):
			d.path = strings.TrimPrefix(a, "file=")
			if d.path == "" {
				return nil, fmt.Errorf("%w: shadow: empty file=", backends.ErrConfig)
			}
		default:
			return nil, fmt.Errorf("%w: shadow: unknown argument %q (known: blocking=, file=)", backends.ErrConfig, a)
		}
	}
	return d, nil
}

// File is the path of the shadow file this passdb reads.
func (d *DB) File() string { return d.path }

// LookupPass implements backends.Passdb. See the package comment for the
// locked (Disabled) and expired (Expired) answers.
func (d *DB) LookupPass(ctx context.Context, req *backends.Request) (backends.PassAnswer, error) {
	if err := ctx.Err(); err != nil {
		return backends.PassAnswer{}, err
	}
	users, err := d.load()
	if err != nil {
		return backends.PassAnswer{}, err
	}
	e, ok := users[req.User]
	if !ok || !validName(req.User) {
		return backends.PassAnswer{Outcome: backends.Unknown}, nil
	}
	if locked(e.hash) {
		return backends.PassAnswer{Outcome: backends.Disabled}, nil
	}
	ans := backends.PassAnswer{Outcome: backends.Found, PassEntry: backends.PassEntry{HasPassword: true}}
	ans.Scheme, ans.Data = schemes.SplitDefault(e.hash, Scheme)
	if why := e.expired(d.today()); why != "" {
		d.log.Debug("shadow: password expired", "user", req.User, "why", why)
		ans.Outcome = backends.Expired
	}
	return ans, nil
}

// Reload forgets the parsed file; the next lookup reads it again.
func (d *DB) Reload() error {
	d.mu.Lock()
	d.users, d.err, d.stamp = nil, nil, fileStamp{}
	d.mu.Unlock()
	return nil
}

// validName refuses names that can never be a shadow(5) name but could
// match a key by accident (none can today; this keeps it so if parsing
// ever changes).
func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, ":\n\x00") && s[0] != '+' && s[0] != '-'
}

// locked is Dovecot's !IS_VALID_PASSWD (src/auth/passdb.h): empty, or
// starting with '*' or '!'.
func locked(hash string) bool {
	return hash == "" || hash[0] == '*' || hash[0] == '!'
}

// today is the current day number, as pam_unix computes it
// (time(NULL) / 86400: UTC days).
func (d *DB) today() int64 {
	return d.now().Unix() / 86400
}

// expired applies pam_unix's check_shadow_expiry (Linux-PAM 1.5.2,
// modules/pam_unix/passverify.c) line by line, -1 arithmetic included, and
// returns why the account may not log in, or "". The "changed too
// recently" (sp_min) and warning outcomes do not refuse a login and are
// left out.
func (e *entry) expired(today int64) string {
	if e.expire != -1 && today >= e.expire {
		// PAM_ACCT_EXPIRED
		return "account expired (sp_expire)"
	}
	if e.lastChange == 0 {
		// PAM_NEW_AUTHTOK_REQD, "administrator enforced"
		return "password change required (last change is 0)"
	}
	if today < e.lastChange {
		// pam_unix lets a password changed "in the future" through.
		return ""
	}
	age := today - e.lastChange
	if age > e.max && age > e.inactive && age > e.max+e.inactive && e.max != -1 && e.inactive != -1 {
		// PAM_AUTHTOK_EXPIRED: the inactivity period after the
		// password expired is over too.
		return "password expired and inactive period over (sp_max + sp_inact)"
	}
	if age > e.max && e.max != -1 {
		// PAM_NEW_AUTHTOK_REQD, "password aged"
		return "password expired (sp_max)"
	}
	return ""
}

// readFile is os.ReadFile; tests make it fail once, as EMFILE or EIO
// would, which root (who runs the tests) cannot provoke with permissions.
var readFile = os.ReadFile

// load returns the users, re-reading the file when it changed.
func (d *DB) load() (map[string]*entry, error) {
	st, err := os.Stat(d.path)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.users, d.err = nil, nil
		return nil, d.readError(err)
	}
	stamp := stampOf(st)
	if (d.users != nil || d.err != nil) && stamp == d.stamp {
		return d.users, d.err
	}
	data, err := readFile(d.path)
	if err != nil {
		// Not stamped: the next lookup reads again, so a passing
		// EMFILE/EIO or a fixed permission heals by itself.
		d.users, d.err, d.stamp = nil, d.readError(err), fileStamp{}
		return nil, d.err
	}
	d.stamp = stamp
	d.users, d.err = parse(d.path, data, d.log), nil
	return d.users, nil
}

// readError wraps a failure to read the file, with the usual fix for the
// usual cause.
func (d *DB) readError(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("shadow: %w (authd needs read access: run it as root or add its user to group shadow)", err)
	}
	return fmt.Errorf("shadow: %w", err)
}

func stampOf(st fs.FileInfo) fileStamp {
	s := fileStamp{mtime: st.ModTime(), size: st.Size()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.ino = sys.Ino
		s.ctime = time.Unix(sys.Ctim.Sec, sys.Ctim.Nsec)
	}
	return s
}

// parse reads a whole shadow file. Malformed lines are logged and skipped.
func parse(path string, data []byte, log *slog.Logger) map[string]*entry {
	users := map[string]*entry{}
	textlines.Each(data, maxLine, func(lineNo int, line string) {
		trimmed := strings.TrimLeft(line, " \t")
		if trimmed == "" || trimmed[0] == '#' {
			return
		}
		if line[0] == '+' || line[0] == '-' {
			// NIS compat entries (nsswitch "compat"): not accounts.
			return
		}
		name, e, err := parseLine(line)
		if err != nil {
			// The line holds a hash: log where, never what.
			log.Warn("shadow: skipping malformed line", "file", path, "line", lineNo, "err", err)
			return
		}
		if _, dup := users[name]; dup {
			// getspnam returns the first match.
			return
		}
		users[name] = e
	}, func(lineNo int) {
		log.Warn("shadow: skipping a line longer than the limit", "file", path, "line", lineNo, "limit", maxLine)
	})
	return users
}

// parseLine parses name:password:lastchg:min:max:warn:inactive:expire:flag.
// As in glibc, a line may stop after the password (the old two-field
// form) and empty numeric fields are -1.
func parseLine(line string) (string, *entry, error) {
	if strings.IndexByte(line, 0) >= 0 {
		return "", nil, errors.New("NUL byte")
	}
	parts := strings.Split(line, ":")
	if len(parts) < 2 {
		return "", nil, errors.New("no password field")
	}
	if len(parts) > 9 {
		return "", nil, fmt.Errorf("%d fields, want at most 9", len(parts))
	}
	if parts[0] == "" {
		return "", nil, errors.New("empty user name")
	}
	e := &entry{hash: parts[1]}
	nums := []*int64{&e.lastChange, &e.min, &e.max, &e.warn, &e.inactive, &e.expire}
	for i, p := range nums {
		*p = -1
		if 2+i >= len(parts) || parts[2+i] == "" {
			continue
		}
		v, err := strconv.ParseInt(parts[2+i], 10, 64)
		if err != nil || v < -1 || v > 1<<40 {
			return "", nil, fmt.Errorf("field %d is not a day count", 3+i)
		}
		*p = v
	}
	return parts[0], e, nil
}
