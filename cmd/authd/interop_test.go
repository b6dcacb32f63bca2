package main

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/testenv"
)

// These tests put authd in front of the real clients: Dovecot's doveadm
// and Postfix's smtpd. They skip when those are not installed, and fail
// instead under AUTHD_REQUIRE_INTEGRATION=1 (CI).

const interopConf = `
base_dir = $DIR/run
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT $DIR/users
}
# A second passdb whose file name is built from %s and %r: its user can
# only log in when doveadm's -x service= and -x rip= reached authd.
passdb {
  driver = passwd-file
  args = $DIR/%s-%r.users
}
userdb {
  driver = passwd-file
  args = $DIR/users
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  unix_listener $DIR/postfix/auth {
    mode = 0666
  }
}
`

func doveadmHash(t *testing.T, scheme, pw string) string {
	t.Helper()
	testenv.Require(t, "doveadm")
	out, err := exec.Command("doveadm", "pw", "-s", scheme, "-p", pw).Output()
	if err != nil {
		t.Fatalf("doveadm pw: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestDoveadmAuthTest(t *testing.T) {
	da := testenv.NewDoveadm(t)
	hash := doveadmHash(t, "SHA512-CRYPT", "alicepw")
	p := startAuthd(t, interopConf, "run/auth-client", map[string]string{
		"users": "alice@example.com:" + hash + ":1000:1000::/home/alice::\n" +
			// prefix-less: the passdb's scheme=SHA512-CRYPT applies
			"bare@example.com:" + strings.TrimPrefix(doveadmHash(t, "SHA512-CRYPT", "barepw"), "{SHA512-CRYPT}") + "::::::\n",
		"imap-192.0.2.1.users": "remote@example.com:{PLAIN}remotepw::::::\n",
	})
	sock := p.path("run/auth-client")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(args ...string) (string, int) {
		t.Helper()
		out, code, err := da.Run(ctx, append([]string{"auth", "test", "-a", sock}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out, code
	}
	out, code := run("alice@example.com", "alicepw")
	if code != 0 || !strings.Contains(out, "passdb: alice@example.com auth succeeded") {
		t.Fatalf("right password: rc %d\n%s", code, out)
	}
	if out, code := run("bare@example.com", "barepw"); code != 0 {
		t.Fatalf("prefix-less SHA512-CRYPT: rc %d\n%s", code, out)
	}
	if out, code := run("alice@example.com", "wrong"); code != 77 || !strings.Contains(out, "auth failed") {
		t.Fatalf("wrong password: rc %d\n%s", code, out)
	}
	if out, code := run("nosuch@example.com", "x"); code != 77 || !strings.Contains(out, "auth failed") {
		t.Fatalf("unknown user: rc %d\n%s", code, out)
	}
	// -x service=imap -x rip=192.0.2.1 reach authd: only with them does
	// the second passdb's file name exist.
	if out, code := run("-x", "service=imap", "-x", "rip=192.0.2.1", "remote@example.com", "remotepw"); code != 0 {
		t.Fatalf("with -x service/rip: rc %d\n%s", code, out)
	}
	if out, code := run("remote@example.com", "remotepw"); code != 77 {
		t.Fatalf("without -x: rc %d (the file for service=doveadm must not exist)\n%s", code, out)
	}
}

func TestPostfixSMTPAuth(t *testing.T) {
	testenv.Require(t, "postfix", "doveadm")
	hash := doveadmHash(t, "SHA512-CRYPT", "alicepw")
	dir := testenv.Dir(t)
	_ = dir
	p := startAuthd(t, interopConf, "run/auth-client", map[string]string{
		"users": "alice@example.com:" + hash + ":1000:1000::/home/alice::\n" +
			"bob@example.com:{PLAIN}bobpw:1001:1001::/home/bob::\n",
	})
	// smtpd runs as the postfix user: the socket directory must be
	// traversable and the socket 0666 (it is, by the listener's mode).
	if err := os.Chmod(p.path("postfix"), 0o755); err != nil {
		t.Fatal(err)
	}
	pf := testenv.StartPostfix(t, p.path("postfix/auth"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mechs, err := testenv.SMTPMechanisms(ctx, pf.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mechs, []string{"PLAIN", "LOGIN"}) {
		t.Fatalf("EHLO AUTH %v, want the auth_mechanisms list [PLAIN LOGIN]", mechs)
	}
	for _, tc := range []struct {
		mech, user, pass string
		want             int
	}{
		{"PLAIN", "alice@example.com", "alicepw", 235},
		{"PLAIN", "alice@example.com", "wrong", 535},
		{"LOGIN", "alice@example.com", "alicepw", 235},
		{"LOGIN", "alice@example.com", "wrong", 535},
		{"PLAIN", "bob@example.com", "bobpw", 235},
		{"LOGIN", "nosuch@example.com", "bobpw", 535},
	} {
		code, msg, err := testenv.SMTPAuth(ctx, pf.Addr, tc.mech, tc.user, tc.pass)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.mech, tc.user, err)
		}
		if code != tc.want {
			t.Errorf("AUTH %s %s/%s: %d %s, want %d", tc.mech, tc.user, tc.pass, code, msg, tc.want)
		}
	}
}
