//go:build pam && cgo

package pam

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	libpam "github.com/msteinert/pam/v2"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/shadow/shadowtest"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/internal/vars"
)

// These tests run with `go test -tags pam` (CGO_ENABLED=1, libpam0g-dev),
// as make test does when it finds libpam0g-dev.
// Those that talk to the system's PAM need root: they write service files
// into /etc/pam.d and create a local user; without root they skip, or fail
// under AUTHD_REQUIRE_INTEGRATION=1.

func req(user, service string) *backends.Request {
	return &backends.Request{User: user, Vars: &vars.Context{User: user, Service: service, RemoteIP: "192.0.2.10"}}
}

// pamService writes /etc/pam.d/authd-test-NNNNNN with body and removes it
// at cleanup. It returns the service name.
func pamService(t *testing.T, body string) string {
	t.Helper()
	shadowtest.RequireRoot(t, "writes a PAM service file into /etc/pam.d")
	if _, err := os.Stat("/etc/pam.d"); err != nil {
		if testenv.Integration() {
			t.Fatalf("no /etc/pam.d: %v", err)
		}
		t.Skipf("no /etc/pam.d: %v", err)
	}
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("authd-test-%06d", n.Int64())
	path := filepath.Join("/etc/pam.d", name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(path); err != nil {
			t.Errorf("removing %s: %v", path, err)
		}
	})
	return name
}

const unixStack = "auth required pam_unix.so\naccount required pam_unix.so\nsession required pam_unix.so\n"

func newDB(t *testing.T, args string) (*DB, *bytes.Buffer) {
	t.Helper()
	var logbuf bytes.Buffer
	db, err := New(args, slog.New(slog.NewTextHandler(&syncWriter{w: &logbuf}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, &logbuf
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestSystemUser is the "Dovecot with PAM" setup against a real local
// account: pam_unix checks the yescrypt hash chpasswd wrote, and the
// account states an administrator sets with usermod and chage come back
// as the answers the engine needs.
func TestSystemUser(t *testing.T) {
	const password = "Corr3ct horse:battery staple"
	u := shadowtest.NewUser(t, password)
	svc := pamService(t, unixStack)
	db, logbuf := newDB(t, "failure_show_msg=yes "+svc)
	ctx := context.Background()

	type want struct {
		answer backends.Outcome // when err is nil
		err    error            // errAny or nil: no error
	}
	check := func(t *testing.T, db *DB, r *backends.Request, pw string, w want) backends.PassAnswer {
		t.Helper()
		ans, err := db.VerifyPass(ctx, r, []byte(pw))
		if !errMatches(err, w.err) || (err == nil && ans.Outcome != w.answer) {
			t.Errorf("%s: %v err=%v; want %v err=%v", r.User, ans.Outcome, err, w.answer, w.err)
		}
		return ans
	}

	t.Run("right", func(t *testing.T) {
		pe := check(t, db, req(u.Name, "imap"), password, want{answer: backends.Found})
		if v, _ := pe.Fields.Get("user"); v != u.Name {
			t.Errorf("user field %q, want %q", v, u.Name)
		}
	})
	t.Run("wrong", func(t *testing.T) {
		check(t, db, req(u.Name, "imap"), password+"x", want{answer: backends.Mismatch})
		check(t, db, req(u.Name, "imap"), "", want{answer: backends.Mismatch})
		// C would cut at the NUL and see the right password.
		check(t, db, req(u.Name, "imap"), password+"\x00x", want{answer: backends.Mismatch})
	})
	t.Run("unknown", func(t *testing.T) {
		check(t, db, req(u.Name+"nosuch", "imap"), password, want{answer: backends.Unknown})
		check(t, db, req(u.Name+"\x00", "imap"), password, want{answer: backends.Unknown})
		check(t, db, req("", "imap"), password, want{answer: backends.Unknown})
	})
	t.Run("no-credentials", func(t *testing.T) {
		if ans, err := db.LookupPass(ctx, req(u.Name, "imap")); err != nil || ans.Outcome != backends.NoCredentials {
			t.Errorf("LookupPass: %v, %v; want nocredentials", ans.Outcome, err)
		}
	})
	t.Run("service-from-request", func(t *testing.T) {
		// args = %s: the request's service names the PAM service; "*"
		// is %Ls (Linux-PAM lowercases service names anyway).
		for _, args := range []string{"%s", "*"} {
			sdb, _ := newDB(t, args)
			check(t, sdb, req(u.Name, strings.ToUpper(svc)), password, want{answer: backends.Found})
			// A client-chosen service that is not a file name is an
			// error, not a login attempt.
			check(t, sdb, req(u.Name, "../"+svc), password, want{err: errAny})
		}
	})
	t.Run("session-setcred", func(t *testing.T) {
		sdb, _ := newDB(t, "session=yes setcred=yes "+svc)
		check(t, sdb, req(u.Name, "imap"), password, want{answer: backends.Found})
	})
	t.Run("locked", func(t *testing.T) {
		// pam_unix cannot tell a locked account from a wrong password:
		// the "!" makes every hash comparison fail.
		u.Modify(t, "usermod", "-L")
		t.Cleanup(func() { u.Modify(t, "usermod", "-U") })
		check(t, db, req(u.Name, "imap"), password, want{answer: backends.Mismatch})
	})
	t.Run("account-expired", func(t *testing.T) {
		u.Modify(t, "chage", "-E", "0")
		t.Cleanup(func() { u.Modify(t, "chage", "-E", "-1") })
		pe := check(t, db, req(u.Name, "imap"), password, want{answer: backends.Expired})
		// failure_show_msg=yes: pam_unix's own words.
		if r, _ := pe.Fields.Get("reason"); !strings.Contains(r, "expired") {
			t.Errorf("reason %q, want pam_unix's expiry message", r)
		}
		// Only after the password was right: a wrong one stays wrong.
		check(t, db, req(u.Name, "imap"), password+"x", want{answer: backends.Mismatch})
	})
	t.Run("must-change", func(t *testing.T) {
		u.Modify(t, "chage", "-d", "0")
		t.Cleanup(func() { u.Modify(t, "chage", "-d", "-1") })
		check(t, db, req(u.Name, "imap"), password, want{answer: backends.Expired})
	})
	t.Run("back-to-normal", func(t *testing.T) {
		check(t, db, req(u.Name, "imap"), password, want{answer: backends.Found})
	})
	if strings.Contains(logbuf.String(), "battery") {
		t.Errorf("the password reached the log:\n%s", logbuf)
	}
}

// errAny, as a wanted error, matches any error.
var errAny = errors.New("any error")

// errMatches reports whether err is what want asks for: nil for nil,
// any error for errAny, else errors.Is.
func errMatches(err, want error) bool {
	switch want {
	case nil:
		return err == nil
	case errAny:
		return err != nil
	}
	return errors.Is(err, want)
}

// TestStacks drives outcomes that need no real user, with stacks of
// pam_permit, pam_deny and pam_exec.
func TestStacks(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, stack string
		answer      backends.Outcome // when err is nil
		err         error
	}{
		{"permit", "auth required pam_permit.so\naccount required pam_permit.so\n", backends.Found, nil},
		{"deny", "auth required pam_deny.so\naccount required pam_permit.so\n", backends.Mismatch, nil},
		// The password was right, the account stack said no.
		{"account-denied", "auth required pam_permit.so\naccount required pam_deny.so\n", backends.Disabled, nil},
		// A module that fails (an unreachable directory behind PAM
		// looks the same) could not tell: an error, not a mismatch.
		{"system-error", "auth required pam_exec.so quiet /bin/false\naccount required pam_permit.so\n", 0, errAny},
		{"no-module", "auth required pam_authd_no_such_module.so\naccount required pam_permit.so\n", 0, errAny},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svc := pamService(t, c.stack)
			db, _ := newDB(t, svc)
			ans, err := db.VerifyPass(ctx, req("someone", "imap"), []byte("pw"))
			if !errMatches(err, c.err) || (err == nil && ans.Outcome != c.answer) {
				t.Errorf("%v err=%v; want %v err=%v", ans.Outcome, err, c.answer, c.err)
			}
		})
	}
}

// TestSlowModule: a PAM module that takes its time holds one worker, not
// the passdb. With one worker busy, a second request gives up when its
// context ends, and a request cancelled mid-transaction returns at once
// while the transaction runs on to pam_end.
func TestSlowModule(t *testing.T) {
	testenv.Require(t, "sleep")
	svc := pamService(t, "auth required pam_exec.so quiet /bin/sleep 2\nauth required pam_permit.so\naccount required pam_permit.so\n")
	db, _ := newDB(t, "workers=1 "+svc)

	slow := make(chan error, 1)
	go func() {
		ans, err := db.VerifyPass(context.Background(), req("someone", "imap"), []byte("pw"))
		if err == nil && ans.Outcome != backends.Found {
			err = errors.New("slow request refused")
		}
		slow <- err
	}()
	time.Sleep(200 * time.Millisecond) // let it take the worker

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	ans, err := db.VerifyPass(ctx, req("other", "imap"), []byte("pw"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("queued request: %v err=%v, want DeadlineExceeded", ans.Outcome, err)
	}
	// Not a performance bound: waiting for the worker instead of the
	// deadline would take the module's 2 s.
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("queued request took %v: it waited for the slow module, not for its 100ms deadline", d)
	}
	if err := <-slow; err != nil {
		t.Errorf("slow request: %v", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := db.VerifyPass(ctx, req("someone", "imap"), []byte("pw")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request cancelled mid-transaction: %v", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("cancelled request took %v: it waited for the slow module", d)
	}
	// Close waits for that transaction to reach pam_end.
	db.Close()
}

func TestJudge(t *testing.T) {
	cases := []struct {
		s    step
		code libpam.Error
		want verdict
	}{
		{stepAuthenticate, libpam.ErrAuth, vMismatch},
		{stepAuthenticate, libpam.ErrMaxtries, vMismatch},
		{stepAuthenticate, libpam.ErrPermDenied, vMismatch},
		{stepAuthenticate, libpam.ErrUserUnknown, vUnknown},
		{stepAcctMgmt, libpam.ErrUserUnknown, vUnknown},
		{stepAcctMgmt, libpam.ErrAcctExpired, vExpired},
		{stepAcctMgmt, libpam.ErrNewAuthtokReqd, vExpired},
		{stepAcctMgmt, libpam.ErrAuthtokExpired, vExpired},
		{stepSetcred, libpam.ErrCredExpired, vExpired},
		{stepAcctMgmt, libpam.ErrPermDenied, vDisabled},
		{stepAcctMgmt, libpam.ErrAuth, vDisabled},
		{stepSession, libpam.ErrPermDenied, vDisabled},
		{stepAuthenticate, libpam.ErrAuthinfoUnavail, vError},
		{stepAuthenticate, libpam.ErrSystem, vError},
		{stepAuthenticate, libpam.ErrService, vError},
		{stepAuthenticate, libpam.ErrCredInsufficient, vError},
		{stepAuthenticate, libpam.ErrConv, vError},
		{stepAuthenticate, libpam.ErrAbort, vError},
		{stepStart, libpam.ErrAuth, vError},
		{stepGetUser, libpam.ErrPermDenied, vError},
		{stepSession, libpam.ErrSession, vError},
	}
	for _, c := range cases {
		if got := judge(c.s, c.code); got != c.want {
			t.Errorf("%s %v: %d, want %d", c.s, c.code, got, c.want)
		}
	}
}

func TestConversation(t *testing.T) {
	c := &conversation{user: "alice", password: "pw"}
	for _, x := range []struct {
		s    libpam.Style
		want string
		err  bool
	}{
		{libpam.PromptEchoOff, "pw", false},
		{libpam.PromptEchoOn, "alice", false},
		{libpam.ErrorMsg, "", false},
		{libpam.TextInfo, "", false},
		{libpam.BinaryPrompt, "", true},
	} {
		got, err := c.RespondPAM(x.s, "msg\tline\n")
		if got != x.want || (err != nil) != x.err {
			t.Errorf("style %d: %q %v", x.s, got, err)
		}
	}
	if r := c.reason(); r != "msg line" {
		t.Errorf("reason %q", r)
	}
	c = &conversation{}
	_, _ = c.RespondPAM(libpam.PromptEchoOff, "Password: ")
	if r := c.reason(); r != "Password:" {
		t.Errorf("reason from the prompt %q", r)
	}
}
