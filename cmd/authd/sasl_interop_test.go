package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/testenv"
)

// The challenge-response SASL mechanisms (issue 8) through the real
// clients: Postfix's smtpd (SMTP AUTH CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1,
// SCRAM-SHA-256), Dovecot's imap-login (IMAP AUTHENTICATE) and pop3-login
// (APOP, whose challenge pop3-login builds from authd's SPID and CUID).
// The SMTP/IMAP/POP3 client sides are testenv's hand-written SASL clients,
// which also check the server's proof (DIGEST-MD5 rspauth, SCRAM v=).
// Skips without the binaries; fails instead under
// AUTHD_REQUIRE_INTEGRATION=1.

const saslConf = `
base_dir = $DIR/run
auth_mechanisms = plain login cram-md5 digest-md5 scram-sha-1 scram-sha-256 apop
# DIGEST-MD5 offers realm="example.com"; bare names get @example.com.
auth_realms = example.com
auth_default_realm = example.com
auth_failure_delay = 0
# Many failures from 127.0.0.1 in a row: the brute-force defence would
# escalate their delays; it has its own tests (penalty_test.go).
penalty {
  enabled = no
}
passdb {
  driver = passwd-file
  args = $DIR/users
}
userdb {
  driver = passwd-file
  args = $DIR/users
  override_fields = uid=nobody gid=nogroup home=$DIR/mail/%n/
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  unix_listener auth-login {
    mode = 0666
  }
  unix_listener auth-master {
    mode = 0666
  }
  unix_listener auth-userdb {
    mode = 0666
  }
  unix_listener $DIR/postfix/auth {
    mode = 0666
  }
}
`

// stillServing fails the test if authd has exited or logged a panic: a
// mechanism that cannot use a user's stored scheme must fail the request
// cleanly.
func (p *proc) stillServing(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("authd exited (%v):\n%s", p.err, p.stderr.String())
	default:
	}
	if s := p.stderr.String(); strings.Contains(s, "panic") {
		t.Fatalf("authd logged a panic:\n%s", s)
	}
}

func TestSASLPostfix(t *testing.T) {
	testenv.Require(t, "postfix", "doveadm")
	users := "alice@example.com:{PLAIN}alicepw::::::\n" +
		"carol@example.com:" + doveadmHash(t, "SHA512-CRYPT", "carolpw") + "::::::\n" +
		// Stored in each mechanism's own scheme (docs/protocol.md §4.1).
		"cram@example.com:" + doveadmHash(t, "CRAM-MD5", "crampw") + "::::::\n" +
		"digest@example.com:" + doveadmDigestMD5(t, "digest@example.com", "digestpw") + "::::::\n" +
		"scram1@example.com:" + doveadmHash(t, "SCRAM-SHA-1", "scram1pw") + "::::::\n" +
		"scram256@example.com:" + doveadmHash(t, "SCRAM-SHA-256", "scram256pw") + "::::::\n"
	p := startAuthd(t, saslConf, "run/auth-client", map[string]string{"users": users})
	// smtpd runs as postfix: the socket's directory must be traversable.
	if err := os.Chmod(p.path("postfix"), 0o755); err != nil {
		t.Fatal(err)
	}
	pf := testenv.StartPostfix(t, p.path("postfix/auth"))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// Postfix lists what authd advertises minus the private APOP (and
	// minus ANONYMOUS under noanonymous, not configured here).
	mechs, err := testenv.SMTPMechanisms(ctx, pf.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"}; !slices.Equal(mechs, want) {
		t.Fatalf("EHLO AUTH %v, want %v (APOP is private)", mechs, want)
	}

	for _, tc := range []struct {
		mech, user, pass string
		want             int
	}{
		// {PLAIN} user: every mechanism derives its credentials from the
		// plaintext.
		{"CRAM-MD5", "alice@example.com", "alicepw", 235},
		{"CRAM-MD5", "alice@example.com", "wrong", 535},
		{"CRAM-MD5", "alice", "alicepw", 235}, // auth_default_realm
		{"DIGEST-MD5", "alice@example.com", "alicepw", 235},
		{"DIGEST-MD5", "alice", "alicepw", 235}, // realm from the challenge appended
		{"DIGEST-MD5", "alice@example.com", "wrong", 535},
		{"DIGEST-MD5", "alice", "wrong", 535},
		{"SCRAM-SHA-1", "alice@example.com", "alicepw", 235},
		{"SCRAM-SHA-1", "alice@example.com", "wrong", 535},
		{"SCRAM-SHA-256", "alice@example.com", "alicepw", 235},
		{"SCRAM-SHA-256", "alice@example.com", "wrong", 535},
		// Users stored in the mechanism's own scheme.
		{"CRAM-MD5", "cram@example.com", "crampw", 235},
		{"CRAM-MD5", "cram@example.com", "wrong", 535},
		{"DIGEST-MD5", "digest", "digestpw", 235}, // {DIGEST-MD5} is MD5(digest:example.com:pw)
		{"DIGEST-MD5", "digest", "wrong", 535},
		{"SCRAM-SHA-1", "scram1@example.com", "scram1pw", 235},
		{"SCRAM-SHA-1", "scram1@example.com", "wrong", 535},
		{"SCRAM-SHA-256", "scram256@example.com", "scram256pw", 235},
		{"SCRAM-SHA-256", "scram256@example.com", "wrong", 535},
		// Unknown user.
		{"CRAM-MD5", "nosuch@example.com", "x", 535},
		{"SCRAM-SHA-256", "nosuch@example.com", "x", 535},
	} {
		code, msg, err := testenv.SMTPAuthSASL(ctx, pf.Addr, tc.mech, tc.user, tc.pass)
		if err != nil {
			t.Errorf("AUTH %s %s/%s: %v (reply %d %s)", tc.mech, tc.user, tc.pass, err, code, msg)
			continue
		}
		if code != tc.want {
			t.Errorf("AUTH %s %s/%s: %d %s, want %d", tc.mech, tc.user, tc.pass, code, msg, tc.want)
		}
	}

	// Credentials the stored scheme cannot provide ("Requested CRAM-MD5
	// scheme, but we have only SHA512-CRYPT"): a clean FAIL, i.e. 535 —
	// not 454 "Connection lost to authentication server" — with the right
	// password, and authd keeps serving.
	t.Run("scheme-not-available", func(t *testing.T) {
		for _, tc := range []struct{ mech, user, pass string }{
			{"CRAM-MD5", "carol@example.com", "carolpw"},
			{"DIGEST-MD5", "carol@example.com", "carolpw"},
			{"SCRAM-SHA-1", "carol@example.com", "carolpw"},
			{"SCRAM-SHA-256", "carol@example.com", "carolpw"},
			{"SCRAM-SHA-1", "scram256@example.com", "scram256pw"}, // observed in Dovecot: FAIL
			{"CRAM-MD5", "scram256@example.com", "scram256pw"},
		} {
			code, msg, err := testenv.SMTPAuthSASL(ctx, pf.Addr, tc.mech, tc.user, tc.pass)
			if err != nil || code != 535 {
				t.Errorf("AUTH %s %s (right password): %d %s, %v; want 535", tc.mech, tc.user, code, msg, err)
			}
		}
		p.stillServing(t)
		// The same users with mechanisms their schemes can serve.
		for _, tc := range []struct{ mech, user, pass string }{
			{"PLAIN", "carol@example.com", "carolpw"},
			{"LOGIN", "carol@example.com", "carolpw"},
			{"PLAIN", "scram256@example.com", "scram256pw"}, // SCRAM-SHA-256 verifies plaintext
			{"CRAM-MD5", "alice@example.com", "alicepw"},
		} {
			auth := testenv.SMTPAuth // PLAIN, LOGIN
			if tc.mech == "CRAM-MD5" {
				auth = testenv.SMTPAuthSASL
			}
			code, msg, err := auth(ctx, pf.Addr, tc.mech, tc.user, tc.pass)
			if err != nil || code != 235 {
				t.Errorf("after the failures, AUTH %s %s: %d %s, %v; want 235", tc.mech, tc.user, code, msg, err)
			}
		}
		p.stillServing(t)
	})
}

// doveadmDigestMD5 is "doveadm pw -s DIGEST-MD5 -u user": the scheme hashes
// user:realm:password, so it needs the user name.
func doveadmDigestMD5(t *testing.T, user, pw string) string {
	t.Helper()
	testenv.Require(t, "doveadm")
	out, err := exec.Command("doveadm", "pw", "-s", "DIGEST-MD5", "-u", user, "-p", pw).Output()
	if err != nil {
		t.Fatalf("doveadm pw -s DIGEST-MD5: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestSASLDovecotLogin(t *testing.T) {
	testenv.Require(t, "dovecot", "doveadm")
	p := startAuthd(t, saslConf, "run/auth-login", map[string]string{
		"users": "bob@example.com:{PLAIN}bobpw::::::\n" +
			"sc@example.com:" + doveadmHash(t, "SCRAM-SHA-256", "scpw") + "::::::\n" +
			"carol@example.com:" + doveadmHash(t, "SHA512-CRYPT", "carolpw") + "::::::\n",
	})
	mail := p.path("mail")
	if err := os.MkdirAll(mail, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(mail, 0o777) // nobody creates the homes
	dc := dovecotFor(t, p.path("run"))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// Each failure from its own client address (rip=), so that no per-IP
	// failure state — Dovecot's login penalty, or authd's should it grow
	// one — slows or skews the next case.
	nextIP := 10
	failureCtx := func() context.Context {
		nextIP++
		return testenv.WithSourceIP(ctx, "127.0.0."+strconv.Itoa(nextIP))
	}

	t.Run("imap-authenticate", func(t *testing.T) {
		// imap-login offers what authd advertises, except the private
		// APOP.
		greet := greetingLine(t, ctx, dc.IMAPAddr)
		var auth []string
		for _, c := range strings.Fields(strings.NewReplacer("[", " ", "]", " ").Replace(greet)) {
			if m, ok := strings.CutPrefix(c, "AUTH="); ok {
				auth = append(auth, m)
			}
		}
		if want := []string{"PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"}; !slices.Equal(auth, want) {
			t.Errorf("imap-login offers AUTH=%v, want %v (APOP is private): %q", auth, want, greet)
		}
		for _, tc := range []struct {
			mech, user, pass string
			ok               bool
		}{
			{"CRAM-MD5", "bob@example.com", "bobpw", true},
			{"SCRAM-SHA-256", "bob@example.com", "bobpw", true},
			{"SCRAM-SHA-256", "sc@example.com", "scpw", true},
			{"SCRAM-SHA-1", "bob@example.com", "bobpw", true},
			{"DIGEST-MD5", "bob", "bobpw", true},
			{"DIGEST-MD5", "bob@example.com", "bobpw", true},
			{"CRAM-MD5", "bob@example.com", "wrong", false},
			{"SCRAM-SHA-256", "bob@example.com", "wrong", false},
			{"SCRAM-SHA-256", "sc@example.com", "wrong", false},
			{"DIGEST-MD5", "bob", "wrong", false},
			// Schemes that cannot serve the mechanism: a clean NO.
			{"CRAM-MD5", "sc@example.com", "scpw", false},
			{"SCRAM-SHA-1", "sc@example.com", "scpw", false},
			{"CRAM-MD5", "carol@example.com", "carolpw", false},
		} {
			c := ctx
			if !tc.ok {
				c = failureCtx()
			}
			tagged, err := testenv.IMAPAuthenticate(c, dc.IMAPAddr, tc.mech, tc.user, tc.pass)
			if err != nil {
				t.Errorf("AUTHENTICATE %s %s/%s: %v (tagged %q)", tc.mech, tc.user, tc.pass, err, tagged)
				continue
			}
			// A success is answered by the imap process after authd's
			// master socket served the REQUEST: the whole login worked.
			if tc.ok && !(strings.HasPrefix(tagged, "a1 OK") && strings.Contains(tagged, "Logged in")) ||
				!tc.ok && !strings.HasPrefix(tagged, "a1 NO [AUTHENTICATIONFAILED]") {
				t.Errorf("AUTHENTICATE %s %s/%s: %q, want success %v\n%s", tc.mech, tc.user, tc.pass, tagged, tc.ok, readFile(dc.Log))
			}
		}
		// A {SCRAM-SHA-256} user can also log in with a plaintext password.
		login, _, err := testenv.IMAPLogin(ctx, dc.IMAPAddr, "sc@example.com", "scpw")
		if err != nil || !strings.HasPrefix(login, "a1 OK") {
			t.Errorf("LOGIN sc@example.com: %q, %v", login, err)
		}
		p.stillServing(t)
	})

	t.Run("pop3-apop", func(t *testing.T) {
		// pop3-login builds the challenge <SPID.CUID.time.random@host>
		// from authd's handshake: the SPID is authd's pid.
		greet := greetingLine(t, ctx, dc.POP3Addr)
		if want := fmt.Sprintf(" <%x.", p.cmd.Process.Pid); !strings.Contains(greet, want) {
			t.Errorf("pop3-login greeting %q lacks the APOP challenge %q...", greet, want)
		}
		reply, err := testenv.POP3APOP(ctx, dc.POP3Addr, "bob@example.com", "bobpw")
		if err != nil {
			t.Fatalf("%v\n%s", err, readFile(dc.Log))
		}
		if !strings.HasPrefix(reply, "+OK") {
			t.Fatalf("APOP bob: %q\nauthd:\n%s\ndovecot:\n%s", reply, p.stderr.String(), readFile(dc.Log))
		}
		// A wrong digest (made from a wrong password).
		reply, err = testenv.POP3APOP(failureCtx(), dc.POP3Addr, "bob@example.com", "wrong")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(reply, "-ERR") {
			t.Fatalf("APOP with a wrong digest: %q", reply)
		}
		// APOP needs the plaintext: a {SCRAM-SHA-256} user cannot use it.
		reply, err = testenv.POP3APOP(failureCtx(), dc.POP3Addr, "sc@example.com", "scpw")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(reply, "-ERR") {
			t.Fatalf("APOP for a {SCRAM-SHA-256} user: %q", reply)
		}
		// And the right digest again, after the failures.
		reply, err = testenv.POP3APOP(ctx, dc.POP3Addr, "bob@example.com", "bobpw")
		if err != nil || !strings.HasPrefix(reply, "+OK") {
			t.Fatalf("APOP bob after failures: %q, %v", reply, err)
		}
		p.stillServing(t)
	})
}

// greetingLine connects to addr and returns the server's greeting line.
func greetingLine(t *testing.T, ctx context.Context, addr string) string {
	t.Helper()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("greeting from %s: %v", addr, err)
	}
	return strings.TrimRight(line, "\r\n")
}
