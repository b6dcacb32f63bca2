package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/schemes"
)

const aliceHash = `{SHA512-CRYPT}$6$I6snSvYT4fxI4JV9$PL3IhYk39g8R/7Zhb.PqPnugo.YYT1GEtruZR64TZPZT2Z4xfylNF/S/IAhKnP55FDY0VsB4Ramci2m0IccQX0` // "wonderland"

const baseConf = `
base_dir = $DIR/run
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT $DIR/users
}
userdb {
  driver = passwd-file
  args = $DIR/users
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  unix_listener auth-master {
    mode = 0600
  }
  unix_listener auth-userdb {
    mode = 0666
  }
  unix_listener auth-login {
    mode = 0666
  }
}
`

var baseUsers = map[string]string{
	"users": "alice@example.com:" + aliceHash + ":1000:1000::/home/alice::userdb_quota_rule=*:storage=1G\n" +
		"carol@example.com:{PLAIN}carolpw:1003:1003::/home/carol::\n" +
		// bcrypt cost 8 (~15 ms a verify, ~150 ms under -race): slow enough to keep requests in flight
		"dora@example.com:{BLF-CRYPT}$2y$08$7lWhkT7tRbSNgl2dfnbnB.qjHj1IvaCLNM7f/xvBPBi05hENCq4jK:1004:1004::/home/dora::\n",
}

func TestAuthTestCommand(t *testing.T) {
	p := startAuthd(t, baseConf, "run/auth-client", baseUsers)
	out, code := authdTest(t, "-a", p.path("run/auth-client"), "alice@example.com", "wonderland")
	if code != 0 {
		t.Fatalf("right password: exit %d: %s", code, out)
	}
	mustContain(t, out, "passdb: alice@example.com auth succeeded")
	if out, code = authdTest(t, "-a", p.path("run/auth-client"), "alice@example.com", "wrong"); code != 77 {
		t.Fatalf("wrong password: exit %d: %s", code, out)
	}
	if out, code = authdTest(t, "-a", p.path("run/auth-client"), "nosuch@example.com", "x"); code != 77 {
		t.Fatalf("unknown user: exit %d: %s", code, out)
	}
	if out, code = authdTest(t, "-a", p.path("run/nosocket"), "alice@example.com", "x"); code != 75 {
		t.Fatalf("no server: exit %d: %s", code, out)
	}
}

func TestTempFailExitCode(t *testing.T) {
	// An unreadable passwd-file is a temporary failure, not an unknown user.
	conf := strings.Replace(baseConf, "$DIR/users\n}\nuserdb", "$DIR/missing-users\n}\nuserdb", 1)
	p := startAuthd(t, conf, "run/auth-client", baseUsers)
	out, code := authdTest(t, "-a", p.path("run/auth-client"), "alice@example.com", "wonderland")
	if code != 75 {
		t.Fatalf("exit %d, want 75: %s", code, out)
	}
	mustContain(t, out, "code=temp_fail")
}

func TestSocketModesAndOwner(t *testing.T) {
	conf := baseConf + `
service auth {
  unix_listener $DIR/abs/postfix-auth {
    mode = 0660
    user = nobody
    group = nogroup
  }
}
`
	p := startAuthd(t, conf, "run/auth-client", baseUsers)
	check := func(path string, mode os.FileMode) os.FileInfo {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want socket %v", path, fi.Mode(), mode)
		}
		return fi
	}
	check(p.path("run/auth-client"), 0o666)
	check(p.path("run/auth-master"), 0o600)
	fi := check(p.path("abs/postfix-auth"), 0o660)
	if os.Getuid() == 0 {
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 65534 {
			t.Errorf("owner uid %d, want nobody (65534)", st.Uid)
		}
	}
	// The absolute-path listener serves the client protocol.
	if out, code := authdTest(t, "-a", p.path("abs/postfix-auth"), "carol@example.com", "carolpw"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, s := range []string{"run/auth-client", "run/auth-master", "abs/postfix-auth"} {
		if _, err := os.Lstat(p.path(s)); !os.IsNotExist(err) {
			t.Errorf("%s still exists after shutdown", s)
		}
	}
}

func TestStaleSocketReplacedLiveSocketKept(t *testing.T) {
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	os.MkdirAll(runDir, 0o755)
	// A stale socket: bound, then its listener closed without unlinking.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(runDir, "auth-client"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	os.WriteFile(filepath.Join(dir, "users"), []byte(baseUsers["users"]), 0o644)
	conf := strings.ReplaceAll(baseConf, "$DIR", dir)
	os.WriteFile(filepath.Join(dir, "authd.conf"), []byte(conf), 0o644)
	startAuthdArgs(t, dir, "run/auth-client", "serve", "-c", filepath.Join(dir, "authd.conf"))

	// A second authd on the same sockets must refuse to start.
	var out, errb bytes.Buffer
	code := run([]string{"serve", "-c", filepath.Join(dir, "authd.conf")}, nil, &out, &errb)
	if code == 0 {
		t.Fatal("second instance started")
	}
	mustContain(t, errb.String(), "another process is listening")
	// The first one still serves.
	if out, code := authdTest(t, "-a", filepath.Join(runDir, "auth-client"), "carol@example.com", "carolpw"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestReload(t *testing.T) {
	p := startAuthd(t, baseConf, "run/auth-client", baseUsers)
	sock := p.path("run/auth-client")
	// A passwd-file change is seen within the file's check interval (1 s).
	os.WriteFile(p.path("users"), []byte(baseUsers["users"]+"dan@example.com:{PLAIN}danpw::::::\n"), 0o644)
	waitFor(t, func() bool {
		_, code := authdTest(t, "-a", sock, "dan@example.com", "danpw")
		return code == 0
	})
	// A config with errors is rejected; the old one keeps serving.
	bad := strings.ReplaceAll(strings.ReplaceAll(baseConf, "$DIR", p.dir), "auth_mechanisms = plain login", "auth_mechanisms = plain login\nauth_bogus_setting = 1")
	os.WriteFile(p.path("authd.conf"), []byte(bad), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(p.stderr.String(), "keeping the running configuration") })
	mustContain(t, p.stderr.String(), "auth_bogus_setting")
	if out, code := authdTest(t, "-a", sock, "carol@example.com", "carolpw"); code != 0 {
		t.Fatalf("after bad reload: exit %d: %s", code, out)
	}
	// A good config takes effect: only PLAIN now, and a new socket.
	good := strings.ReplaceAll(baseConf, "$DIR", p.dir)
	good = strings.ReplaceAll(good, "auth_mechanisms = plain login", "auth_mechanisms = plain")
	good = strings.Replace(good, "unix_listener auth-login {", "unix_listener auth-client2 {\n    mode = 0666\n  }\n  unix_listener auth-login {", 1)
	os.WriteFile(p.path("authd.conf"), []byte(good), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(p.stderr.String(), "configuration reloaded") })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dovecot.DialAuth(ctx, p.path("run/auth-client2"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if strings.Join(c.Mechs, " ") != "PLAIN" {
		t.Fatalf("mechanisms after reload: %v", c.Mechs)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCheckReportsEveryError(t *testing.T) {
	dir := t.TempDir()
	main := `auth_mechanisms = plain
auth_cache_size = lots
!include extra.conf
passdb {
  driver = passwd-file
  args = /etc/dovecot/users
}
`
	extra := `
auth_failure_delay = 2 secs
auth_mechanisms_typo = plain
`
	os.WriteFile(filepath.Join(dir, "authd.conf"), []byte(main), 0o644)
	os.WriteFile(filepath.Join(dir, "extra.conf"), []byte(extra+"auth_username_format = %Lu\nauth_failure_delay = forever\n"), 0o644)
	var out, errb bytes.Buffer
	code := run([]string{"check", "-c", filepath.Join(dir, "authd.conf")}, nil, &out, &errb)
	if code == 0 {
		t.Fatalf("check passed a broken config:\n%s", out.String())
	}
	msg := errb.String()
	for _, want := range []string{"authd.conf:2:", "extra.conf:3:", "extra.conf:5:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if n := strings.Count(strings.TrimSpace(msg), "\n") + 1; n != 3 {
		t.Errorf("want exactly 3 errors, got %d:\n%s", n, msg)
	}
}

func TestCheckPrintsEffectiveConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "users"), []byte(baseUsers["users"]), 0o644)
	os.WriteFile(filepath.Join(dir, "authd.conf"), []byte(strings.ReplaceAll(baseConf, "$DIR", dir)+"mail_location = maildir:~/Maildir\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-c", filepath.Join(dir, "authd.conf")}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	mustContain(t, out.String(), "passwd-file")
	mustContain(t, errb.String(), "mail_location")
}

// TestShutdownUnderLoad: every request the server read before SIGTERM gets
// its OK or FAIL before the connection closes.
func TestShutdownUnderLoad(t *testing.T) {
	// 16 wrong passwords at once for one account: the brute-force
	// defence would rightly refuse some right ones after them.
	conf := strings.Replace(baseConf, "auth_failure_delay = 0", "auth_failure_delay = 2 secs\nshutdown_timeout = 60 secs\npenalty {\n  enabled = no\n}", 1)
	// erin's bcrypt cost 4: the verifies queue for the hash workers and
	// are still running at SIGTERM (the wrong passwords' 2 s delay keeps
	// their replies pending anyway), yet even under -race on a machine
	// loaded tenfold they end well inside the client socket's 8 s request
	// deadline, past which a request would be answered "try again".
	hash, err := schemes.Generate("BLF-CRYPT", []byte("erinspw"), "", 4)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"users": baseUsers["users"] + "erin@example.com:{BLF-CRYPT}" + hash + ":1005:1005::/home/erin::\n"}
	p := startAuthd(t, conf, "run/auth-client", files)
	const conns, perConn = 8, 3
	var wg sync.WaitGroup
	results := make([]map[uint32]string, conns)
	var lastReply sync.Map // conn index -> time of its last reply
	errs := make(chan error, conns)
	sent := make(chan struct{}, conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			c, err := dovecot.DialAuth(ctx, p.path("run/auth-client"))
			if err != nil {
				errs <- err
				sent <- struct{}{}
				return
			}
			defer c.Close()
			got := map[uint32]string{}
			results[i] = got
			for j := 1; j <= perConn; j++ {
				pass := "erinspw"
				if j%3 == 0 {
					pass = "wrong" // delayed failures must be flushed too
				}
				resp := dovecot.EncodeBase64([]byte("\x00erin@example.com\x00" + pass))
				if err := c.Send(fmt.Sprintf("AUTH\t%d\tPLAIN\tservice=imap\tresp=%s", j, resp)); err != nil {
					errs <- err
				}
			}
			sent <- struct{}{}
			for {
				r, err := c.Read(ctx)
				if err != nil {
					return // EOF after shutdown
				}
				if _, dup := got[r.ID]; dup {
					errs <- fmt.Errorf("duplicate reply for %d", r.ID)
				}
				got[r.ID] = strings.Join(append([]string{r.Cmd}, r.Fields...), " ")
				lastReply.Store(i, time.Now())
			}
		}(i)
	}
	for i := 0; i < conns; i++ {
		<-sent
	}
	// Let the server read every line (they queue for the hash pool), then stop it.
	time.Sleep(300 * time.Millisecond)
	sigterm := time.Now()
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for i, got := range results {
		for j := uint32(1); j <= perConn; j++ {
			want := "OK user=erin@example.com"
			if j%3 == 0 {
				want = "FAIL user=erin@example.com"
			}
			if got[j] != want {
				t.Errorf("conn %d request %d: got %q, want %q", i, j, got[j], want)
			}
		}
		total += len(got)
	}
	// The test proves something only if requests were still in flight
	// when SIGTERM arrived.
	late := 0
	lastReply.Range(func(_, v any) bool {
		if v.(time.Time).After(sigterm) {
			late++
		}
		return true
	})
	if late == 0 {
		t.Fatal("every reply came before SIGTERM: nothing was in flight")
	}
	t.Logf("%d requests answered; %d connections got replies after SIGTERM", total, late)
}

func TestDemo(t *testing.T) {
	dir := t.TempDir()
	p := startAuthdArgs(t, dir, "run/auth-client")
	waitFor(t, func() bool { return strings.Contains(p.stdout.String(), "Try") })
	mustContain(t, p.stdout.String(), "alice@example.com wonderland")
	if out, code := authdTest(t, "-a", filepath.Join(dir, "run/auth-client"), "alice@example.com", "wonderland"); code != 0 {
		t.Fatalf("demo alice: exit %d: %s", code, out)
	}
	if out, code := authdTest(t, "-a", filepath.Join(dir, "run/auth-client"), "bob@example.com", "builder"); code != 0 {
		t.Fatalf("demo bob: exit %d: %s", code, out)
	}
}

// TestRestrictedUserdbSocket: on an auth-userdb socket of mode 0666, a
// peer that is neither the socket's owner nor in its group only gets its
// own uid's entries, and no PASS or LIST (docs/protocol.md §2.1).
func TestRestrictedUserdbSocket(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to connect as another user")
	}
	p := startAuthd(t, baseConf, "run/auth-client", map[string]string{
		"users": baseUsers["users"] + "nob@example.com:{PLAIN}x:65534:65534::/nonexistent::\n",
	})
	sock := p.path("run/auth-userdb")
	// nobody cannot read the go-build directory: run a copy of this binary.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(p.dir, "authd.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	asNobody := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "AUTHD_TEST_MAIN=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := asNobody("user", "-a", sock, "nob@example.com"); code != 0 {
		t.Fatalf("own uid: exit %d %s", code, out)
	}
	if out, code := asNobody("user", "-a", sock, "alice@example.com"); code != 75 {
		t.Fatalf("other uid: exit %d %s", code, out)
	}
	if out, code := asNobody("lookup", "-a", sock, "nob@example.com"); code != 75 {
		t.Fatalf("PASS: exit %d %s", code, out)
	}
	if out, code := asNobody("user", "-a", sock, "*"); code != 75 {
		t.Fatalf("LIST: exit %d %s", code, out)
	}
	// root owns the socket: full rights.
	var out, errb bytes.Buffer
	if code := run([]string{"user", "-a", sock, "alice@example.com"}, nil, &out, &errb); code != 0 {
		t.Fatalf("root: exit %d %s", code, errb.String())
	}
	mustContain(t, out.String(), "home\t/home/alice")
}
