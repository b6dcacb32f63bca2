package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/testenv"
)

// A real Dovecot whose own auth knows no users, pointed at authd for
// everything (docs/testing.md §4.4): imap-login and pop3-login use authd's
// login socket, imap and pop3 finish logins on its master socket (REQUEST),
// LMTP and LDA look users up on its userdb socket.

const mailConf = `
base_dir = $DIR/run
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT $DIR/users
}
userdb {
  driver = passwd-file
  args = $DIR/users
  # The issue's production setting is uid=vmail gid=vmail; nobody/nogroup
  # exist on every Debian machine and prove that names become numbers.
  override_fields = uid=nobody gid=nogroup home=$DIR/mail/%n/
}
service auth {
  unix_listener auth-login {
    mode = 0666
  }
  unix_listener auth-master {
    mode = 0666
  }
  unix_listener auth-userdb {
    mode = 0666
  }
}
`

func dovecotFor(t *testing.T, authdRun string) *testenv.Dovecot {
	t.Helper()
	dir := testenv.Dir(t)
	if err := os.WriteFile(filepath.Join(dir, "nousers"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("$AUTHD", authdRun, "$DIR", dir).Replace(`
auth_failure_delay = 0
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
# Dovecot's own auth knows no users: every answer comes from authd.
passdb {
  driver = passwd-file
  args = $DIR/nousers
}
userdb {
  driver = passwd-file
  args = $DIR/nousers
}
auth_socket_path = $AUTHD/auth-userdb
service imap-login {
  executable = imap-login $AUTHD/auth-login
  chroot =
}
service imap {
  executable = imap -a $AUTHD/auth-master
}
service pop3-login {
  executable = pop3-login $AUTHD/auth-login
  chroot =
}
service pop3 {
  executable = pop3 -a $AUTHD/auth-master
}
`)
	return testenv.StartDovecot(t, testenv.DovecotOptions{Config: conf, Protocols: []string{"imap", "pop3", "lmtp"}, Dir: dir})
}

func TestDovecotMailProcessesThroughAuthd(t *testing.T) {
	testenv.Require(t, "dovecot", "doveadm")
	hash := doveadmHash(t, "SHA512-CRYPT", "alicepw")
	p := startAuthd(t, mailConf, "run/auth-login", map[string]string{
		"users": "alice@example.com:" + hash + ":1000:1000::/ignored::userdb_quota_rule=*:storage=1G\n" +
			"bob@example.com:{PLAIN}bobpw:1001:1001::/ignored::\n" +
			"nl@example.com:{PLAIN}nlpw::::::nologin reason=Moved\n",
	})
	mail := p.path("mail")
	if err := os.MkdirAll(mail, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(mail, 0o777) // nobody creates the homes
	dc := dovecotFor(t, p.path("run"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	t.Run("imap", func(t *testing.T) {
		login, sel, err := testenv.IMAPLogin(ctx, dc.IMAPAddr, "alice@example.com", "alicepw")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(login, "a1 OK") || !strings.HasPrefix(sel, "a2 OK") {
			t.Fatalf("LOGIN %q, SELECT %q", login, sel)
		}
		// The home came from override_fields and belongs to nobody.
		st, err := os.Stat(filepath.Join(mail, "alice", "Maildir"))
		if err != nil {
			t.Fatalf("home not created from override_fields: %v\n%s", err, readFile(dc.Log))
		}
		nobody, err1 := user.Lookup("nobody")
		nogroup, err2 := user.LookupGroup("nogroup")
		if err1 != nil || err2 != nil {
			t.Fatalf("nobody/nogroup: %v %v", err1, err2)
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); !ok || fmt.Sprint(sys.Uid) != nobody.Uid || fmt.Sprint(sys.Gid) != nogroup.Gid {
			t.Errorf("home owned by %v, want nobody:nogroup (%s:%s)", st.Sys(), nobody.Uid, nogroup.Gid)
		}
		login, _, err = testenv.IMAPLogin(testenv.WithSourceIP(ctx, "127.0.0.3"), dc.IMAPAddr, "alice@example.com", "wrong")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(login, "a1 NO [AUTHENTICATIONFAILED]") {
			t.Fatalf("wrong password: %q", login)
		}
	})
	t.Run("pop3", func(t *testing.T) {
		reply, err := testenv.POP3Login(ctx, dc.POP3Addr, "bob@example.com", "bobpw")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(reply, "+OK") {
			t.Fatalf("POP3 PASS: %q\n%s", reply, readFile(dc.Log))
		}
		reply, err = testenv.POP3Login(testenv.WithSourceIP(ctx, "127.0.0.4"), dc.POP3Addr, "bob@example.com", "wrong")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(reply, "-ERR") {
			t.Fatalf("POP3 wrong password: %q", reply)
		}
	})
	t.Run("lmtp", func(t *testing.T) {
		rcpt, data, err := testenv.LMTPDeliver(ctx, dc.LMTPAddr, "sender@example.org",
			[]string{"bob@example.com", "nobody@example.com"}, "Subject: hi\r\n\r\nhello bob\r\n")
		if err != nil {
			t.Fatal(err)
		}
		if len(rcpt) != 2 || rcpt[0].Code != 250 || rcpt[1].Code != 550 || !strings.HasPrefix(rcpt[1].Text, "5.1.1") {
			t.Fatalf("RCPT replies %v", rcpt)
		}
		if len(data) != 1 || data[0].Code != 250 {
			t.Fatalf("DATA replies %v\n%s", data, readFile(dc.Log))
		}
		files, _ := filepath.Glob(filepath.Join(mail, "bob", "Maildir", "new", "*"))
		if len(files) != 1 {
			t.Fatalf("bob's Maildir/new has %d messages, want 1", len(files))
		}
	})
	t.Run("lda", func(t *testing.T) {
		lda := "/usr/lib/dovecot/dovecot-lda"
		testenv.Require(t, lda)
		run := func(user string) int {
			cmd := exec.CommandContext(ctx, lda, "-c", dc.Conf, "-d", user, "-f", "sender@example.org")
			cmd.Stdin = strings.NewReader("Subject: lda\n\nhello\n")
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode()
			} else if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			return 0
		}
		if code := run("alice@example.com"); code != 0 {
			t.Fatalf("dovecot-lda to alice: exit %d\n%s", code, readFile(dc.Log))
		}
		if code := run("nobody@example.com"); code != 67 {
			t.Fatalf("dovecot-lda to an unknown user: exit %d, want 67", code)
		}
	})
	t.Run("doveadm", func(t *testing.T) {
		da := dc.Doveadm()
		run := func(args ...string) (string, int) {
			t.Helper()
			out, code, err := da.Run(ctx, args...)
			if err != nil {
				t.Fatal(err)
			}
			return out, code
		}
		userdb := p.path("run/auth-userdb")
		out, code := run("user", "-a", userdb, "alice@example.com")
		if code != 0 {
			t.Fatalf("doveadm user: rc %d\n%s", code, out)
		}
		mustHaveFields(t, out, map[string]string{"uid": "65534", "gid": "65534", "home": filepath.Join(mail, "alice") + "/",
			"quota_rule": "*:storage=1G"})
		if out, code := run("user", "-a", userdb, "nosuch@example.com"); code != 67 {
			t.Fatalf("doveadm user unknown: rc %d\n%s", code, out)
		}
		out, code = run("user", "-a", userdb, "*")
		if code != 0 || !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "bob@example.com") {
			t.Fatalf("doveadm user '*': rc %d\n%s", code, out)
		}
		out, code = run("auth", "lookup", "-a", userdb, "nl@example.com")
		if code != 0 || !strings.Contains(out, "nologin") {
			t.Fatalf("doveadm auth lookup: rc %d\n%s", code, out)
		}
		if out, code := run("auth", "lookup", "-a", userdb, "nosuch@example.com"); code != 67 {
			t.Fatalf("doveadm auth lookup unknown: rc %d\n%s", code, out)
		}
		out, code = run("auth", "login", "-a", p.path("run/auth-login"), "-m", p.path("run/auth-master"), "alice@example.com", "alicepw")
		if code != 0 || !strings.Contains(out, "userdb extra fields") || !strings.Contains(out, "auth_mech=PLAIN") {
			t.Fatalf("doveadm auth login: rc %d\n%s", code, out)
		}
		out, code = run("auth", "cache", "flush", "-a", p.path("run/auth-master"))
		if code != 0 || !strings.Contains(out, "cache entries flushed") {
			t.Fatalf("doveadm auth cache flush: rc %d\n%s", code, out)
		}
	})
}

// TestDoveadmUserTempFail: a userdb that cannot answer makes doveadm user
// exit 75 (temporary failure), not 67 (unknown user).
func TestDoveadmUserTempFail(t *testing.T) {
	da := testenv.NewDoveadm(t)
	conf := strings.Replace(mailConf, "  args = $DIR/users\n  # The issue", "  args = $DIR/missing-users\n  # The issue", 1)
	p := startAuthd(t, conf, "run/auth-login", map[string]string{"users": "alice@example.com:{PLAIN}x::::::\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, code, err := da.Run(ctx, "user", "-a", p.path("run/auth-userdb"), "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if code != 75 {
		t.Fatalf("rc %d, want 75\n%s", code, out)
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
