package passwdfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/conformance"
	"github.com/authd-project/authd/internal/vars"
)

func req(user string) *backends.Request {
	at := strings.IndexByte(user, '@')
	_ = at
	return &backends.Request{User: user, Vars: &vars.Context{User: user, Service: "imap", RemoteIP: "192.0.2.1"}}
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseAndLookup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	write(t, path, `# comment

alice@example.com:{PLAIN}secret:1000:1000:Alice:/home/alice:/bin/false:userdb_mail=maildir:~/Maildir nologin reason=Moved userdb_quota_rule=*:storage=1G
bare@example.com:$6$rounds=5000$salt$hash:::::
md5@example.com:$1$salt$hash$junk:::::
nopass@example.com::::::
:nouser:::
baduid@example.com:{PLAIN}x:1:2:3:4:5:6
bad uid@example.com:{PLAIN}x:notanumber!:1000::/h::
tmpl@example.com:{PLAIN}x::::::userdb_home=/var/mail/%d/%n
alice@example.com:{PLAIN}duplicate:::::
`)
	var logbuf bytes.Buffer
	db, err := New("scheme=SHA512-CRYPT "+path, slog.New(slog.NewTextHandler(&logbuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pe, err := db.LookupPass(ctx, req("alice@example.com"))
	if err != nil || pe.Outcome != backends.Found {
		t.Fatalf("alice: %v %v", pe.Outcome, err)
	}
	if pe.Scheme != "PLAIN" || pe.Data != "secret" || !pe.HasPassword {
		t.Errorf("alice password: %+v", pe)
	}
	if got := pe.Fields.String(); got != "userdb_mail=maildir:~/Maildir nologin reason=Moved userdb_quota_rule=*:storage=1G" {
		t.Errorf("alice fields: %q", got)
	}
	uf, err := db.LookupUser(ctx, req("alice@example.com"))
	if err != nil || uf.Outcome != backends.Found {
		t.Fatal(uf.Outcome, err)
	}
	if got := uf.Fields.String(); got != "uid=1000 gid=1000 home=/home/alice mail=maildir:~/Maildir quota_rule=*:storage=1G" {
		t.Errorf("alice userdb: %q", got)
	}
	// Without a prefix the default scheme applies, except that $1$ is
	// always MD5-CRYPT in passwd-file (docs/schemes.md §2.1).
	if pe, _ := db.LookupPass(ctx, req("bare@example.com")); pe.Scheme != "SHA512-CRYPT" {
		t.Errorf("bare: %+v", pe)
	}
	if pe, _ := db.LookupPass(ctx, req("md5@example.com")); pe.Scheme != "MD5-CRYPT" || pe.Data != "$1$salt$hash" {
		t.Errorf("md5: %+v", pe)
	}
	if pe, _ := db.LookupPass(ctx, req("nopass@example.com")); pe.Outcome != backends.Found || pe.HasPassword {
		t.Errorf("nopass: %v %+v", pe.Outcome, pe)
	}
	if uf, _ := db.LookupUser(ctx, req("tmpl@example.com")); uf.Fields.String() != "home=/var/mail/example.com/tmpl" {
		t.Errorf("template: %q", uf.Fields.String())
	}
	if ans, err := db.LookupPass(ctx, req("nosuch@example.com")); ans.Outcome != backends.Unknown || err != nil {
		t.Errorf("unknown user: %v %v", ans.Outcome, err)
	}
	// The malformed lines were skipped with file:line warnings, and the
	// duplicate kept the first entry.
	log := logbuf.String()
	for _, want := range []string{"line=7", "line=9", "line=11"} {
		if !strings.Contains(log, want) || !strings.Contains(log, path) {
			t.Errorf("log lacks %s with the file name:\n%s", want, log)
		}
	}
}

func TestMain(m *testing.M) {
	// Every lookup checks the file, so tests see edits at once.
	StatInterval = 0
	os.Exit(m.Run())
}

func TestChangedFileIsReread(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	write(t, path, "a@x:{PLAIN}1:::::\n")
	db, _ := New(path, nil)
	ctx := context.Background()
	if ans, _ := db.LookupPass(ctx, req("b@x")); ans.Outcome != backends.Unknown {
		t.Fatal("b exists too early")
	}
	// Same size and possibly the same mtime second: the inode or mtime
	// must still differ for a replaced file; write through a rename like
	// editors and config tools do.
	tmp := path + ".new"
	write(t, tmp, "b@x:{PLAIN}2:::::\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if pe, err := db.LookupPass(ctx, req("b@x")); pe.Outcome != backends.Found || err != nil || pe.Data != "2" {
		t.Fatalf("after rename: %v %v %+v", pe.Outcome, err, pe)
	}
	// An in-place rewrite with a new size.
	time.Sleep(10 * time.Millisecond)
	write(t, path, "b@x:{PLAIN}22:::::\n")
	if pe, _ := db.LookupPass(ctx, req("b@x")); pe.Data != "22" {
		t.Fatalf("after rewrite: %+v", pe)
	}
}

func TestUnreadableFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	db, _ := New(filepath.Join(dir, "missing"), nil)
	ans, err := db.LookupPass(context.Background(), req("a@x"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing static file: %v err=%v, want an error", ans.Outcome, err)
	}
	if os.Getuid() != 0 {
		path := filepath.Join(dir, "noperm")
		write(t, path, "a@x:{PLAIN}1\n")
		os.Chmod(path, 0)
		db, _ := New(path, nil)
		if _, err := db.LookupPass(context.Background(), req("a@x")); err == nil {
			t.Fatal("unreadable file gave no error")
		}
	}
}

func TestPathWithVariables(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "example.com"), 0o755)
	write(t, filepath.Join(dir, "example.com", "passwd"), "alice:{PLAIN}s:::::\n")
	db, err := New("username_format=%n "+dir+"/%d/passwd", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ans, err := db.LookupPass(ctx, req("alice@example.com")); ans.Outcome != backends.Found || err != nil {
		t.Fatalf("alice: %v %v", ans.Outcome, err)
	}
	// A domain without a file is an unknown user, not an error.
	if ans, err := db.LookupPass(ctx, req("alice@other.org")); ans.Outcome != backends.Unknown || err != nil {
		t.Fatalf("other domain: %v %v", ans.Outcome, err)
	}
	// A name cannot walk the file system.
	if ans, err := db.LookupPass(ctx, req("alice@../example.com")); ans.Outcome != backends.Unknown || err != nil {
		t.Fatalf("traversal: %v %v", ans.Outcome, err)
	}
	if err := db.IterateUsers(ctx, func(string) bool { return true }); err == nil {
		t.Error("listing a templated path should fail")
	}
}

func TestArgs(t *testing.T) {
	for _, bad := range []string{"", "scheme=NOPE /x", "/a /b"} {
		if _, err := New(bad, nil); !errors.Is(err, backends.ErrConfig) {
			t.Errorf("New(%q): %v", bad, err)
		}
	}
}

func TestIterate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	write(t, path, "b@x:{PLAIN}1\na@x:{PLAIN}1\nc@x:{PLAIN}1\n")
	db, _ := New(path, nil)
	var got []string
	if err := db.IterateUsers(context.Background(), func(u string) bool { got = append(got, u); return len(got) < 2 }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "b@x,a@x" {
		t.Fatalf("got %v (file order, stopped after 2)", got)
	}
}

// FuzzParse: no input makes the passwd-file parser panic.
func FuzzParse(f *testing.F) {
	f.Add("alice@example.com:{PLAIN}secret:1000:1000::/home/alice::userdb_mail=maildir:~/Maildir nologin")
	f.Add("::::::::::::")
	f.Add("a:b:%{:x")
	f.Fuzz(func(t *testing.T, s string) {
		users, _ := parse("fuzz", []byte(s), vars.Syntax23, slog.New(slog.DiscardHandler))
		for _, e := range users {
			_ = e.extra
		}
	})
}

func TestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	write(t, path, conformance.PasswdFile())
	db, err := New(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("passdb", func(t *testing.T) { conformance.RunPassdb(t, db) })
	t.Run("userdb", func(t *testing.T) { conformance.RunUserdb(t, db) })
	t.Run("iterator", func(t *testing.T) { conformance.RunIterator(t, db) })
}

// A read that fails once (EMFILE, EIO, a permission fixed since) is an
// error for that lookup only: the next one reads the unchanged file again.
func TestReadErrorIsNotRemembered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	write(t, path, "a@x:{PLAIN}1:::::\n")
	db, _ := New(path, nil)
	ctx := context.Background()
	defer func(f func(string) ([]byte, error)) { readFile = f }(readFile)
	readFile = func(string) ([]byte, error) { return nil, syscall.EMFILE }
	if ans, err := db.LookupPass(ctx, req("a@x")); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("failing read: %v err=%v", ans.Outcome, err)
	}
	readFile = os.ReadFile
	if ans, err := db.LookupPass(ctx, req("a@x")); ans.Outcome != backends.Found || err != nil {
		t.Fatalf("after the read works again: %v err=%v", ans.Outcome, err)
	}
}

// A line over the limit is skipped with a warning; the users after it
// are still there (a scanner would have stopped at it).
func TestLongLineSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	write(t, path, "a@x:{PLAIN}1:::::\nlong@x:{PLAIN}"+strings.Repeat("x", maxLine)+":::::\nb@x:{PLAIN}2:::::\n")
	var logbuf strings.Builder
	db, _ := New(path, slog.New(slog.NewTextHandler(&logbuf, nil)))
	ctx := context.Background()
	for _, u := range []string{"a@x", "b@x"} {
		if ans, err := db.LookupPass(ctx, req(u)); ans.Outcome != backends.Found || err != nil {
			t.Errorf("%s: ok=%v err=%v", u, ans.Outcome, err)
		}
	}
	if ans, err := db.LookupPass(ctx, req("long@x")); ans.Outcome != backends.Unknown || err != nil {
		t.Errorf("the long line's user: %v err=%v", ans.Outcome, err)
	}
	if !strings.Contains(logbuf.String(), "line=2") {
		t.Errorf("no warning naming line 2:\n%s", logbuf.String())
	}
}

// A %d-templated path keeps state for real files only, and for at most
// maxFiles of them: 200,000 made-up domains leave nothing behind and do
// not push the real domain's parsed file out.
func TestTemplatedPathStateBounded(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "example.com"), 0o755)
	write(t, filepath.Join(dir, "example.com", "passwd"), "alice:{PLAIN}s:::::\n")
	db, err := New("username_format=%n "+dir+"/%d/passwd", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ans, err := db.LookupPass(ctx, req("alice@example.com")); ans.Outcome != backends.Found || err != nil {
		t.Fatalf("alice: %v %v", ans.Outcome, err)
	}
	real := db.file(filepath.Join(dir, "example.com", "passwd"))
	for i := range 200000 {
		if ans, err := db.LookupPass(ctx, req(fmt.Sprintf("x@d%d.example", i))); ans.Outcome != backends.Unknown || err != nil {
			t.Fatalf("made-up domain %d: %v %v", i, ans.Outcome, err)
		}
	}
	db.mu.Lock()
	n := len(db.files)
	db.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d files kept after 200,000 made-up domains, want only the real one", n)
	}
	if db.file(filepath.Join(dir, "example.com", "passwd")) != real {
		t.Error("the real domain's file was dropped")
	}
}

// Past maxFiles real files, the least recently used is dropped and read
// again on its next use.
func TestTemplatedPathLRU(t *testing.T) {
	defer func(n int) { maxFiles = n }(maxFiles)
	maxFiles = 10
	dir := t.TempDir()
	for i := range 30 {
		d := filepath.Join(dir, fmt.Sprintf("d%d.example", i))
		os.MkdirAll(d, 0o755)
		write(t, filepath.Join(d, "passwd"), fmt.Sprintf("u:{PLAIN}pw%d:::::\n", i))
	}
	db, err := New("username_format=%n "+dir+"/%d/passwd", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lookup := func(i int) {
		t.Helper()
		ans, err := db.LookupPass(ctx, req(fmt.Sprintf("u@d%d.example", i)))
		if err != nil || ans.Outcome != backends.Found || ans.Data != fmt.Sprintf("pw%d", i) {
			t.Fatalf("domain %d: %v %v %+v", i, ans.Outcome, err, ans)
		}
	}
	for round := range 2 {
		for i := range 30 {
			lookup(i)
			lookup(0) // kept in use: never the least recently used
			db.mu.Lock()
			n, lru := len(db.files), db.lru.Len()
			db.mu.Unlock()
			if n > maxFiles || n != lru {
				t.Fatalf("round %d, domain %d: %d files (list %d), bound %d", round, i, n, lru, maxFiles)
			}
		}
	}
	first := db.file(filepath.Join(dir, "d0.example", "passwd"))
	first.mu.Lock()
	parsed := first.users != nil
	first.mu.Unlock()
	if !parsed {
		t.Error("the most used domain's file was evicted")
	}
}
