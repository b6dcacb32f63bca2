package realserver

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// dovecotLibexec holds Dovecot's service binaries (imap, lmtp, …), which
// are not in PATH.
const dovecotLibexec = "/usr/lib/dovecot"

// DovecotOptions configures StartDovecot.
type DovecotOptions struct {
	Instance
	// Config is the body of dovecot.conf: passdbs, userdbs, auth_*
	// settings, services. StartDovecot writes its defaults before Config,
	// so Config can override them (including the auth-client and
	// auth-userdb socket modes, 0666 by default so that unprivileged
	// clients can connect), and the instance's private paths after it, so
	// nothing can escape Dir.
	Config string
	// Protocols lists mail protocols to serve: "imap", "pop3", "lmtp".
	// Each gets a listener on a free 127.0.0.1 port. Empty: auth only.
	Protocols []string
}

// Dovecot is a private Dovecot 2.3 instance (docs/testing.md §4). Stop
// signals the master and all its children at once (≈10 ms, instead of
// 1.1 s for the master alone, which waits for its children), so the log
// may end with errors about connections between them (anvil-auth-penalty):
// read the log before Stop. PID is the master's, which leads the group of
// all its service processes.
type Dovecot struct {
	Dir     string // instance directory
	BaseDir string // base_dir: auth-client, auth-userdb, auth-master, auth-login, login/login, lmtp
	Conf    string // dovecot.conf, for doveadm -c and doveconf -c
	Log     string // log_path (info and debug too)
	Stdout  string // the master's stdout and stderr

	// Loopback addresses ("127.0.0.1:port") of the listeners asked for in
	// DovecotOptions.Protocols; empty when not asked for.
	IMAPAddr, POP3Addr, LMTPAddr string

	server
}

// StartDovecot starts "dovecot -F -c DIR/dovecot.conf" and returns once its
// auth process answers a client-protocol handshake on BaseDir/auth-client
// (a socket file alone proves nothing: it outlives the process,
// docs/testing.md §4.5). The caller must Stop it. Dovecot needs root: its
// master switches to the dovecot and dovenull users.
func StartDovecot(ctx context.Context, o DovecotOptions) (*Dovecot, error) {
	bins := []string{"dovecot", "doveconf"}
	for _, proto := range o.Protocols {
		switch proto {
		case "imap", "pop3": // dovecot-imapd, dovecot-pop3d
			bins = append(bins, dovecotLibexec+"/"+proto, dovecotLibexec+"/"+proto+"-login")
		case "lmtp": // dovecot-lmtpd
			bins = append(bins, dovecotLibexec+"/lmtp")
		default:
			return nil, fmt.Errorf("StartDovecot: unsupported protocol %q", proto)
		}
	}
	paths, err := lookBins(bins...)
	if err != nil {
		return nil, err
	}
	if err := needRoot("Dovecot"); err != nil {
		return nil, err
	}
	if err := needUsers("dovecot", "dovenull"); err != nil {
		return nil, err
	}
	d := &Dovecot{
		Dir: o.Dir, BaseDir: filepath.Join(o.Dir, "run"), Conf: filepath.Join(o.Dir, "dovecot.conf"),
		Log: filepath.Join(o.Dir, "dovecot.log"), Stdout: filepath.Join(o.Dir, "dovecot.stdout"),
		server: server{grace: 10 * time.Second},
	}
	// A fresh base_dir: stale sockets and master.pid from an earlier
	// instance in the same Dir would mislead both the probe and Dovecot's
	// own "already running" check.
	if err := os.RemoveAll(d.BaseDir); err != nil {
		return nil, err
	}
	if err := Mkdirs(o.Dir, d.BaseDir, filepath.Join(o.Dir, "state")); err != nil {
		return nil, err
	}
	pre, err := d.prelude(o)
	if err != nil {
		return nil, err
	}
	conf := pre + "\n# caller's config\n" + o.Config + fmt.Sprintf(`

# private paths (last, so they win)
instance_name = authd-%[2]s
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
info_log_path = %[1]s/dovecot.log
debug_log_path = %[1]s/dovecot.log
`, o.Dir, filepath.Base(o.Dir))
	if err := WriteFile(d.Conf, []byte(conf)); err != nil {
		return nil, err
	}
	sock := d.Socket("auth-client")
	d.launch = func(ctx context.Context) (*Proc, error) {
		return startAndWait(ctx, o.Instance, "dovecot", d.Stdout, 20*time.Second, func(ctx context.Context) error {
			return AuthHandshake(ctx, sock)
		}, []string{paths[0], "-F", "-c", d.Conf}, d.Log)
	}
	if err := d.run(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// prelude is the defaults written before the caller's config, with a
// listener on a free port for each mail protocol.
func (d *Dovecot) prelude(o DovecotOptions) (string, error) {
	var pre strings.Builder
	fmt.Fprintf(&pre, "# realserver defaults; the config below may override them\n")
	fmt.Fprintf(&pre, "protocols = %s\nlisten = 127.0.0.1\nssl = no\n", strings.Join(o.Protocols, " "))
	pre.WriteString("service auth {\n  unix_listener auth-client {\n    mode = 0666\n  }\n  unix_listener auth-userdb {\n    mode = 0666\n  }\n}\n")
	for _, proto := range o.Protocols {
		port, err := o.port()
		if err != nil {
			return "", err
		}
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
		}
	}
	return pre.String(), nil
}

// Socket returns the path of a socket in base_dir, e.g. "auth-client".
func (d *Dovecot) Socket(name string) string { return filepath.Join(d.BaseDir, name) }

// AuthHandshake does the client-protocol handshake (docs/protocol.md §1.2)
// on the socket at path and waits for DONE: proof that an auth server
// (Dovecot's auth process, authd) is up and serving that socket.
func AuthHandshake(ctx context.Context, path string) error {
	c, err := DialProbe(ctx, path)
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
	return fmt.Errorf("auth handshake on %s: connection closed before DONE", path)
}
