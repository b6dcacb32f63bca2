// Package testenv starts real servers — mariadbd, slapd, Dovecot and Postfix,
// and Dovecot 2.4 in a Debian 13 root (TrixieRoot, StartDovecot24) — as child
// processes of a test, for integration and interop tests of authd, plus
// minimal SMTP, IMAP, POP3 and LMTP clients to drive them.
//
// The servers are started by internal/realserver, which the authd-bench
// comparison harness uses too; the Start functions here are its test-facing
// form: they take a testing.TB, skip or fail instead of returning errors,
// and stop the servers in t.Cleanup.
//
// Every server runs privately: its own directory (see Dir), free loopback
// ports (see FreePort), its own unix sockets, and never the system
// configuration (/etc/mysql, /etc/ldap, /etc/dovecot, /etc/postfix). Each is a
// child of the test process in its own process group, stopped by PID with
// Wait in t.Cleanup, so a finished test leaves nothing behind and no zombie
// fools the next start (docs/testing.md §7). If the test binary dies without
// running its cleanups (a panic, go test -timeout), a watchdog process kills
// the servers and removes their directories (see reaper).
//
// House rule (docs/architecture.md rule 7): when a binary is missing, a test skips; when
// AUTHD_REQUIRE_INTEGRATION=1 (CI sets it), it fails instead, so CI cannot
// pass by silently skipping everything. Dovecot and Postfix also need root.
//
// Starting is cheap — measured here, ready in 0.05–0.15 s for Dovecot,
// Postfix and slapd, ≈0.9 s for MariaDB including mariadb-install-db; stopping
// takes < 0.03 s each — so a test may start its own servers. A package that
// uses one server for many cases should start it once in a parent test and
// run the cases as subtests.
//
// A typical interop test points real clients at authd:
//
//	dir := testenv.Dir(t) // world-traversable: Dovecot's and Postfix's users reach authd's sockets
//	// ... start authd with its sockets in dir ...
//	pf := testenv.StartPostfix(t, filepath.Join(dir, "auth-client"))
//	code, msg, err := testenv.SMTPAuth(ctx, pf.Addr, "PLAIN", "alice@example.com", "secret")
//	out, rc, err := testenv.NewDoveadm(t).Run(ctx, "auth", "test", "-a", filepath.Join(dir, "auth-client"), "alice@example.com", "secret")
//
// The recipes behind these helpers are in docs/testing.md.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/realserver"
)

// EnvRequire names the environment variable that turns "skip because a
// server binary is missing" into a test failure.
const EnvRequire = "AUTHD_REQUIRE_INTEGRATION"

// Integration reports whether AUTHD_REQUIRE_INTEGRATION=1, i.e. whether tests
// against real servers must run rather than skip.
func Integration() bool { return os.Getenv(EnvRequire) == "1" }

// Require skips the test (or fails it under AUTHD_REQUIRE_INTEGRATION=1) when
// any of the named binaries is missing. A name is looked up in PATH and then
// in /usr/sbin, /sbin and /usr/bin (a non-root or non-login PATH may lack the
// sbin directories); an absolute path is checked as is, which is how to
// require helpers outside PATH such as /usr/lib/dovecot/dovecot-lda.
func Require(t testing.TB, bins ...string) {
	t.Helper()
	var missing []string
	for _, b := range bins {
		if _, err := lookBin(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		unavailable(t, "missing binaries: %s", strings.Join(missing, ", "))
	}
}

// unavailable skips, or fails when integration tests are required.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Integration() {
		t.Fatalf("%s (and %s=1, so this is a failure, not a skip)", msg, EnvRequire)
	}
	t.Skip(msg)
}

// requireRoot is for Dovecot and Postfix: their masters must switch to the
// dovecot, dovenull and postfix users, which only root can do.
func requireRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "%s needs root (it switches to its service users)", what)
	}
}

// lookupIDs returns the uid of user u and, if g is not empty, the gid of group
// g. The packages create these users; a missing one means a broken install.
func lookupIDs(t testing.TB, u, g string) (uid, gid int) {
	t.Helper()
	usr, err := user.Lookup(u)
	if err != nil {
		unavailable(t, "user %q: %v", u, err)
	}
	uid, _ = strconv.Atoi(usr.Uid)
	gid, _ = strconv.Atoi(usr.Gid)
	if g != "" {
		grp, err := user.LookupGroup(g)
		if err != nil {
			unavailable(t, "group %q: %v", g, err)
		}
		gid, _ = strconv.Atoi(grp.Gid)
	}
	return uid, gid
}

// lookBin finds a binary in PATH or in the sbin directories
// (realserver.LookBin).
func lookBin(name string) (string, error) { return realserver.LookBin(name) }

// mustBin is lookBin for binaries a helper has already passed to Require.
func mustBin(t testing.TB, name string) string {
	t.Helper()
	p, err := lookBin(name)
	if err != nil {
		unavailable(t, "%v", err)
	}
	return p
}

var (
	portsMu sync.Mutex
	// portsGiven keeps two FreePort calls in one test binary from returning
	// the same port before the first server has bound it: the set of ports
	// handed out belongs to the process, not to a test.
	portsGiven = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it binds
// 127.0.0.1:0, reads the port the kernel chose and closes the listener. The
// kernel picks ports at random, so concurrent test binaries rarely collide;
// within one binary a port is never handed out twice.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("testenv: FreePort: %v", err)
	}
	return port
}

// freePort is FreePort as the launchers' Instance.FreePort.
func freePort() (int, error) {
	for range 100 {
		port, err := realserver.FreePort()
		if err != nil {
			return 0, err
		}
		portsMu.Lock()
		dup := portsGiven[port]
		portsGiven[port] = true
		portsMu.Unlock()
		if !dup {
			return port, nil
		}
	}
	return 0, errors.New("no unused port after 100 tries")
}

// Dir returns a new directory with mode 0755 under a world-traversable temp
// directory, removed at cleanup. Unlike t.TempDir, whose parent is 0700, the
// dovecot, dovenull and postfix users can reach files in it, and its path is
// short enough for unix socket names (108 bytes on Linux).
func Dir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp(tempBase(), "authd-testenv-")
	if err != nil {
		t.Fatalf("testenv: Dir: %v", err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatalf("testenv: Dir: %v", err)
	}
	reaperNote('d', d)
	t.Cleanup(func() {
		if err := os.RemoveAll(d); err != nil {
			t.Logf("testenv: removing %s: %v", d, err)
		}
		reaperNote('u', d)
	})
	return d
}

// tempBase is os.TempDir when it is short and world-traversable, else /tmp
// (realserver.TempBase).
func tempBase() string { return realserver.TempBase() }

// writeFile writes a file readable by the servers' unprivileged users.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := realserver.WriteFile(path, []byte(content)); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// mkdirs creates directories with mode 0755 (umask notwithstanding).
func mkdirs(t testing.TB, dirs ...string) {
	t.Helper()
	if err := realserver.Mkdirs(dirs...); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// cleanEnv is the environment for every child: the test's own, minus the
// variables that would make a server or client use something other than the
// private instance (MYSQL_*, LDAP*, MAIL_CONFIG), plus extra.
func cleanEnv(extra ...string) []string { return realserver.CleanEnv(extra...) }

// instance is how the Start functions have realserver run a server in dir:
// ports from FreePort, every process group and scratch directory known to
// the reaper.
func instance(dir string) realserver.Instance {
	return realserver.Instance{Dir: dir, FreePort: freePort, Tracker: reaperTracker{}}
}

// startFailed ends the test after a launcher's error: a skip (or, under
// AUTHD_REQUIRE_INTEGRATION=1, a failure) when the server cannot run here,
// a failure otherwise. The error carries the logs' tails.
func startFailed(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, realserver.ErrUnavailable) {
		unavailable(t, "%v", err)
	}
	t.Fatalf("testenv: %v", err)
}

// The reaper is a bash (Essential in Debian; dash's kill cannot signal a
// process group), started once per test binary in its own process group. It
// reads registrations from a pipe: "+ PGID" / "- PGID" for server process
// groups, "d PATH" / "u PATH" for directories, "m PATH" / "n PATH" for
// chroot mount points. When the pipe closes because this process has died
// without running its cleanups (a panic, go test's -timeout, a SIGKILL), it
// SIGKILLs every group still registered — and the leader by PID, in case it
// was not yet a group leader (Postfix's master before setsid) — then
// detaches every mount at or below each registered mount point (umount -l,
// deepest first) and removes the emptied mount point with rmdir, and only
// then removes the directories still registered, each after detaching the
// mounts below it (an interrupted mmdebstrap leaves /proc and /dev mounted
// in its target): a recursive removal must never reach /dev or the cached
// Debian root through a mount.
//
// Pdeathsig is not enough and is not used: Postfix's master and Dovecot's
// children change their effective uid, which clears it (prctl(2)), so after
// a crash they kept running, holding their ports. It is also tied to the
// creating OS thread, not the process (Go issue 27505).
var reaper struct {
	sync.Mutex
	w      *os.File
	failed bool
}

const reaperScript = `trap '' HUP INT TERM QUIT PIPE
declare -A groups dirs mounts
while read -r op arg; do
  case $op in
    +) groups[$arg]=1 ;;
    -) unset "groups[$arg]" ;;
    d) dirs[$arg]=1 ;;
    u) unset "dirs[$arg]" ;;
    m) mounts[$arg]=1 ;;
    n) unset "mounts[$arg]" ;;
  esac
done
for pg in "${!groups[@]}"; do
  kill -KILL -- "-$pg" 2>/dev/null
  kill -KILL -- "$pg" 2>/dev/null
done
if [ ${#groups[@]} -gt 0 ]; then sleep 0.2; fi
detach() {
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r | while read -r p; do umount -l -- "$p" 2>/dev/null; done
}
for m in "${!mounts[@]}"; do detach "$m"; rmdir -- "$m" 2>/dev/null; done
for d in "${!dirs[@]}"; do detach "$d"; rm -rf --one-file-system -- "$d"; done
`

// reaperTracker is the reaper as a realserver.Tracker.
type reaperTracker struct{}

func (reaperTracker) Group(pgid int, live bool) {
	op := byte('-')
	if live {
		op = '+'
	}
	reaperNote(op, strconv.Itoa(pgid))
}

func (reaperTracker) Dir(path string, live bool) {
	op := byte('u')
	if live {
		op = 'd'
	}
	reaperNote(op, path)
}

func (reaperTracker) Mount(path string, live bool) {
	op := byte('n')
	if live {
		op = 'm'
	}
	reaperNote(op, path)
}

// reaperNote sends one registration line (see reaper). It is best effort:
// without bash, a crashed test may leave servers and directories behind.
func reaperNote(op byte, arg string) {
	reaper.Lock()
	defer reaper.Unlock()
	if reaper.w == nil && !reaper.failed {
		reaper.failed = true
		r, w, err := os.Pipe()
		if err != nil {
			return
		}
		cmd := exec.Command("/bin/bash", "-c", reaperScript)
		cmd.Stdin = r // an *os.File: no copying goroutine, nothing to Wait for
		// Its own group, so a ^C aimed at go test does not kill it before
		// it has done its job.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		err = cmd.Start()
		r.Close()
		if err != nil {
			w.Close()
			return
		}
		// Never waited for: it lives exactly as long as this process (the
		// write end is close-on-exec, so no server inherits it).
		reaper.w, reaper.failed = w, false
	}
	if reaper.w != nil {
		fmt.Fprintf(reaper.w, "%c %s\n", op, arg)
	}
}

// waitReady polls probe until it succeeds, the process exits or timeout
// passes; the two failures stop the process and end the test with the tail
// of the logs.
func waitReady(t testing.TB, p *realserver.Proc, timeout time.Duration, probe func(context.Context) error, logs ...string) {
	t.Helper()
	if err := p.WaitReady(t.Context(), timeout, probe, logs...); err != nil {
		p.Stop(syscall.SIGKILL, time.Second)
		t.Fatalf("testenv: %v", err)
	}
}

// logOnFailure registers a cleanup that prints the logs' tails if the test
// failed. Cleanups run last-registered first, so this runs before the server
// is stopped and before its directory is removed.
func logOnFailure(t testing.TB, paths ...string) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: server logs:%s", realserver.Tails(paths...))
		}
	})
}

// run executes a helper command (install, load, CLI) and returns its combined
// output, failing the test on a non-zero exit.
func run(t testing.TB, env []string, stdin string, argv ...string) string {
	t.Helper()
	out, err := runErr(context.Background(), env, stdin, argv...)
	if err != nil {
		t.Fatalf("testenv: %v", err) // the error carries the command and its output
	}
	return out
}

// runErr runs a command and returns its combined output; the error wraps
// exec's (exitCode reads it).
func runErr(ctx context.Context, env []string, stdin string, argv ...string) (string, error) {
	return realserver.RunCmd(ctx, env, stdin, argv...)
}

// exitCode splits an exec error into an exit code (a normal outcome for the
// caller to judge) and an error (the command did not run to completion).
func exitCode(err error) (int, error) { return realserver.ExitCode(err) }

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
