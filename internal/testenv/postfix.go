package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/realserver"
)

// postfixDaemonDir is Debian's daemon_directory; its master is not in PATH,
// and a bare "master" could match some unrelated binary.
const (
	postfixDaemonDir = "/usr/lib/postfix/sbin"
	postfixMaster    = postfixDaemonDir + "/master"
)

// Postfix is a private Postfix whose smtpd authenticates SMTP AUTH through
// the Dovecot SASL protocol (smtpd_sasl_type = dovecot), i.e. a real client
// of authd's auth-client socket (docs/testing.md §5).
type Postfix struct {
	Addr      string // smtpd's "127.0.0.1:port"
	Dir       string // instance directory
	ConfigDir string // main.cf and master.cf, for postconf -c / postfix -c
	Maillog   string // Postfix's log; add "debug_peer_list = 127.0.0.1" to see every SASL line

	mu   sync.Mutex
	proc *realserver.Proc
}

// StartPostfix starts Postfix's master in the foreground as a child of the
// test, with smtpd on a free port using saslPath (a unix socket path, a path
// relative to the queue directory, or "inet:host:port") as its Dovecot-SASL
// server. extraMainCF lines ("name = value") are appended to main.cf and
// override the defaults. Stop runs at cleanup.
//
// The SASL server must already be serving: smtpd connects to it before it
// sends its banner, and StartPostfix waits for the banner. (When it cannot
// connect, smtpd exits and the master throttles the service for
// service_throttle_time, set to 1s here instead of the default 60s.)
func StartPostfix(t testing.TB, saslPath string, extraMainCF ...string) *Postfix {
	t.Helper()
	Require(t, postfixMaster, postfixDaemonDir+"/smtpd", postfixDaemonDir+"/postlogd")
	requireRoot(t, "Postfix")
	ownerUID, ownerGID := lookupIDs(t, "postfix", "")
	_, postdrop := lookupIDs(t, "postfix", "postdrop")

	dir := Dir(t)
	p := &Postfix{
		Dir:       dir,
		ConfigDir: filepath.Join(dir, "etc"),
		Maillog:   filepath.Join(dir, "maillog"),
	}
	port := FreePort(t)
	p.Addr = loopback(port)
	queue := filepath.Join(dir, "queue")
	mkdirs(t, p.ConfigDir)

	// The queue layout "postfix check" would create (post-install
	// create-missing, per /etc/postfix/postfix-files). Doing it here skips
	// postfix-script and its scans; the 1.8 s docs/testing.md §5 measured for
	// "postfix check" is mostly the fresh-main.cf wait described below.
	mkdirOwned(t, queue, 0, 0, 0o755)
	mkdirOwned(t, filepath.Join(queue, "pid"), 0, 0, 0o755)
	for _, d := range []string{"active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace"} {
		mkdirOwned(t, filepath.Join(queue, d), ownerUID, ownerGID, 0o700)
	}
	mkdirOwned(t, filepath.Join(queue, "maildrop"), ownerUID, postdrop, 0o730)
	mkdirOwned(t, filepath.Join(queue, "public"), ownerUID, postdrop, 0o710)
	mkdirOwned(t, filepath.Join(dir, "data"), ownerUID, ownerGID, 0o700)

	// As root the master drops privileges per service, hence mail_owner. No
	// chroot anywhere, so absolute socket paths work. The empty alias and
	// local maps keep smtpd from opening /etc/aliases.db and NIS.
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
myhostname = authtest.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination =
relayhost =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
alias_maps =
alias_database =
local_recipient_maps =
maillog_file_prefixes = %[1]s, /dev/stdout
maillog_file = %[1]s/maillog
smtpd_peername_lookup = no
smtpd_banner = $myhostname ESMTP
smtpd_tls_security_level = none
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = %[2]s
smtpd_sasl_security_options = noanonymous
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
service_throttle_time = 1s
biff = no
`, dir, saslPath)
	for _, l := range extraMainCF {
		mainCF += l + "\n"
	}
	writeFile(t, filepath.Join(p.ConfigDir, "main.cf"), mainCF)
	// postlog is required whenever maillog_file is set.
	writeFile(t, filepath.Join(p.ConfigDir, "master.cf"), fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
`, port))

	// Postfix reloads a config file until its mtime is at least a second or
	// two in the past (dict_load_file: guarding against half-written files),
	// sleeping 300 ms per round: 1.8 s for a file written just now. Backdate
	// both files instead.
	past := time.Now().Add(-time.Minute)
	for _, f := range []string{"main.cf", "master.cf"} {
		if err := os.Chtimes(filepath.Join(p.ConfigDir, f), past, past); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}

	// "postfix start-fg" would run the master as a child of postfix-script
	// (unless PID 1), i.e. a grandchild of the test; "master -s" is what
	// start-fg runs, called directly, so the server is our child. The master
	// calls setsid itself, so it must not already lead a process group: it
	// would exit 1 with its only complaint sent to syslog.
	stdout := filepath.Join(dir, "master.stdout")
	pr, err := realserver.StartProc(realserver.ProcOptions{
		Name: "postfix", Log: stdout, OwnSession: true, Tracker: reaperTracker{},
	}, postfixMaster, "-c", p.ConfigDir, "-s")
	if err != nil {
		t.Fatalf("testenv: starting postfix master: %v", err)
	}
	p.proc = pr
	t.Cleanup(p.Stop)
	logOnFailure(t, stdout, p.Maillog)
	waitReady(t, pr, 20*time.Second, func(ctx context.Context) error {
		return smtpBanner(ctx, p.Addr)
	}, p.Maillog)
	return p
}

// Stop stops the master and its services (SIGTERM) and waits. It is
// idempotent and also runs at cleanup.
func (p *Postfix) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proc.Stop(syscall.SIGTERM, 10*time.Second)
}

func mkdirOwned(t testing.TB, path string, uid, gid int, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(path, mode); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// smtpBanner waits for a 220 greeting, then says QUIT.
func smtpBanner(ctx context.Context, addr string) error {
	c, err := realserver.DialProbe(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("no banner: %w", err)
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("banner %q", strings.TrimSpace(line))
	}
	fmt.Fprintf(c, "QUIT\r\n")
	return nil
}
