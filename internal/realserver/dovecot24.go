package realserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Dovecot24ConfigVersion is the dovecot_config_version (and
// dovecot_storage_version) StartDovecot24 writes: the configuration
// language the harness and the tests' configs are written in.
const Dovecot24ConfigVersion = "2.4.1"

// Dovecot24Options configures StartDovecot24.
type Dovecot24Options struct {
	Instance
	// Chroot is a mounted view of a Debian 13 root (TrixieRoot,
	// MountChroot) whose Binds include Dir and every other directory
	// Config refers to (authd's sockets, passwd-files, homes). The caller
	// unmounts it after Stop.
	Chroot *Chroot
	// Config is the body of dovecot.conf in 2.4 syntax. StartDovecot24
	// writes dovecot_config_version and dovecot_storage_version first (so
	// Config must not set them again) and its defaults before Config, so
	// Config can override them, and the instance's private paths after
	// it.
	Config string
	// Protocols lists mail protocols to serve: "imap", "pop3", "lmtp".
	// Each gets a listener on a free 127.0.0.1 port. Empty: auth only.
	Protocols []string
}

// Dovecot24 is a private Dovecot 2.4 instance running in a Chroot
// (docs/testing.md §4.6). Paths are the same inside the root and outside.
// Stop and Restart are as for Dovecot; the Chroot stays mounted.
type Dovecot24 struct {
	Dir     string // instance directory
	BaseDir string // base_dir
	Conf    string // dovecot.conf, for doveadm -c and doveconf -c (inside the root)
	Log     string // log_path (info and debug too)
	Stdout  string // the master's stdout and stderr

	// Loopback addresses of the listeners asked for in Protocols.
	IMAPAddr, POP3Addr, LMTPAddr string

	Chroot *Chroot

	server
}

// StartDovecot24 starts "dovecot -F -c DIR/dovecot.conf" inside the root
// and returns once its auth process completes a client-protocol handshake
// on BaseDir/auth-client. The caller must Stop it (before unmounting the
// Chroot).
func StartDovecot24(ctx context.Context, o Dovecot24Options) (*Dovecot24, error) {
	c := o.Chroot
	if c == nil || c.Root == "" {
		return nil, fmt.Errorf("StartDovecot24: no mounted Chroot")
	}
	if !c.Sees(o.Dir) {
		return nil, fmt.Errorf("StartDovecot24: %s is not bind-mounted in the root (binds %v)", o.Dir, c.Binds)
	}
	if err := dovecot24Installed(c, o.Protocols); err != nil {
		return nil, err
	}
	d := &Dovecot24{
		Dir: o.Dir, BaseDir: filepath.Join(o.Dir, "run"), Conf: filepath.Join(o.Dir, "dovecot.conf"),
		Log: filepath.Join(o.Dir, "dovecot.log"), Stdout: filepath.Join(o.Dir, "dovecot.stdout"),
		Chroot: c, server: server{grace: 10 * time.Second},
	}
	// A fresh base_dir, as for 2.3 (docs/testing.md §4.5).
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
instance_name = authd24-%[2]s
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
		po := o.procOptions("dovecot 2.4", d.Stdout)
		po.Chroot = c.Root
		p, err := StartProc(po, "/usr/sbin/dovecot", "-F", "-c", d.Conf)
		if err != nil {
			return nil, err
		}
		if err := p.WaitReady(ctx, 20*time.Second, func(ctx context.Context) error { return AuthHandshake(ctx, sock) }, d.Log); err != nil {
			p.Stop(syscall.SIGKILL, time.Second)
			return nil, err
		}
		return p, nil
	}
	if err := d.run(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// dovecot24Installed checks the root for the binaries of every protocol
// asked for and for Dovecot's users.
func dovecot24Installed(c *Chroot, protocols []string) error {
	bins := []string{"/usr/sbin/dovecot", "/usr/bin/doveconf", "/usr/bin/doveadm"}
	for _, proto := range protocols {
		switch proto {
		case "imap", "pop3":
			bins = append(bins, dovecotLibexec+"/"+proto, dovecotLibexec+"/"+proto+"-login")
		case "lmtp":
			bins = append(bins, dovecotLibexec+"/lmtp")
		default:
			return fmt.Errorf("StartDovecot24: unsupported protocol %q", proto)
		}
	}
	var missing []string
	for _, b := range bins {
		if !isExecutable(filepath.Join(c.Root, b)) {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return Unavailable("not in the Debian 13 root: %s", strings.Join(missing, ", "))
	}
	passwd, err := os.ReadFile(filepath.Join(c.Root, "etc/passwd"))
	if err != nil {
		return err
	}
	for _, u := range []string{"dovecot", "dovenull"} {
		if !strings.Contains("\n"+string(passwd), "\n"+u+":") {
			return Unavailable("user %q missing in the Debian 13 root", u)
		}
	}
	return nil
}

// prelude is the 2.4 defaults written before the caller's config.
func (d *Dovecot24) prelude(o Dovecot24Options) (string, error) {
	var pre strings.Builder
	fmt.Fprintf(&pre, "dovecot_config_version = %[1]s\ndovecot_storage_version = %[1]s\n", Dovecot24ConfigVersion)
	fmt.Fprintf(&pre, "# realserver defaults; the config below may override them\n")
	fmt.Fprintf(&pre, "protocols = %s\nlisten = 127.0.0.1\nssl = no\n", strings.Join(o.Protocols, " "))
	pre.WriteString("service auth {\n  unix_listener auth-client {\n    mode = 0666\n  }\n  unix_listener auth-userdb {\n    mode = 0666\n  }\n}\n")
	for _, proto := range o.Protocols {
		port, err := o.port()
		if err != nil {
			return "", err
		}
		// 2.4 sets a listener's address with listen = (2.3: address =).
		switch proto {
		case "imap":
			d.IMAPAddr = loopback(port)
			fmt.Fprintf(&pre, "service imap-login {\n  inet_listener imap {\n    listen = 127.0.0.1\n    port = %d\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}\n", port)
		case "pop3":
			d.POP3Addr = loopback(port)
			fmt.Fprintf(&pre, "service pop3-login {\n  inet_listener pop3 {\n    listen = 127.0.0.1\n    port = %d\n  }\n  inet_listener pop3s {\n    port = 0\n  }\n}\n", port)
		case "lmtp":
			d.LMTPAddr = loopback(port)
			fmt.Fprintf(&pre, "service lmtp {\n  inet_listener lmtp {\n    listen = 127.0.0.1\n    port = %d\n  }\n}\n", port)
		}
	}
	return pre.String(), nil
}

// Socket returns the path of a socket in base_dir, e.g. "auth-client".
func (d *Dovecot24) Socket(name string) string { return filepath.Join(d.BaseDir, name) }

// Doveadm runs "doveadm -c Conf args..." inside the root and returns its
// combined output and exit code (0 ok, 67 unknown user, 75 temporary
// failure, 77 authentication failed); err only when it could not run.
func (d *Dovecot24) Doveadm(ctx context.Context, args ...string) (string, int, error) {
	return d.Chroot.Run(ctx, append([]string{"/usr/bin/doveadm", "-c", d.Conf}, args...)...)
}

// Doveconf runs "doveconf -c Conf args..." inside the root.
func (d *Dovecot24) Doveconf(ctx context.Context, args ...string) (string, int, error) {
	return d.Chroot.Run(ctx, append([]string{"/usr/bin/doveconf", "-c", d.Conf}, args...)...)
}
