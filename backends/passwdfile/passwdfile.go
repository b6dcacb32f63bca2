// Package passwdfile is the passwd-file passdb and userdb: Dovecot's
// `user:password:uid:gid:(gecos):home:(shell):extra_fields` format, with
// `scheme=` and `username_format=` args and a path that may hold
// %-variables (/etc/dovecot/%d/passwd).
//
// Files are re-read when they change, checked by stat at most once a
// second (StatInterval), as Dovecot does: an edited file takes effect
// within a second. A malformed line is skipped with a file:line warning; the other
// users keep working. An unreadable file is an error (a temporary failure),
// never "unknown user".
package passwdfile

import (
	"container/list"
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
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/mono"
	"github.com/authd-project/authd/internal/textlines"
	"github.com/authd-project/authd/internal/vars"
	"github.com/authd-project/authd/schemes"
)

// maxLine bounds one line of a passwd-file; longer lines are malformed.
const maxLine = 64 * 1024

// maxFiles bounds the parsed files a DB keeps for a path with variables
// (/etc/dovecot/%d/passwd): the most recently used ones, as many as a
// large multi-domain site has domains with logins at once. One past it
// is read again on its next use. Paths that name no file are not kept at
// all, so names made up by a client (a new %d for every guess) cannot
// push the real files out. A variable, not a setting: Dovecot's
// passwd-file has none, and tests lower it.
var maxFiles = 1000

// DB is one passwd-file passdb or userdb.
type DB struct {
	path          *vars.Template
	format        *vars.Template
	defaultScheme string
	syntax        vars.Syntax // of the extra fields' templates
	log           *slog.Logger

	mu    sync.Mutex
	files map[string]*list.Element // of *file, in lru
	lru   list.List                // most recently used first
}

// file is one parsed passwd-file and the identity it was read from.
type file struct {
	syntax  vars.Syntax
	mu      sync.Mutex
	path    string
	mtime   time.Time
	size    int64
	ino     uint64
	users   map[string]*entry
	order   []string      // user names in file order, for LIST
	checked time.Duration // when the file was last stat'ed (mono.Now)
	err     error         // the last read error, returned until the file changes
}

type entry struct {
	password string
	hasPass  bool
	uid, gid string
	home     string
	extra    []extraField
}

type extraField struct {
	key   string
	value *vars.Template
}

// Options configure a passwd-file from settings rather than args:
// Dovecot 2.4 writes passwd_file_path, default_password_scheme and
// auth_username_format instead of 2.3's args.
type Options struct {
	Path           string // the file; may hold variables
	UsernameFormat string // the user name to look up; "" means %u (2.3) or %{user} (2.4)
	DefaultScheme  string // for passwords without {SCHEME}; "" means CRYPT
	// Syntax is the language of Path, UsernameFormat and the extra
	// fields in the file.
	Syntax vars.Syntax
}

// New parses passdb/userdb args: `[scheme=S] [username_format=F] PATH`.
func New(args string, log *slog.Logger) (*DB, error) {
	var o Options
	for _, a := range strings.Fields(args) {
		switch {
		case strings.HasPrefix(a, "scheme="):
			o.DefaultScheme = strings.TrimPrefix(a, "scheme=")
		case strings.HasPrefix(a, "username_format="):
			o.UsernameFormat = strings.TrimPrefix(a, "username_format=")
		default:
			if o.Path != "" {
				return nil, fmt.Errorf("%w: passwd-file: unexpected argument %q", backends.ErrConfig, a)
			}
			o.Path = a
		}
	}
	if o.Path == "" {
		return nil, fmt.Errorf("%w: passwd-file: no file given in args", backends.ErrConfig)
	}
	return NewWith(o, log)
}

// NewWith builds a passwd-file from Options.
func NewWith(o Options, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DB{defaultScheme: "CRYPT", syntax: o.Syntax, log: log, files: map[string]*list.Element{}}
	if o.DefaultScheme != "" {
		d.defaultScheme = strings.ToUpper(o.DefaultScheme)
		if !schemes.Known(d.defaultScheme) {
			return nil, fmt.Errorf("%w: passwd-file: unknown scheme %q", backends.ErrConfig, d.defaultScheme)
		}
	}
	format := o.UsernameFormat
	if format == "" {
		format = map[vars.Syntax]string{vars.Syntax23: "%u", vars.Syntax24: "%{user}"}[o.Syntax]
	}
	if o.Path == "" {
		return nil, fmt.Errorf("%w: passwd-file: no file given", backends.ErrConfig)
	}
	var err error
	if d.path, err = o.Syntax.Parse(o.Path); err != nil {
		return nil, fmt.Errorf("%w: passwd-file path: %w", backends.ErrConfig, err)
	}
	if d.format, err = o.Syntax.Parse(format); err != nil {
		return nil, fmt.Errorf("%w: passwd-file username_format: %w", backends.ErrConfig, err)
	}
	return d, nil
}

// DefaultScheme is the scheme of passwords stored without a {…} prefix.
func (d *DB) DefaultScheme() string { return d.defaultScheme }

// lookup finds the entry for a request.
func (d *DB) lookup(req *backends.Request) (*entry, bool, error) {
	path := d.path.String()
	templated := !d.path.Static()
	if templated {
		bad := false
		path = d.path.Expand(req.Vars, func(v string) string {
			// A user name must not walk the file system (a/../../x).
			if strings.Contains(v, "/") || v == ".." || v == "." {
				bad = true
			}
			return v
		})
		if bad {
			return nil, false, nil
		}
	}
	f := d.file(path)
	users, err := f.load(d.log)
	if err != nil {
		if templated && errors.Is(err, fs.ErrNotExist) {
			// /etc/dovecot/%d/passwd for a domain we do not serve.
			d.forget(f)
			return nil, false, nil
		}
		return nil, false, err
	}
	key := d.format.Expand(req.Vars, nil)
	e, ok := users[key]
	return e, ok, nil
}

// file returns the state of path, kept among the maxFiles most recently
// used.
func (d *DB) file(path string) *file {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.files[path]; ok {
		d.lru.MoveToFront(el)
		return el.Value.(*file)
	}
	f := &file{path: path, syntax: d.syntax}
	d.files[path] = d.lru.PushFront(f)
	for d.lru.Len() > maxFiles {
		old := d.lru.Back()
		d.lru.Remove(old)
		delete(d.files, old.Value.(*file).path)
	}
	return f
}

// forget drops f, a path that names no file: nothing to keep.
func (d *DB) forget(f *file) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.files[f.path]; ok && el.Value == f {
		d.lru.Remove(el)
		delete(d.files, f.path)
	}
}

// Reload forgets every parsed file; the next lookup reads them again.
func (d *DB) Reload() error {
	d.mu.Lock()
	d.files = map[string]*list.Element{}
	d.lru.Init()
	d.mu.Unlock()
	return nil
}

// StatInterval is how often a file is checked for changes. Dovecot stats
// at most once a second too: a stat per lookup was 11 % of a PLAIN
// request's CPU, and a second's delay before an edited file counts is
// what admins already live with. Tests may set it to 0.
var StatInterval = time.Second

// readFile is os.ReadFile; tests make it fail once, as EMFILE or EIO
// would, which root (who runs the tests) cannot provoke with permissions.
var readFile = os.ReadFile

// load returns the users, re-reading the file when it changed.
func (f *file) load(log *slog.Logger) (map[string]*entry, error) {
	now := mono.Now()
	f.mu.Lock()
	if (f.users != nil || f.err != nil) && now-f.checked < StatInterval {
		users, err := f.users, f.err
		f.mu.Unlock()
		return users, err
	}
	f.mu.Unlock()
	st, err := os.Stat(f.path)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked = now
	if err != nil {
		f.users = nil
		f.err = nil
		return nil, fmt.Errorf("passwd-file %s: %w", f.path, err)
	}
	var ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	if (f.users != nil || f.err != nil) && st.ModTime().Equal(f.mtime) && st.Size() == f.size && ino == f.ino {
		return f.users, f.err
	}
	data, err := readFile(f.path)
	if err != nil {
		// Not stamped: the next check reads again, so a fixed permission
		// or a passing EMFILE/EIO heals without an edit to the file.
		f.users, f.mtime, f.size, f.ino = nil, time.Time{}, 0, 0
		f.err = fmt.Errorf("passwd-file %s: %w", f.path, err)
		return nil, f.err
	}
	f.mtime, f.size, f.ino = st.ModTime(), st.Size(), ino
	f.users, f.order = parse(f.path, data, f.syntax, log)
	f.err = nil
	return f.users, nil
}

// parse reads a whole file. Malformed lines are logged and skipped.
func parse(path string, data []byte, syntax vars.Syntax, log *slog.Logger) (map[string]*entry, []string) {
	users := map[string]*entry{}
	var order []string
	textlines.Each(data, maxLine, func(lineNo int, line string) {
		if line == "" || line[0] == '#' || strings.TrimSpace(line) == "" {
			return
		}
		e, user, err := parseLine(line, syntax)
		if err != nil {
			log.Warn("passwd-file: skipping malformed line", "file", path, "line", lineNo, "err", err)
			return
		}
		if _, dup := users[user]; dup {
			log.Warn("passwd-file: user exists more than once; keeping the first", "file", path, "line", lineNo, "user", user)
			return
		}
		users[user] = e
		order = append(order, user)
	}, func(lineNo int) {
		log.Warn("passwd-file: skipping a line longer than the limit", "file", path, "line", lineNo, "limit", maxLine)
	})
	return users, order
}

// parseLine parses `user:password:uid:gid:gecos:home:shell:extra`. Extra
// fields may contain ':' (userdb_mail=maildir:~/Maildir), so the line is
// split into at most eight parts.
func parseLine(line string, syntax vars.Syntax) (*entry, string, error) {
	if strings.IndexByte(line, 0) >= 0 {
		return nil, "", errors.New("NUL byte")
	}
	parts := strings.SplitN(line, ":", 8)
	user := parts[0]
	if user == "" {
		return nil, "", errors.New("empty user name")
	}
	e := &entry{}
	if len(parts) > 1 && parts[1] != "" {
		e.password = parts[1]
		e.hasPass = true
	}
	if len(parts) > 2 && parts[2] != "" {
		if !validID(parts[2]) {
			return nil, "", fmt.Errorf("invalid uid %q", parts[2])
		}
		e.uid = parts[2]
	}
	if len(parts) > 3 && parts[3] != "" {
		if !validID(parts[3]) {
			return nil, "", fmt.Errorf("invalid gid %q", parts[3])
		}
		e.gid = parts[3]
	}
	if len(parts) > 5 {
		e.home = parts[5]
	}
	if len(parts) > 7 {
		for _, f := range strings.Fields(parts[7]) {
			k, v, _ := strings.Cut(f, "=")
			if k == "" {
				return nil, "", fmt.Errorf("empty extra field name in %q", f)
			}
			t, err := syntax.Parse(v)
			if err != nil {
				return nil, "", fmt.Errorf("extra field %s: %w", k, err)
			}
			e.extra = append(e.extra, extraField{key: k, value: t})
		}
	}
	return e, user, nil
}

// validID accepts a number or something that may be a user/group name.
func validID(s string) bool {
	if _, err := strconv.ParseUint(s, 10, 32); err == nil {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// LooksUpInMemory tells the engine that a lookup never waits: the file
// is parsed into memory and checked for changes at most once a second.
func (d *DB) LooksUpInMemory() bool { return true }

// LookupPass implements backends.Passdb.
func (d *DB) LookupPass(ctx context.Context, req *backends.Request) (backends.PassAnswer, error) {
	e, ok, err := d.lookup(req)
	if err != nil {
		return backends.PassAnswer{}, err
	}
	if !ok {
		return backends.PassAnswer{Outcome: backends.Unknown}, nil
	}
	pe := backends.PassEntry{HasPassword: e.hasPass}
	if e.hasPass {
		// passwd-file uses the lenient rule: a bare $1$… is MD5-CRYPT
		// whatever the default (docs/schemes.md §2.1).
		pe.Scheme, pe.Data = schemes.Split(e.password)
		if pe.Scheme == "" {
			pe.Scheme = d.defaultScheme
		}
	}
	if len(e.extra) > 0 {
		pe.Fields = make(fields.Fields, 0, len(e.extra))
		for _, x := range e.extra {
			pe.Fields.Set(x.key, expandValue(x.value, req.Vars))
		}
	}
	return backends.PassAnswer{Outcome: backends.Found, PassEntry: pe}, nil
}

// LookupUser implements backends.Userdb: uid, gid and home from their
// columns, plus the userdb_* extra fields without their prefix.
func (d *DB) LookupUser(ctx context.Context, req *backends.Request) (backends.UserAnswer, error) {
	e, ok, err := d.lookup(req)
	if err != nil {
		return backends.UserAnswer{}, err
	}
	if !ok {
		return backends.UserAnswer{Outcome: backends.Unknown}, nil
	}
	fs := make(fields.Fields, 0, 3+len(e.extra))
	if e.uid != "" {
		fs = append(fs, fields.Field{Key: "uid", Value: e.uid})
	}
	if e.gid != "" {
		fs = append(fs, fields.Field{Key: "gid", Value: e.gid})
	}
	if e.home != "" {
		fs = append(fs, fields.Field{Key: "home", Value: e.home})
	}
	for _, x := range e.extra {
		if k, ok := strings.CutPrefix(x.key, "userdb_"); ok && k != "" {
			fs.Set(k, expandValue(x.value, req.Vars))
		}
	}
	return backends.UserAnswer{Outcome: backends.Found, Fields: fs}, nil
}

func expandValue(t *vars.Template, vc *vars.Context) string {
	return t.Expand(vc, nil)
}

// IterateUsers implements backends.Iterator for a file without variables
// in its path.
func (d *DB) IterateUsers(ctx context.Context, fn func(user string) bool) error {
	if !d.path.Static() {
		return fmt.Errorf("passwd-file %s: cannot list users of a path with variables", d.path.String())
	}
	f := d.file(d.path.String())
	if _, err := f.load(d.log); err != nil {
		return err
	}
	f.mu.Lock()
	names := f.order
	f.mu.Unlock()
	for _, u := range names {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !fn(u) {
			return nil
		}
	}
	return nil
}

// PassCacheKey is the auth cache key template. A passwd-file with a fixed
// path is memory already and is not cached (as in Dovecot, docs/protocol.md
// §5.9); one whose path holds variables is keyed by those and the user
// name format.
func (d *DB) PassCacheKey() *vars.Template {
	if d.path.Static() {
		return nil
	}
	return vars.CacheKeyOf(d.path, d.format)
}

// UserCacheKey is PassCacheKey for the userdb side.
func (d *DB) UserCacheKey() *vars.Template { return d.PassCacheKey() }
