// Package testenv starts real servers — mariadbd, slapd, Dovecot and Postfix —
// as child processes of a test, for integration and interop tests of authd,
// plus minimal SMTP, IMAP, POP3 and LMTP clients to drive them.
//
// Every server runs privately: its own directory (see Dir), free loopback
// ports (see FreePort), its own unix sockets, and never the system
// configuration (/etc/mysql, /etc/ldap, /etc/dovecot, /etc/postfix). Each is a
// child of the test process in its own process group, stopped by PID with
// Wait in t.Cleanup, so a finished test leaves nothing behind and no zombie
// fools the next start (realservers.md §7). If the test binary dies without
// running its cleanups (a panic, go test -timeout), a watchdog process kills
// the servers and removes their directories (see reaper).
//
// House rule (design.md rule 7): when a binary is missing, a test skips; when
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
// The recipes behind these helpers are in /work/shared/spec/realservers.md.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

var binDirs = []string{"/usr/sbin", "/sbin", "/usr/bin"}

// lookBin finds a binary in PATH or in binDirs.
func lookBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range binDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", name)
}

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
	// the same port before the first server has bound it.
	portsGiven = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it binds
// 127.0.0.1:0, reads the port the kernel chose and closes the listener. The
// kernel picks ports at random, so concurrent test binaries rarely collide;
// within one binary a port is never handed out twice.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv: FreePort: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		portsMu.Lock()
		dup := portsGiven[port]
		portsGiven[port] = true
		portsMu.Unlock()
		if !dup {
			return port
		}
	}
	t.Fatalf("testenv: FreePort: no unused port after 100 tries")
	return 0
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

// tempBase is os.TempDir when every directory on its path can be traversed by
// other users and the path is short; otherwise /tmp.
func tempBase() string {
	base := os.TempDir()
	if len(base) > 40 {
		return "/tmp"
	}
	for p := base; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if p == "/" || p == "." {
			return base
		}
	}
}

// writeFile writes a file readable by the servers' unprivileged users.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// WriteFile's mode is filtered by the umask; the servers need 0644.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// mkdirs creates directories with mode 0755 (umask notwithstanding).
func mkdirs(t testing.TB, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
}

// cleanEnv is the environment for every child: the test's own, minus the
// variables that would make a server or client use something other than the
// private instance (MYSQL_*, LDAP*, MAIL_CONFIG), plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "MYSQL_"), strings.HasPrefix(k, "MARIADB_"),
			strings.HasPrefix(k, "LDAP"), k == "MAIL_CONFIG", k == "MAIL_DEBUG":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// proc is one server process: a direct child, leader of its own process group.
type proc struct {
	cmd      *exec.Cmd
	done     chan struct{} // closed once Wait has returned
	err      error         // Wait's result, valid after done
	stopOnce sync.Once
}

// startProc starts argv with stdout and stderr appended to logPath.
//
// Setpgid puts the server and everything it forks (Dovecot's service
// processes) in one group whose id is the server's PID, so stop can signal
// them together. ownSession is for servers that call setsid themselves
// (Postfix's master): setsid fails with EPERM in a process group leader, and
// the new session gives the same group anyway. The group is registered with
// the reaper, which kills it if the test binary dies without running its
// cleanups.
func startProc(logPath string, env []string, ownSession bool, argv ...string) (*proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // the child has its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !ownSession}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	reaperNote('+', strconv.Itoa(cmd.Process.Pid))
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the process group, waits for the leader (SIGKILL after
// grace), then SIGKILLs whatever is left of the group. Signalling the group
// rather than only the leader is what makes Dovecot stop in ≈10 ms instead of
// 1.1 s: its master otherwise waits for its children before exiting.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if p == nil {
		return
	}
	// Once: a second group kill, long after the first, could hit a reused id.
	p.stopOnce.Do(func() { p.stopGroup(sig, grace) })
}

func (p *proc) stopGroup(sig syscall.Signal, grace time.Duration) {
	pgid := p.pid()
	if !p.exited() {
		// The leader itself too: a Postfix master that has not yet called
		// setsid does not lead a group.
		_ = syscall.Kill(pgid, sig)
		_ = syscall.Kill(-pgid, sig)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	}
	// The leader is reaped; stragglers keep the group id alive, so it cannot
	// have been reused by an unrelated process.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	reaperNote('-', strconv.Itoa(pgid))
}

// The reaper is a bash (Essential in Debian; dash's kill cannot signal a
// process group), started once per test binary in its own process group. It
// reads registrations from a pipe: "+ PGID" / "- PGID" for server process
// groups, "d PATH" / "u PATH" for directories. When the pipe closes because
// this process has died without running its cleanups (a panic, go test's
// -timeout, a SIGKILL), it SIGKILLs every group still registered — and the
// leader by PID, in case it was not yet a group leader (Postfix's master
// before setsid) — then removes the directories still registered.
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
declare -A groups dirs
while read -r op arg; do
  case $op in
    +) groups[$arg]=1 ;;
    -) unset "groups[$arg]" ;;
    d) dirs[$arg]=1 ;;
    u) unset "dirs[$arg]" ;;
  esac
done
for pg in "${!groups[@]}"; do
  kill -KILL -- "-$pg" 2>/dev/null
  kill -KILL -- "$pg" 2>/dev/null
done
if [ ${#groups[@]} -gt 0 ]; then sleep 0.2; fi
for d in "${!dirs[@]}"; do rm -rf -- "$d"; done
`

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
// passes; the two failures end the test with the tail of the logs.
func waitReady(t testing.TB, what string, p *proc, timeout time.Duration, probe func(context.Context) error, logs ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	var err error
	for {
		if p.exited() {
			t.Fatalf("testenv: %s exited during start-up (%v)%s", what, p.err, tails(logs...))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = probe(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(delay)
		delay = min(delay*2, 50*time.Millisecond)
	}
	p.stop(syscall.SIGKILL, time.Second)
	t.Fatalf("testenv: %s not ready after %v: %v%s", what, timeout, err, tails(logs...))
}

// tails returns the last lines of each log file, for failure messages.
func tails(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintf(&b, "\n--- %s (tail) ---\n%s", p, strings.Join(lines, "\n"))
	}
	return b.String()
}

// logOnFailure registers a cleanup that prints the logs' tails if the test
// failed. Cleanups run last-registered first, so this runs before the server
// is stopped and before its directory is removed.
func logOnFailure(t testing.TB, paths ...string) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: server logs:%s", tails(paths...))
		}
	})
}

// run executes a helper command (install, load, CLI) and returns its combined
// output, failing the test on a non-zero exit.
func run(t testing.TB, env []string, stdin string, argv ...string) string {
	t.Helper()
	out, err := runErr(context.Background(), env, stdin, argv...)
	if err != nil {
		t.Fatalf("testenv: %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return out
}

func runErr(ctx context.Context, env []string, stdin string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// exitCode splits an exec error into an exit code (a normal outcome for the
// caller to judge) and an error (the command did not run to completion).
func exitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitCode(), nil
	}
	return -1, err
}

// dialProbe connects to a unix socket path or a host:port.
func dialProbe(ctx context.Context, addr string) (net.Conn, error) {
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	return c, nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
