package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/testenv"
)

// Dovecot 2.4.1's mail stack (Debian 13, in a chroot: docs/testing.md §4.6)
// as a client of authd, wired as for 2.3 (docs/testing.md §4.4): imap-login
// and pop3-login on authd's login socket, imap and pop3 finishing logins on
// its master socket (REQUEST), LMTP on its userdb socket, 2.4's doveadm on
// all three. 2.4's clients name the service protocol= instead of service=
// (docs/protocol.md §1.9).

// authdConfigs24 are the authd configurations the 2.4 mail stack runs
// against, one subtest each: the same users and the same answers, written
// in each configuration language authd reads. Every entry must provide:
//
//   - base_dir $DIR/run with auth-login, auth-master and auth-userdb at
//     mode 0666 besides the default auth-client, auth_failure_delay 0,
//     mechanisms PLAIN and LOGIN;
//   - first a passdb that denies the users listed in $DIR/deny-<protocol>
//     (a passwd-file; a missing file denies no one): carol is listed for
//     pop3 only, so she logs in over IMAP and not over POP3 exactly when
//     the protocol= of 2.4's requests reaches the passdb as the service;
//   - then the passwd-file $DIR/users (default scheme SHA512-CRYPT) as
//     passdb and userdb, the userdb overriding uid=nobody gid=nogroup
//     home=$DIR/mail/<user part>/.
var authdConfigs24 = []struct{ name, conf string }{
	{"authd-2.3-syntax", `
base_dir = $DIR/run
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = $DIR/deny-%s
  deny = yes
}
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT $DIR/users
}
userdb {
  driver = passwd-file
  args = $DIR/users
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
`},
	// The same in Dovecot 2.4's language: the deny file's name from the
	// 2.4 variable %{protocol}, fields { } instead of override_fields.
	{"authd-2.4-syntax", `
dovecot_config_version = 2.4.1
base_dir = $DIR/run
auth_mechanisms = plain login
auth_failure_delay = 0
passdb deny {
  driver = passwd-file
  passwd_file_path = $DIR/deny-%{protocol}
  deny = yes
}
passdb passwd-file {
  passwd_file_path = $DIR/users
  default_password_scheme = SHA512-CRYPT
}
userdb passwd-file {
  passwd_file_path = $DIR/users
  fields {
    uid = nobody
    gid = nogroup
    home = $DIR/mail/%{user | username}/
  }
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
`},
}

func TestDovecot24MailStackThroughAuthd(t *testing.T) {
	for _, c := range authdConfigs24 {
		t.Run(c.name, func(t *testing.T) { testMailStack24(t, c.conf) })
	}
}

// dovecot24For starts Dovecot 2.4 whose own auth knows no users, pointed
// at authd's sockets in authdRun, with authdDir mounted in its root.
func dovecot24For(t *testing.T, authdDir string) *testenv.Dovecot24 {
	t.Helper()
	dir := testenv.Dir(t)
	if err := os.WriteFile(filepath.Join(dir, "nousers"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("$AUTHD", filepath.Join(authdDir, "run"), "$DIR", dir).Replace(`
auth_allow_cleartext = yes
auth_failure_delay = 0
mail_driver = maildir
mail_path = ~/Maildir
# Dovecot's own auth knows no users: every answer comes from authd.
passdb passwd-file {
  passwd_file_path = $DIR/nousers
}
userdb passwd-file {
  passwd_file_path = $DIR/nousers
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
	return testenv.StartDovecot24(t, testenv.Dovecot24Options{
		Dir: dir, Config: conf, Protocols: []string{"imap", "pop3", "lmtp"}, Binds: []string{authdDir},
	})
}

func testMailStack24(t *testing.T, authdConf string) {
	hash := doveadmHash(t, "SHA512-CRYPT", "alicepw")
	p := startAuthd(t, authdConf, "run/auth-login", map[string]string{
		"users": "alice@example.com:" + hash + ":1000:1000::/ignored::userdb_quota_rule=*:storage=1G\n" +
			"bob@example.com:{PLAIN}bobpw:1001:1001::/ignored::\n" +
			"carol@example.com:{PLAIN}carolpw:1002:1002::/ignored::\n",
		"deny-pop3": "carol@example.com\n",
	})
	mail := p.path("mail")
	if err := os.MkdirAll(mail, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(mail, 0o777) // nobody creates the homes
	dc := dovecot24For(t, p.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("imap", func(t *testing.T) { imap24(ctx, t, dc, mail) })
	t.Run("protocol=", func(t *testing.T) {
		login, sel, err := testenv.IMAPLogin(ctx, dc.IMAPAddr, "carol@example.com", "carolpw")
		if err != nil || !strings.HasPrefix(login, "a1 OK") || !strings.HasPrefix(sel, "a2 OK") {
			t.Errorf("carol over IMAP: LOGIN %q, SELECT %q, %v", login, sel, err)
		}
		// From an address of its own: a refusal counts towards authd's
		// penalty for the address (docs/protocol.md §1.7).
		reply, err := testenv.POP3Login(testenv.WithSourceIP(ctx, "127.0.0.6"), dc.POP3Addr, "carol@example.com", "carolpw")
		if err != nil || !strings.HasPrefix(reply, "-ERR") {
			t.Errorf("carol over POP3, denied by deny-pop3: %q, %v", reply, err)
		}
	})
	t.Run("lmtp", func(t *testing.T) {
		rcpt, data, err := testenv.LMTPDeliver(ctx, dc.LMTPAddr, "sender@example.org",
			[]string{"bob@example.com", "nobody@example.com"}, "Subject: hi\r\n\r\nhello bob\r\n")
		if err != nil {
			t.Fatal(err)
		}
		if len(rcpt) != 2 || rcpt[0].Code != 250 || rcpt[1].Code != 550 || !strings.HasPrefix(rcpt[1].Text, "5.1.1") {
			t.Fatalf("RCPT replies %v, want 250 and 550 5.1.1", rcpt)
		}
		if len(data) != 1 || data[0].Code != 250 {
			t.Fatalf("DATA replies %v\n%s", data, readFile(dc.Log))
		}
		if files, _ := filepath.Glob(filepath.Join(mail, "bob", "Maildir", "new", "*")); len(files) != 1 {
			t.Fatalf("bob's Maildir/new has %d messages, want 1", len(files))
		}
	})
	t.Run("pop3", func(t *testing.T) {
		// After the LMTP delivery above: STAT sees bob's one message.
		replies, err := testenv.POP3Session(ctx, dc.POP3Addr, "bob@example.com", "bobpw", "STAT")
		if err != nil {
			t.Fatal(err)
		}
		if len(replies) != 3 || !strings.HasPrefix(replies[1], "+OK") || !regexp.MustCompile(`^\+OK 1 \d+$`).MatchString(replies[2]) {
			t.Fatalf("USER, PASS, STAT: %q, want +OK replies and one message\n%s", replies, readFile(dc.Log))
		}
		reply, err := testenv.POP3Login(testenv.WithSourceIP(ctx, "127.0.0.4"), dc.POP3Addr, "bob@example.com", "wrong")
		if err != nil || !strings.HasPrefix(reply, "-ERR [AUTH]") {
			t.Fatalf("POP3 wrong password: %q, %v", reply, err)
		}
	})
	t.Run("doveadm", func(t *testing.T) { doveadm24(ctx, t, dc.Doveadm(), p, mail) })
}

// imap24: LOGIN and AUTHENTICATE PLAIN through authd's login socket, then
// SELECT, for which imap asks authd's master socket (REQUEST) for the
// userdb fields: the home from override_fields, created as nobody.
func imap24(ctx context.Context, t *testing.T, dc *testenv.Dovecot24, mail string) {
	login, sel, err := testenv.IMAPLogin(ctx, dc.IMAPAddr, "alice@example.com", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(login, "a1 OK") || !strings.HasPrefix(sel, "a2 OK [READ-WRITE]") {
		t.Fatalf("LOGIN %q, SELECT %q\n%s", login, sel, readFile(dc.Log))
	}
	st, err := os.Stat(filepath.Join(mail, "alice", "Maildir"))
	if err != nil {
		t.Fatalf("home not created from override_fields: %v\n%s", err, readFile(dc.Log))
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || sys.Uid != 65534 || sys.Gid != 65534 {
		t.Errorf("alice's Maildir owned by %v, want nobody:nogroup (65534)", st.Sys())
	}
	auth, sel, err := testenv.IMAPAuthenticatePlain(ctx, dc.IMAPAddr, "bob@example.com", "bobpw")
	if err != nil || !strings.HasPrefix(auth, "a1 OK") || !strings.HasPrefix(sel, "a2 OK [READ-WRITE]") {
		t.Fatalf("AUTHENTICATE PLAIN %q, SELECT %q, %v", auth, sel, err)
	}
	login, _, err = testenv.IMAPLogin(testenv.WithSourceIP(ctx, "127.0.0.3"), dc.IMAPAddr, "alice@example.com", "wrong")
	if err != nil || !strings.HasPrefix(login, "a1 NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("wrong password: %q, %v", login, err)
	}
	// Each expected failure from an address of its own: a second one from
	// 127.0.0.3 would wait out authd's penalty (docs/protocol.md §1.7).
	auth, _, err = testenv.IMAPAuthenticatePlain(testenv.WithSourceIP(ctx, "127.0.0.5"), dc.IMAPAddr, "bob@example.com", "wrong")
	if err != nil || !strings.HasPrefix(auth, "a1 NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("AUTHENTICATE PLAIN, wrong password: %q, %v", auth, err)
	}
}

// doveadm24 runs 2.4's doveadm against authd's sockets: auth test on
// auth-client (a default listener, mode 0600, for root), user on
// auth-userdb, auth login on auth-login and then auth-master (REQUEST).
func doveadm24(ctx context.Context, t *testing.T, da *testenv.Doveadm, p *proc, mail string) {
	run := func(args ...string) (string, int) {
		t.Helper()
		out, code, err := da.Run(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out, code
	}
	client, login, master, userdb := p.path("run/auth-client"), p.path("run/auth-login"), p.path("run/auth-master"), p.path("run/auth-userdb")
	out, code := run("auth", "test", "-a", client, "alice@example.com", "alicepw")
	if code != 0 || !strings.Contains(out, "passdb: alice@example.com auth succeeded") {
		t.Errorf("doveadm auth test: rc %d\n%s", code, out)
	}
	out, code = run("auth", "test", "-a", client, "alice@example.com", "wrong")
	if code != 77 || !strings.Contains(out, "auth failed") {
		t.Errorf("doveadm auth test, wrong password: rc %d, want 77\n%s", code, out)
	}
	out, code = run("user", "-a", userdb, "alice@example.com")
	if code != 0 {
		t.Fatalf("doveadm user: rc %d\n%s", code, out)
	}
	mustHaveFields(t, out, map[string]string{"uid": "65534", "gid": "65534",
		"home": filepath.Join(mail, "alice") + "/", "quota_rule": "*:storage=1G"})
	if out, code := run("user", "-a", userdb, "nosuch@example.com"); code != 67 {
		t.Errorf("doveadm user, unknown user: rc %d, want 67\n%s", code, out)
	}
	out, code = run("auth", "login", "-a", login, "-m", master, "alice@example.com", "alicepw")
	if code != 0 || !strings.Contains(out, "passdb: alice@example.com auth succeeded") ||
		!strings.Contains(out, "userdb extra fields:") || !strings.Contains(out, "auth_mech=PLAIN") ||
		!strings.Contains(out, "home="+filepath.Join(mail, "alice")+"/") {
		t.Errorf("doveadm auth login: rc %d\n%s", code, out)
	}
	out, code = run("auth", "login", "-a", login, "-m", master, "alice@example.com", "wrong")
	if code != 77 {
		t.Errorf("doveadm auth login, wrong password: rc %d, want 77\n%s", code, out)
	}
}
