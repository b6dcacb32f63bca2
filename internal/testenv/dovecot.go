package testenv

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/authd-project/authd/internal/realserver"
)

// Doveadm runs the real doveadm with a private config, as a client of any auth
// server (authd or a Dovecot) whose socket is given with -a.
type Doveadm struct {
	// Conf is the dovecot.conf passed with -c. Its base_dir is private, so
	// doveadm never touches a system Dovecot.
	Conf string
	// chroot, if set, runs Dovecot 2.4's doveadm inside that root
	// (NewDoveadm24, Dovecot24.Doveadm) instead of the system's.
	chroot *Chroot
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
	writeFile(t, conf, doveadmConf(dir))
	return &Doveadm{Conf: conf}
}

// doveadmConf is a minimal config for doveadm as a client, the same in 2.3
// and 2.4 syntax. doveadm logs its errors to stderr regardless of
// log_path; the value only has to be a private path.
func doveadmConf(dir string) string {
	return fmt.Sprintf(`instance_name = authd-doveadm-%[2]s
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/doveadm.log
protocols =
listen = 127.0.0.1
ssl = no
`, dir, filepath.Base(dir))
}

// Run runs "doveadm -c Conf args...". It returns doveadm's combined output and
// exit code; err is set only when doveadm could not be run or was stopped by
// ctx. Exit codes: 0 ok, 67 unknown user, 75 temporary failure, 77 auth
// failed — note that "auth test" also exits 77 when it cannot connect, so
// check the output ("auth failed" vs "connect(...) failed") when it matters.
func (d *Doveadm) Run(ctx context.Context, args ...string) (out string, code int, err error) {
	if d.chroot != nil {
		return runIn(ctx, d.chroot, d.Conf, args)
	}
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

// Dovecot is a private Dovecot 2.3 instance (realserver.Dovecot:
// docs/testing.md §4): a reference auth server for differential tests, and
// an IMAP/POP3/LMTP server for interop tests. Its fields (Dir, BaseDir,
// Conf, Log, IMAPAddr, POP3Addr, LMTPAddr) and Socket and Stop are
// realserver's.
//
// Dovecot penalises failed logins per remote IP (2 s, 4 s, … up to 15 s for
// later requests from that IP, docs/testing.md §4.3), and requests without
// rip= (doveadm auth test) share one bucket. Put "auth_failure_delay = 0" in
// Config (failures are still answered on a 500 ms timer), and make expected
// failures last, or come from distinct addresses (WithSourceIP for the
// clients here, doveadm's -x rip=…), or send no-penalty in raw-protocol
// tests. Note: imap-login did not send no-penalty for
// login_trusted_networks = 127.0.0.0/8 here, unlike what docs/testing.md
// §4.3 suggests.
type Dovecot struct {
	*realserver.Dovecot
}

// StartDovecot starts "dovecot -F -c DIR/dovecot.conf" and returns once its auth
// process answers a client-protocol handshake on BaseDir/auth-client (a
// socket file alone proves nothing: it outlives the process). Stop runs at
// cleanup.
func StartDovecot(t testing.TB, opts DovecotOptions) *Dovecot {
	t.Helper()
	Require(t, "dovecot", "doveconf")
	requireRoot(t, "Dovecot")
	lookupIDs(t, "dovecot", "")
	lookupIDs(t, "dovenull", "")
	dir := opts.Dir
	if dir == "" {
		dir = Dir(t)
	}
	d, err := realserver.StartDovecot(t.Context(), realserver.DovecotOptions{
		Instance: instance(dir), Config: opts.Config, Protocols: opts.Protocols,
	})
	if err != nil {
		startFailed(t, err)
	}
	t.Cleanup(d.Stop)
	logOnFailure(t, d.Stdout, d.Log)
	return &Dovecot{d}
}

// Doveadm returns a doveadm runner using this instance's config, so commands
// without -a talk to this instance's sockets.
func (d *Dovecot) Doveadm() *Doveadm { return &Doveadm{Conf: d.Conf} }
