package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// dovecotLibexec holds Dovecot's service binaries (imap, lmtp, dovecot-lda…),
// which are not in PATH.
const dovecotLibexec = "/usr/lib/dovecot"

// Doveadm runs the real doveadm with a private config, as a client of any auth
// server (authd or a Dovecot) whose socket is given with -a.
type Doveadm struct {
	// Conf is the dovecot.conf passed with -c. Its base_dir is private, so
	// doveadm never touches a system Dovecot.
	Conf string
}

// NewDoveadm writes a minimal config (doveadm needs a parsable config, not a
// running Dovecot) and returns a runner for it. It skips, or fails under
// AUTHD_REQUIRE_INTEGRATION=1, when doveadm is missing.
func NewDoveadm(t testing.TB) *Doveadm {
	t.Helper()
	Require(t, "doveadm", "doveconf")
	dir := Dir(t)
	mkdirs(t, filepath.Join(dir, "run"), filepath.Join(dir, "state"))
	conf := filepath.Join(dir, "doveadm.conf")
	// doveadm logs its errors to stderr regardless of log_path; the value only
	// has to be a private path.
	writeFile(t, conf, fmt.Sprintf(`instance_name = authd-doveadm-%[2]s
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/doveadm.log
protocols =
listen = 127.0.0.1
ssl = no
`, dir, filepath.Base(dir)))
	return &Doveadm{Conf: conf}
}

// Run runs "doveadm -c Conf args...". It returns doveadm's combined output and
// exit code; err is set only when doveadm could not be run or was stopped by
// ctx. Exit codes: 0 ok, 67 unknown user, 75 temporary failure, 77 auth
// failed — note that "auth test" also exits 77 when it cannot connect, so
// check the output ("auth failed" vs "connect(...) failed") when it matters.
func (d *Doveadm) Run(ctx context.Context, args ...string) (out string, code int, err error) {
	bin, err := lookBin("doveadm")
	if err != nil {
		return "", -1, err
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"-c", d.Conf}, args...)...)
	cmd.Env = cleanEnv()
	b, err := cmd.CombinedOutput()
	code, err = exitCode(err)
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return string(b), code, err
}

// DovecotOptions configures StartDovecot.
type DovecotOptions struct {
	// Config is the body of dovecot.conf: passdbs, userdbs, auth_* settings,
	// services (for example imap-login's executable pointed at authd's login
	// socket). The harness writes its defaults before Config, so Config can
	// override them (including the auth-client and auth-userdb socket modes,
	// 0666 by default so that Postfix's smtpd and lmtp can connect), and the
	// instance's private paths after it, so nothing can escape Dir.
	Config string
	// Protocols lists mail protocols to serve: "imap", "pop3", "lmtp". Each
	// gets a listener on a free 127.0.0.1 port. Empty: auth only
	// ("protocols =").
	Protocols []string
	// Dir is the instance directory; empty means a new Dir. Pass your own
	// when Config must refer to files (a passwd-file, homes) written before
	// the start. It must be traversable by the dovecot and dovenull users
	// (Dir returns such directories).
	Dir string
}

// Dovecot is a private Dovecot 2.3 instance: a reference auth server for
// differential tests, and an IMAP/POP3/LMTP server for interop tests.
//
// Dovecot penalises failed logins per remote IP (2 s, 4 s, … up to 15 s for
// later requests from that IP, realservers.md §4.3), and requests without
// rip= (doveadm auth test) share one bucket. Put "auth_failure_delay = 0" in
// Config (failures are still answered on a 500 ms timer), and make expected
// failures last, or come from distinct addresses (WithSourceIP for the
// clients here, doveadm's -x rip=…), or send no-penalty in raw-protocol
// tests. Note: imap-login did not send no-penalty for
// login_trusted_networks = 127.0.0.0/8 here, unlike what realservers.md
// §4.3 suggests.
type Dovecot struct {
	Dir     string // instance directory
	BaseDir string // base_dir: auth-client, auth-userdb, auth-master, auth-login, login/login, lmtp
	Conf    string // dovecot.conf, for doveadm -c and doveconf -c
	Log     string // log_path (info and debug too) — with auth_debug, a transcript of every request

	// Loopback addresses ("127.0.0.1:port") of the listeners asked for in
	// DovecotOptions.Protocols; empty when not asked for.
	IMAPAddr, POP3Addr, LMTPAddr string

	mu   sync.Mutex
	proc *proc
}

// StartDovecot starts "dovecot -F -c DIR/dovecot.conf" and returns once its auth
// process answers a client-protocol handshake on BaseDir/auth-client (a
// socket file alone proves nothing: it outlives the process). Stop runs at
// cleanup.
func StartDovecot(t testing.TB, opts DovecotOptions) *Dovecot {
	t.Helper()
	Require(t, "dovecot", "doveconf")
	for _, proto := range opts.Protocols {
		switch proto {
		case "imap", "pop3": // dovecot-imapd, dovecot-pop3d
			Require(t, dovecotLibexec+"/"+proto, dovecotLibexec+"/"+proto+"-login")
		case "lmtp": // dovecot-lmtpd
			Require(t, dovecotLibexec+"/lmtp")
		}
	}
	requireRoot(t, "Dovecot")
	lookupIDs(t, "dovecot", "")
	lookupIDs(t, "dovenull", "")

	dir := opts.Dir
	if dir == "" {
		dir = Dir(t)
	}
	d := &Dovecot{
		Dir:     dir,
		BaseDir: filepath.Join(dir, "run"),
		Conf:    filepath.Join(dir, "dovecot.conf"),
		Log:     filepath.Join(dir, "dovecot.log"),
	}
	// A fresh base_dir: stale sockets and master.pid from an earlier instance
	// in the same Dir would mislead both the probe and Dovecot's own
	// "already running" check.
	if err := os.RemoveAll(d.BaseDir); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	mkdirs(t, d.BaseDir, filepath.Join(dir, "state"))

	var pre strings.Builder
	fmt.Fprintf(&pre, "# testenv defaults; the test's config below may override them\n")
	fmt.Fprintf(&pre, "protocols = %s\nlisten = 127.0.0.1\nssl = no\n", strings.Join(opts.Protocols, " "))
	pre.WriteString("service auth {\n  unix_listener auth-client {\n    mode = 0666\n  }\n  unix_listener auth-userdb {\n    mode = 0666\n  }\n}\n")
	for _, proto := range opts.Protocols {
		port := FreePort(t)
		switch proto {
		case "imap":
			d.IMAPAddr = loopback(port)
			fmt.Fprintf(&pre, "service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}\n", port)
		case "pop3":
			d.POP3Addr = loopback(port)
			fmt.Fprintf(&pre, "service pop3-login {\n  inet_listener pop3 {\n    address = 127.0.0.1\n    port = %d\n  }\n  inet_listener pop3s {\n    port = 0\n  }\n}\n", port)
		case "lmtp":
			d.LMTPAddr = loopback(port)
			fmt.Fprintf(&pre, "service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = %d\n  }\n}\n", port)
		default:
			t.Fatalf("testenv: StartDovecot: unsupported protocol %q", proto)
		}
	}
	conf := pre.String() + "\n# test config\n" + opts.Config + fmt.Sprintf(`

# testenv private paths (last, so they win)
instance_name = authd-%[2]s
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
info_log_path = %[1]s/dovecot.log
debug_log_path = %[1]s/dovecot.log
`, dir, filepath.Base(dir))
	writeFile(t, d.Conf, conf)

	stdout := filepath.Join(dir, "dovecot.stdout")
	p, err := startProc(stdout, cleanEnv(), false, mustBin(t, "dovecot"), "-F", "-c", d.Conf)
	if err != nil {
		t.Fatalf("testenv: starting dovecot: %v", err)
	}
	d.proc = p
	t.Cleanup(d.Stop)
	logOnFailure(t, stdout, d.Log)
	sock := d.Socket("auth-client")
	waitReady(t, "dovecot", p, 20*time.Second, func(ctx context.Context) error {
		return authHandshake(ctx, sock)
	}, stdout, d.Log)
	return d
}

// Socket returns the path of a socket in base_dir, e.g. "auth-client".
func (d *Dovecot) Socket(name string) string { return filepath.Join(d.BaseDir, name) }

// Doveadm returns a doveadm runner using this instance's config, so commands
// without -a talk to this instance's sockets.
func (d *Dovecot) Doveadm() *Doveadm { return &Doveadm{Conf: d.Conf} }

// Stop stops the instance and waits. SIGTERM goes to the master and all its
// children at once (≈10 ms, instead of 1.1 s for the master alone, which
// waits for its children), so the log may end with errors about connections
// between them (anvil-auth-penalty) — read the log before Stop. Stop is
// idempotent and also runs at cleanup.
func (d *Dovecot) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.proc.stop(syscall.SIGTERM, 10*time.Second)
}

// authHandshake does the client-protocol handshake (protocol.md §1.2) and
// waits for DONE: proof that Dovecot's auth process is up and serving.
func authHandshake(ctx context.Context, sock string) error {
	c, err := dialProbe(ctx, sock)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "VERSION\t1\t2\nCPID\t%d\n", os.Getpid()); err != nil {
		return err
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if sc.Text() == "DONE" {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("auth handshake on %s: connection closed before DONE", sock)
}
