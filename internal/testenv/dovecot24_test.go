package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/authd-project/authd/internal/realserver"
)

// TestDovecot24 starts Dovecot 2.4 in the Debian 13 root with its own
// passwd-file auth and an IMAP listener, drives it, and checks that its
// mounts are gone afterwards — also after a test that ends early.
func TestDovecot24(t *testing.T) {
	t.Parallel()
	var root string
	t.Run("instance", func(t *testing.T) {
		dir := Dir(t)
		mkdirs(t, filepath.Join(dir, "mail"))
		// uid 1001 exists on neither side: Dovecot takes numeric ids as
		// they come.
		mkdirOwned(t, filepath.Join(dir, "mail", "alice"), 1001, 1001, 0o700)
		writeFile(t, filepath.Join(dir, "users"), fmt.Sprintf("alice@example.com:{PLAIN}alicepw:1001:1001::%s/mail/alice::\n", dir))
		var d *Dovecot24
		timed(t, "StartDovecot24", func() {
			d = StartDovecot24(t, Dovecot24Options{Dir: dir, Protocols: []string{"imap"}, Config: fmt.Sprintf(`
auth_allow_cleartext = yes
auth_failure_delay = 0
auth_mechanisms = plain login
mail_driver = maildir
mail_path = ~/Maildir
passdb passwd-file {
  passwd_file_path = %[1]s/users
}
userdb passwd-file {
  passwd_file_path = %[1]s/users
}
`, dir)})
		})
		root = d.Chroot.Root
		ctx := ctxT(t)

		out, code, err := d.Chroot.Run(ctx, "/usr/sbin/dovecot", "--version")
		if err != nil || code != 0 || !strings.HasPrefix(out, "2.4.") {
			t.Fatalf("dovecot --version in the root: %q, code %d, err %v", out, code, err)
		}
		out, code, err = d.Doveconf(ctx, "-n")
		if err != nil || code != 0 || !strings.Contains(out, "dovecot_config_version = "+realserver.Dovecot24ConfigVersion+"\n") ||
			!strings.Contains(out, "passwd_file_path = "+dir+"/users\n") {
			t.Errorf("doveconf -n: code %d, err %v:\n%s", code, err, out)
		}
		da := d.Doveadm()
		out, code, err = da.Run(ctx, "auth", "test", "-a", d.Socket("auth-client"), "alice@example.com", "alicepw")
		if err != nil || code != 0 || !strings.Contains(out, "auth succeeded") {
			t.Errorf("doveadm auth test: code %d, err %v:\n%s", code, err, out)
		}
		out, code, err = da.Run(ctx, "auth", "test", "-a", d.Socket("auth-client"), "alice@example.com", "wrong")
		if err != nil || code != 77 || !strings.Contains(out, "auth failed") {
			t.Errorf("doveadm auth test, wrong password: code %d (want 77), err %v:\n%s", code, err, out)
		}
		login, sel, err := IMAPLogin(ctx, d.IMAPAddr, "alice@example.com", "alicepw")
		if err != nil || !strings.HasPrefix(login, "a1 OK") || !strings.HasPrefix(sel, "a2 OK") {
			t.Errorf("IMAP: LOGIN %q, SELECT %q, err %v", login, sel, err)
		}
		// The shared cached root is mounted read-only; the instance's own
		// directory, bound at the same path, is writable.
		if err := os.WriteFile(filepath.Join(root, "etc", "authd-test"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("writing into the root: %v, want EROFS", err)
		}
		if _, err := os.Stat(filepath.Join(root, dir, "users")); err != nil {
			t.Errorf("the instance directory is not visible at its own path inside: %v", err)
		}
		if m, _ := realserver.MountsBelow(root); len(m) < 5 {
			t.Errorf("mounts below %s while running: %v, want root, proc, dev, tmp and the bind", root, m)
		}
	})
	checkUnmounted(t, root)

	// Auth only, as a reference for differential tests, asked by a
	// doveadm 2.4 of its own.
	t.Run("auth only", func(t *testing.T) {
		dir := Dir(t)
		writeFile(t, filepath.Join(dir, "users"), "bob@example.com:{PLAIN}bobpw:1002:1002::/home/bob::userdb_quota_rule=*:storage=1G\n")
		d := StartDovecot24(t, Dovecot24Options{Dir: dir, Config: fmt.Sprintf(`
passdb passwd-file {
  passwd_file_path = %[1]s/users
}
userdb passwd-file {
  passwd_file_path = %[1]s/users
}
`, dir)})
		da := NewDoveadm24(t, d.BaseDir)
		out, code, err := da.Run(ctxT(t), "user", "-a", d.Socket("auth-userdb"), "bob@example.com")
		if err != nil || code != 0 || !strings.Contains(out, "home\t/home/bob") || !strings.Contains(out, "quota_rule\t*:storage=1G") {
			t.Errorf("doveadm user: code %d, err %v:\n%s", code, err, out)
		}
		out, code, err = da.Run(ctxT(t), "user", "-a", d.Socket("auth-userdb"), "nosuch@example.com")
		if err != nil || code != 67 {
			t.Errorf("doveadm user, unknown: code %d (want 67), err %v:\n%s", code, err, out)
		}
	})

	// A test that ends early (SkipNow and FailNow both leave through
	// runtime.Goexit and run the cleanups) leaves no mount either.
	t.Run("ends early", func(t *testing.T) {
		root = MountTrixie(t, Dir(t)).Root
		t.Skip("ending the subtest early on purpose; the parent checks its mounts are gone")
	})
	checkUnmounted(t, root)
}

func checkUnmounted(t *testing.T, root string) {
	t.Helper()
	if root == "" {
		return // the subtest failed before mounting; it said why
	}
	if m, err := realserver.MountsBelow(root); err != nil || len(m) != 0 {
		t.Errorf("mounts left below %s after cleanup: %v %v", root, m, err)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point %s left behind: %v", root, err)
	}
}
