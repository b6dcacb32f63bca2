package vars

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startLocalDovecot24 is a small, local stand-in for the Debian 13 test
// environment (testenv.TrixieRoot / testenv.StartDovecot24, being built
// elsewhere): it finds or builds a Debian 13 root with Dovecot 2.4 and runs
// one private Dovecot in it with chroot. Only TestLiveDovecot24 uses it;
// when the shared helpers land, this file goes and the test calls them.
//
// The root is $AUTHD_DOVECOT24_ROOT, else /var/tmp/authd-dovecot24-root,
// built there with mmdebstrap (docs/testing.md §8.1) when it is missing and
// mmdebstrap is installed. Without root privileges, or without a root and a
// way to build one, the test is skipped, or fails with
// AUTHD_REQUIRE_INTEGRATION=1.
//
// The instance's directory lives inside the root (ROOT/tmp/…), so no bind
// mount is needed: paths in its configuration are relative to the root,
// and the test reaches its sockets through ROOT/… from outside.
type localDovecot24 struct {
	root    string // the Debian 13 tree
	dir     string // the instance's directory as Dovecot sees it (/tmp/…)
	version string // `dovecot --version`
	cmd     *exec.Cmd
}

const defaultDovecot24Root = "/var/tmp/authd-dovecot24-root"

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if requireIntegration() {
		t.Fatalf("AUTHD_REQUIRE_INTEGRATION=1: "+format, args...)
	}
	t.Skipf(format, args...)
}

// dovecot24Root returns a Debian 13 root with Dovecot 2.4, building it when
// it can.
func dovecot24Root(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "Dovecot 2.4 runs in a Debian 13 chroot, which needs root")
	}
	root := cmp.Or(os.Getenv("AUTHD_DOVECOT24_ROOT"), defaultDovecot24Root)
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/dovecot")); err == nil {
		return root
	}
	mm, err := exec.LookPath("mmdebstrap")
	if err != nil {
		skipOrFail(t, "no Debian 13 root at %s and no mmdebstrap to build one", root)
	}
	if testing.Short() && !requireIntegration() {
		t.Skip("-short: not building a Debian 13 root")
	}
	tmp := root + ".building"
	os.RemoveAll(tmp)
	out, err := exec.Command(mm, "--variant=minbase", "--include=dovecot-core", "trixie", tmp,
		"http://deb.debian.org/debian").CombinedOutput()
	if err != nil {
		os.RemoveAll(tmp)
		skipOrFail(t, "mmdebstrap failed: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, root); err != nil {
		t.Fatalf("installing the Debian 13 root: %v", err)
	}
	return root
}

// startLocalDovecot24 writes the configuration conf(dir) and the files
// (name -> content, relative to the instance directory) and starts
// Dovecot on it. dir is the directory as Dovecot sees it.
func startLocalDovecot24(t *testing.T, files map[string]string, conf func(dir string) string) *localDovecot24 {
	t.Helper()
	root := dovecot24Root(t)
	host, err := os.MkdirTemp(filepath.Join(root, "tmp"), "authd-vars24-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("AUTHD_KEEP_DOVECOT24") == "" {
			os.RemoveAll(host)
		}
	})
	dc := &localDovecot24{root: root, dir: strings.TrimPrefix(host, root)}
	// The auth process runs as the root's dovecot user.
	for _, d := range []string{"", "run", "state"} {
		if err := os.MkdirAll(filepath.Join(host, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(host, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(host, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	confPath := filepath.Join(dc.dir, "dovecot.conf")
	if err := os.WriteFile(filepath.Join(root, confPath), []byte(conf(dc.dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chroot", root, "/usr/sbin/dovecot", "--version").Output(); err == nil {
		dc.version = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("chroot", root, "/usr/bin/doveconf", "-n", "-c", confPath).CombinedOutput(); err != nil {
		var msgs []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "doveconf:") {
				msgs = append(msgs, l)
			}
		}
		t.Fatalf("Dovecot 2.4 rejects the test configuration: %v\n%s", err, strings.Join(msgs, "\n"))
	}
	dc.cmd = exec.Command("chroot", root, "/usr/sbin/dovecot", "-F", "-c", confPath)
	dc.cmd.Stdout, dc.cmd.Stderr = os.Stderr, os.Stderr
	if err := dc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dc.stop)
	dc.waitSocket(t, "auth-client")
	return dc
}

// stop ends the instance (again: a no-op).
func (dc *localDovecot24) stop() {
	if dc.cmd.ProcessState == nil {
		dc.cmd.Process.Signal(syscall.SIGTERM)
		dc.cmd.Wait()
	}
}

// path is a path of the instance as seen from outside the root.
func (dc *localDovecot24) path(name string) string {
	return filepath.Join(dc.root, dc.dir, name)
}

func (dc *localDovecot24) log() string {
	b, _ := os.ReadFile(dc.path("dovecot.log"))
	return string(b)
}

func (dc *localDovecot24) waitSocket(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.Dial("unix", dc.path(filepath.Join("run", name)))
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Dovecot 2.4 did not come up: %v\n%s", err, dc.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quote24 writes v as a quoted 2.4 configuration value.
func quote24(v string) string {
	return fmt.Sprintf(`"%s"`, strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v))
}
