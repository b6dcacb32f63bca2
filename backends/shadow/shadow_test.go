package shadow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	"github.com/authd-project/authd/schemes"
)

func req(user string) *backends.Request {
	return &backends.Request{User: user, Vars: &vars.Context{User: user, Service: "imap"}}
}

func write(t *testing.T, path, body string) {
	t.Helper()
	// Write and rename, as shadow-utils does, so the stat check sees a
	// new file even within one timestamp tick.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// day is a fixed "today" for the aging tests: 2026-01-01, day 20454.
var day = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

const today = 20454

func newDB(t *testing.T, body string) (*DB, string, *bytes.Buffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shadow")
	write(t, path, body)
	var logbuf bytes.Buffer
	db, err := New("blocking=no file="+path, slog.New(slog.NewTextHandler(&logbuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	db.now = func() time.Time { return day }
	return db, path, &logbuf
}

func TestToday(t *testing.T) {
	db, _, _ := newDB(t, "")
	if got := db.today(); got != today {
		t.Fatalf("today = %d, want %d", got, today)
	}
}

// TestConformance runs the shared passdb suite over Users written as a
// shadow file. A shadow file has no extra fields, so the suite's fixture
// is used without them for this test.
func TestConformance(t *testing.T) {
	saved := conformance.Users
	t.Cleanup(func() { conformance.Users = saved })
	users := make([]conformance.User, len(saved))
	var b strings.Builder
	for i, u := range saved {
		u.Extra = nil
		users[i] = u
		fmt.Fprintf(&b, "%s:%s:%d:0:99999:7:::\n", u.Name, u.Password, today-10)
	}
	conformance.Users = users
	db, _, _ := newDB(t, b.String())
	conformance.RunPassdb(t, db)
}

func TestLookup(t *testing.T) {
	t.Parallel()
	// libxcrypt's yescrypt of "secret" (testdata/vectors.json).
	const y = "$y$j9T$7nFfsuDX1IYef27py1qD1/$d9HsuoDgzDiisW7FqrP5lA5lbXlqtdy1u/Cgu6UVrv9"
	db, _, logbuf := newDB(t, fmt.Sprintf(`# comment
  # indented comment

root:*:%[1]d:0:99999:7:::
alice:%[2]s:%[1]d:0:99999:7:::
old:$6$salt$hash
plain:{PLAIN}secret:%[1]d::::::
md5:$1$salt$hash:%[1]d::::::
+nis::::::::
-nis2::::::::
bad:$6$SECRETHASH:notanumber:0:99999:7:::
toomany:x:1:2:3:4:5:6:7:8
:nouser:1::::::
alice:{PLAIN}duplicate:%[1]d::::::
`, today-1, y))
	ctx := context.Background()

	pe, err := db.LookupPass(ctx, req("alice"))
	if err != nil || pe.Outcome != backends.Found || pe.Scheme != "CRYPT" || pe.Data != y || !pe.HasPassword {
		t.Errorf("alice: %+v %v", pe, err)
	}
	// The two-field form of old shadow files: no aging at all.
	if pe, err := db.LookupPass(ctx, req("old")); err != nil || pe.Outcome != backends.Found || pe.Data != "$6$salt$hash" {
		t.Errorf("old: %+v %v", pe, err)
	}
	// A {SCHEME} prefix is honoured, as Dovecot's password parsing does.
	if pe, _ := db.LookupPass(ctx, req("plain")); pe.Scheme != "PLAIN" || pe.Data != "secret" {
		t.Errorf("plain: %+v", pe)
	}
	if pe, _ := db.LookupPass(ctx, req("md5")); pe.Data != "$1$salt$hash" {
		t.Errorf("md5: %+v", pe)
	}
	// What the engine does with alice's entry.
	if ok, err := schemes.Verify(pe.Scheme, pe.Data, []byte("secret"), "alice"); !ok || err != nil {
		t.Errorf("the right password does not verify: %v", err)
	}
	for _, name := range []string{"nobody", "+nis", "nis", "-nis2", "nis2", "bad", "toomany", "", "nouser", "alice\x00", "ALICE"} {
		if pe, err := db.LookupPass(ctx, req(name)); pe.Outcome != backends.Unknown || err != nil {
			t.Errorf("%q: %v err=%v, want notfound", name, pe.Outcome, err)
		}
	}
	logs := logbuf.String()
	for _, want := range []string{"line=11", "line=12", "line=13"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no warning with %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "SECRETHASH") {
		t.Errorf("a hash reached the log:\n%s", logs)
	}
}

func TestLocked(t *testing.T) {
	var b strings.Builder
	for i, pw := range []string{"!", "!!", "*", "", "!$6$salt$hash", "*LK*", "!*"} {
		fmt.Fprintf(&b, "u%d:%s:%d:0:99999:7:::\n", i, pw, today-1)
	}
	// Locked wins over expired: Dovecot checks it first.
	fmt.Fprintf(&b, "u7:!:%d:0:99999:7::0:\n", today-1)
	db, _, _ := newDB(t, b.String())
	for i := range 8 {
		name := fmt.Sprintf("u%d", i)
		pe, err := db.LookupPass(context.Background(), req(name))
		if err != nil || pe.Outcome != backends.Disabled || pe.HasPassword {
			t.Errorf("%s: %+v err=%v, want disabled", name, pe, err)
		}
	}
}

func TestAging(t *testing.T) {
	cases := []struct {
		name string
		// lastchg:min:max:warn:inactive:expire
		fields  string
		expired bool
	}{
		{"plain", fmt.Sprintf("%d:0:99999:7:::", today-1), false},
		{"allEmpty", ":::::", false},
		{"expireZero", fmt.Sprintf("%d:0:99999:7::0:", today-1), true},                // chage -E 0
		{"expireToday", fmt.Sprintf("%d:0:99999:7::%d:", today-1, today), true},       // today >= expire
		{"expireTomorrow", fmt.Sprintf("%d:0:99999:7::%d:", today-1, today+1), false}, // not yet
		{"expireNone", fmt.Sprintf("%d:0:99999:7::-1:", today-1), false},
		{"mustChange", "0:0:99999:7:::", true}, // chage -d 0, passwd -e
		{"changedInFuture", fmt.Sprintf("%d:0:1:7:::", today+5), false},
		{"agedOut", fmt.Sprintf("%d:0:30:7:::", today-31), true},          // older than max
		{"atMax", fmt.Sprintf("%d:0:30:7:::", today-30), false},           // "> max", not ">="
		{"agedInactive", fmt.Sprintf("%d:0:30:7:5::", today-40), true},    // max+inact over
		{"agedWithinInact", fmt.Sprintf("%d:0:30:7:5::", today-33), true}, // still aged (NEW_AUTHTOK_REQD)
		{"noMax", fmt.Sprintf("%d:0::7:5::", today-4000), false},
		{"minIgnored", fmt.Sprintf("%d:10:99999:7:::", today-1), false}, // only matters for a change
	}
	var b strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&b, "%s:$6$salt$hash:%s\n", c.name, c.fields)
	}
	db, _, _ := newDB(t, b.String())
	for _, c := range cases {
		pe, err := db.LookupPass(context.Background(), req(c.name))
		want := backends.Found
		if c.expired {
			want = backends.Expired
		}
		if err != nil || pe.Outcome != want {
			t.Errorf("%s: %v err=%v, want %v", c.name, pe.Outcome, err, want)
			continue
		}
		// The hash comes with the expiry, so that an engine can check
		// the password before telling anyone the account expired.
		if pe.Scheme != "CRYPT" || pe.Data != "$6$salt$hash" {
			t.Errorf("%s: entry %+v", c.name, pe)
		}
	}
}

func TestReread(t *testing.T) {
	db, path, _ := newDB(t, "alice:{PLAIN}one:::::::\n")
	ctx := context.Background()
	check := func(want string) {
		t.Helper()
		pe, err := db.LookupPass(ctx, req("alice"))
		if err != nil || pe.Outcome != backends.Found || pe.Data != want {
			t.Fatalf("alice: %+v %v, want %q", pe, err, want)
		}
	}
	check("one")
	write(t, path, "alice:{PLAIN}two:::::::\n")
	check("two")
	// An in-place rewrite of the same size (an editor, vipw) is seen
	// too: ctime changes even when size and mtime do not.
	st, _ := os.Stat(path)
	if err := os.WriteFile(path, []byte("alice:{PLAIN}six:::::::\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(path, st.ModTime(), st.ModTime())
	check("six")
	write(t, path, "alice:!:::::::\n")
	if pe, err := db.LookupPass(ctx, req("alice")); err != nil || pe.Outcome != backends.Disabled {
		t.Fatalf("after usermod -L: %v %v", pe.Outcome, err)
	}

	// A vanished file is an error, never "unknown user".
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if pe, err := db.LookupPass(ctx, req("alice")); err == nil {
		t.Fatalf("missing file: %v, want an error", pe.Outcome)
	}
	write(t, path, "alice:{PLAIN}back:::::::\n")
	check("back")
	if err := db.Reload(); err != nil {
		t.Fatal(err)
	}
	check("back")
}

func TestUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	db, path, _ := newDB(t, "alice:{PLAIN}one:::::::\n")
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	pe, err := db.LookupPass(context.Background(), req("alice"))
	if err == nil || !strings.Contains(err.Error(), "group shadow") {
		t.Fatalf("unreadable file: %v err=%v, want an error with the fix", pe.Outcome, err)
	}
}

func TestArgs(t *testing.T) {
	for _, args := range []string{"", "blocking=yes", "blocking=no", "file=/x/shadow blocking=yes"} {
		if _, err := New(args, nil); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
	db, _ := New("", nil)
	if db.File() != DefaultFile {
		t.Errorf("default file %q", db.File())
	}
	for _, args := range []string{"file=", "blocking=maybe", "/etc/shadow", "scheme=SHA512-CRYPT"} {
		if _, err := New(args, nil); !errors.Is(err, backends.ErrConfig) {
			t.Errorf("%q: err %v, want ErrConfig", args, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("alice:$y$j9T$salt$hash:20000:0:99999:7:::\nbob:!:1::::::\n+:::\n"))
	f.Add([]byte("a:b\n:::\n\x00:\n" + strings.Repeat("x", maxLine+10)))
	f.Add([]byte("a:b:-1:-2:99999999999999999999:::::\n"))
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, data []byte) {
		users := parse("fuzz", data, log)
		for name, e := range users {
			if name == "" || strings.ContainsAny(name, ":\n\x00") {
				t.Fatalf("bad name %q", name)
			}
			_ = e.expired(today)
		}
	})
}

// A read that fails once is an error for that lookup only, and a line
// over the limit hides nobody after it.
func TestReadErrorAndLongLine(t *testing.T) {
	db, _, logbuf := newDB(t, "alice:{PLAIN}one:::::::\nlong:"+strings.Repeat("x", maxLine)+":::::::\nbob:{PLAIN}two:::::::\n")
	ctx := context.Background()
	defer func(f func(string) ([]byte, error)) { readFile = f }(readFile)
	readFile = func(string) ([]byte, error) { return nil, syscall.EIO }
	if pe, err := db.LookupPass(ctx, req("alice")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("failing read: %v err=%v", pe.Outcome, err)
	}
	readFile = os.ReadFile
	for _, u := range []string{"alice", "bob"} {
		if pe, err := db.LookupPass(ctx, req(u)); pe.Outcome != backends.Found || err != nil {
			t.Errorf("%s: %v err=%v", u, pe.Outcome, err)
		}
	}
	if !strings.Contains(logbuf.String(), "line=2") {
		t.Errorf("no warning naming line 2:\n%s", logbuf.String())
	}
}
