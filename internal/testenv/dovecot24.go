package testenv

import (
	"context"
	"os"
	"testing"

	"github.com/authd-project/authd/internal/realserver"
)

// Environment variables that move TrixieRoot's cache and mirror; both are
// optional (docs/testing.md §4.6).
const (
	EnvRootCache    = "AUTHD_TESTENV_CACHE" // default /var/cache/authd-testenv
	EnvDebianMirror = "AUTHD_DEBIAN_MIRROR" // default http://deb.debian.org/debian
)

// TrixieRoot returns a Debian 13 root with Dovecot 2.4.1 and its modules
// (realserver.TrixiePackages), built with mmdebstrap on first use (about
// 1–2 minutes) and cached in /var/cache/authd-testenv for every later test
// and run (realserver.TrixieRoot). Parallel test binaries build it once.
// It skips without root or mmdebstrap, or fails under
// AUTHD_REQUIRE_INTEGRATION=1; a failed build fails the test.
func TrixieRoot(t testing.TB) string {
	t.Helper()
	requireRoot(t, "a Debian 13 root (mmdebstrap, chroot)")
	Require(t, "mmdebstrap")
	root, err := realserver.TrixieRoot(t.Context(), realserver.RootOptions{
		CacheDir: os.Getenv(EnvRootCache),
		Mirror:   os.Getenv(EnvDebianMirror),
		Logf:     t.Logf,
		Tracker:  reaperTracker{},
	})
	if err != nil {
		startFailed(t, err)
	}
	return root
}

// Chroot is a mounted, private view of the Debian 13 root
// (realserver.Chroot): Root, Binds, Run, Command.
type Chroot = realserver.Chroot

// MountTrixie mounts a private view of TrixieRoot for this test: the root
// read-only, its own /proc, /dev and /tmp, and binds — directories such as
// Dir's — at their identical paths, so that files and sockets have one path
// inside and outside. Everything is unmounted at cleanup, before any
// directory is removed, and a failed unmount fails the test. Run programs
// in it with its Run or Command:
//
//	c := testenv.MountTrixie(t, dir)
//	out, code, err := c.Run(ctx, "/usr/bin/doveconf", "-n", "-c", dir+"/dovecot.conf")
func MountTrixie(t testing.TB, binds ...string) *Chroot {
	t.Helper()
	root := TrixieRoot(t)
	c, err := realserver.MountChroot(root, reaperTracker{}, binds...)
	if err != nil {
		startFailed(t, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("testenv: unmounting the Debian 13 root: %v", err)
		}
	})
	return c
}

// Dovecot24Options configures StartDovecot24.
type Dovecot24Options struct {
	// Dir is the instance directory; empty means a new Dir.
	Dir string
	// Config is the body of dovecot.conf in Dovecot 2.4 syntax, without
	// dovecot_config_version and dovecot_storage_version (the harness
	// writes both, realserver.Dovecot24ConfigVersion, first). The
	// harness's defaults (protocols, listen, ssl = no, auth-client and
	// auth-userdb at mode 0666, a listener on a free port per protocol)
	// come before it, the private paths after it, as for StartDovecot.
	Config string
	// Protocols lists mail protocols to serve: "imap", "pop3", "lmtp".
	Protocols []string
	// Binds are more directories Config refers to (authd's base_dir, a
	// passwd-file's directory, homes), mounted at their identical paths
	// inside the root. Dir is always mounted.
	Binds []string
}

// Dovecot24 is a private Dovecot 2.4.1 instance in a Debian 13 root
// (realserver.Dovecot24): Dir, BaseDir, Conf, Log, IMAPAddr, POP3Addr,
// LMTPAddr, Socket, Stop, and Chroot, the mounted root it runs in.
type Dovecot24 struct {
	*realserver.Dovecot24
}

// StartDovecot24 starts Dovecot 2.4 in its own mounted view of TrixieRoot
// (MountTrixie with Dir and opts.Binds) and returns once its auth process
// completes a client-protocol handshake. At cleanup it is stopped and then
// the root unmounted. Skips or fails as TrixieRoot does.
func StartDovecot24(t testing.TB, opts Dovecot24Options) *Dovecot24 {
	t.Helper()
	dir := opts.Dir
	if dir == "" {
		dir = Dir(t)
	}
	c := MountTrixie(t, append([]string{dir}, opts.Binds...)...)
	d, err := realserver.StartDovecot24(t.Context(), realserver.Dovecot24Options{
		Instance: instance(dir), Chroot: c, Config: opts.Config, Protocols: opts.Protocols,
	})
	if err != nil {
		startFailed(t, err)
	}
	t.Cleanup(d.Stop) // runs before MountTrixie's unmount
	logOnFailure(t, d.Stdout, d.Log)
	return &Dovecot24{d}
}

// Doveadm returns a runner of 2.4's doveadm inside the root with this
// instance's config. Give it sockets by -a as with 2.3's.
func (d *Dovecot24) Doveadm() *Doveadm { return &Doveadm{Conf: d.Conf, chroot: d.Chroot} }

// NewDoveadm24 is NewDoveadm for Dovecot 2.4's doveadm: a minimal 2.4
// config in a new Dir and a runner inside a MountTrixie with that Dir and
// binds (the directories of the sockets it will be pointed at).
func NewDoveadm24(t testing.TB, binds ...string) *Doveadm {
	t.Helper()
	dir := Dir(t)
	c := MountTrixie(t, append([]string{dir}, binds...)...)
	conf := dir + "/doveadm.conf"
	writeFile(t, conf, "dovecot_config_version = "+realserver.Dovecot24ConfigVersion+"\n"+
		"dovecot_storage_version = "+realserver.Dovecot24ConfigVersion+"\n"+doveadmConf(dir))
	mkdirs(t, dir+"/run", dir+"/state")
	return &Doveadm{Conf: conf, chroot: c}
}

// runIn runs doveadm inside c with the config conf.
func runIn(ctx context.Context, c *Chroot, conf string, args []string) (string, int, error) {
	return c.Run(ctx, append([]string{"/usr/bin/doveadm", "-c", conf}, args...)...)
}
