package main

import (
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestLoginDirectory: base_dir/login is Dovecot's login directory, 0750
// and of default_login_user's group, and its login socket 0660: a login
// socket trusts what its client says (rip, no-penalty), so no other local
// user may reach it.
func TestLoginDirectory(t *testing.T) {
	p := startAuthd(t, baseConf, "run/auth-client", baseUsers)
	dir, err := os.Lstat(p.path("run/login"))
	if err != nil {
		t.Fatal(err)
	}
	if dir.Mode().Perm() != 0o750 || !dir.IsDir() {
		t.Errorf("run/login: %v, want a 0750 directory", dir.Mode())
	}
	sock, err := os.Lstat(p.path("run/login/login"))
	if err != nil {
		t.Fatal(err)
	}
	if sock.Mode()&os.ModeSocket == 0 || sock.Mode().Perm() != 0o660 {
		t.Errorf("run/login/login: %v, want a 0660 socket", sock.Mode())
	}
	if u, err := user.Lookup("dovenull"); err == nil && os.Geteuid() == 0 {
		gid, _ := strconv.Atoi(u.Gid)
		for name, fi := range map[string]os.FileInfo{"run/login": dir, "run/login/login": sock} {
			if got := int(fi.Sys().(*syscall.Stat_t).Gid); got != gid {
				t.Errorf("%s: group %d, want dovenull's %d", name, got, gid)
			}
		}
	}
}

// TestSymlinkPlantedAtListener: whoever can write a socket's directory (the
// postfix user, for /var/spool/postfix/private) replaces authd's socket
// with a symlink to a file of their choice and waits for a reload that
// changes the socket's mode. authd must not chmod, chown or remove
// anything through it; it refuses the reload and keeps serving.
func TestSymlinkPlantedAtListener(t *testing.T) {
	conf := baseConf + `
service auth {
  unix_listener $DIR/spool/auth {
    mode = 0660
  }
}
`
	p := startAuthd(t, conf, "run/auth-client", baseUsers)
	target := p.path("precious")
	if err := os.WriteFile(target, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := p.path("spool/auth")
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, sock); err != nil {
		t.Fatal(err)
	}
	changed := strings.ReplaceAll(strings.Replace(conf, "mode = 0660", "mode = 0666", 1), "$DIR", p.dir)
	if err := os.WriteFile(p.path("authd.conf"), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(p.stderr.String(), "keeping the running one") })
	mustContain(t, p.stderr.String(), "no longer authd's socket")
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the symlink's target became %v", fi.Mode().Perm())
	}
	if out, code := authdTest(t, "-a", p.path("run/auth-client"), "carol@example.com", "carolpw"); code != 0 {
		t.Fatalf("after the refused reload: exit %d: %s", code, out)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// Shutdown removes authd's own sockets, not the planted link.
	if _, err := os.Lstat(sock); err != nil {
		t.Errorf("the planted link was removed: %v", err)
	}
	if _, err := os.Stat(target); err != nil {
		t.Errorf("the link's target is gone: %v", err)
	}
}
