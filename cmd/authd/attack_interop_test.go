package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/testenv"
)

// The brute-force defence through the real clients (issue 15): Postfix's
// smtpd asks authd's client socket, passing the SMTP client's address as
// rip=; Dovecot's imap-login asks authd's login socket, also with rip=.
// An attacker guessing from one address is answered 535 / NO
// [AUTHENTICATIONFAILED] for every guess, and once its address has spent
// its budget its right password is answered the same way; the owner of
// the attacked account, from another network, logs in throughout
// (docs/operations.md §7).

const attackConf = `
base_dir = $DIR/run
auth_mechanisms = plain login
auth_failure_delay = 0
penalty {
  # A small budget keeps the attack short; the delays are tested in
  # internal/limiter and penalty_test.go.
  ip_failures = 5
  client_max_delay = 0
  max_delay = 0
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

const attackUsers = `victim@example.com:{PLAIN}victim-pw::::::
bob@example.com:{PLAIN}bob-pw::::::
`

// The attackers and the owner are in different /24s (the prefix budget
// is per /24); Linux routes all of 127/8 to the loopback interface, so
// the clients can connect from these addresses and the servers see them.
const (
	smtpAttacker = "127.0.66.1"
	imapAttacker = "127.0.67.1"
	ownerAddr    = "127.0.77.1"
	attackBudget = 5 // ip_failures above
)

func TestAttackThroughPostfixAndDovecot(t *testing.T) {
	testenv.Require(t, "postfix", "dovecot", "doveadm")
	p := startAuthd(t, attackConf, "run/auth-login", map[string]string{"users": attackUsers})
	// smtpd runs as postfix and the mail processes as nobody.
	if err := os.Chmod(p.path("postfix"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(p.path("mail"), 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p.path("mail"), 0o777)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := &mailClients{ctx: ctx, smtpAddr: testenv.StartPostfix(t, p.path("postfix/auth")).Addr}
	dc := dovecotFor(t, p.path("run"))
	c.imapAddr = dc.IMAPAddr

	t.Run("postfix", func(t *testing.T) { attackSMTP(t, c) })
	t.Run("imap-login", func(t *testing.T) { attackIMAP(t, c, dc.Log) })

	// What authd counted: each attacker's address (as Postfix and
	// imap-login passed it on) refuses after exactly its budget; the
	// owner's address does not appear.
	out, code := runCmd(t, "penalty", "-a", p.path("run/auth-master"))
	if code != 0 {
		t.Fatalf("authd penalty: exit %d\n%s", code, out)
	}
	for _, ip := range []string{smtpAttacker, imapAttacker} {
		re := regexp.MustCompile(`(?m)^ip\s+` + regexp.QuoteMeta(ip) + fmt.Sprintf(`\s+%[1]d\s+%[1]d\s+refusing$`, attackBudget))
		if !re.MatchString(out) {
			t.Errorf("authd penalty does not show %s refusing after %d failures:\n%s", ip, attackBudget, out)
		}
	}
	if strings.Contains(out, ownerAddr) {
		t.Errorf("authd penalty lists the owner's address:\n%s", out)
	}
}

// mailClients log in to the private Postfix and Dovecot from chosen
// source addresses.
type mailClients struct {
	ctx                context.Context
	smtpAddr, imapAddr string
}

// smtp returns the reply to AUTH PLAIN: its code, and code and text
// together.
func (c *mailClients) smtp(t *testing.T, from, user, pass string) (int, string) {
	t.Helper()
	code, msg, err := testenv.SMTPAuth(testenv.WithSourceIP(c.ctx, from), c.smtpAddr, "PLAIN", user, pass)
	if err != nil {
		t.Fatalf("SMTP AUTH %s from %s: %v (%d %s)", user, from, err, code, msg)
	}
	return code, fmt.Sprintf("%d %s", code, msg)
}

// imap returns the tagged reply to LOGIN.
func (c *mailClients) imap(t *testing.T, from, user, pass string) string {
	t.Helper()
	login, _, err := testenv.IMAPLogin(testenv.WithSourceIP(c.ctx, from), c.imapAddr, user, pass)
	if err != nil {
		t.Fatalf("IMAP LOGIN %s from %s: %v (%q)", user, from, err, login)
	}
	return login
}

// attackSMTP: guesses through smtpd get 535; once the attacker's budget
// is spent, its right passwords get the very reply of a wrong one; the
// owner logs in after every guess.
func attackSMTP(t *testing.T, c *mailClients) {
	var wrong string // the reply to a wrong password
	for i := range attackBudget + 3 {
		code, reply := c.smtp(t, smtpAttacker, "victim@example.com", fmt.Sprintf("guess-%d", i))
		if code != 535 {
			t.Errorf("guess %d from the attacker: %s, want 535", i+1, reply)
		}
		if i == 0 {
			wrong = reply
		}
		if code, reply := c.smtp(t, ownerAddr, "victim@example.com", "victim-pw"); code != 235 {
			t.Fatalf("the owner after guess %d: %s, want 235", i+1, reply)
		}
	}
	if _, reply := c.smtp(t, smtpAttacker, "victim@example.com", "victim-pw"); reply != wrong {
		t.Errorf("the victim's right password from the attacker: %q, want %q", reply, wrong)
	}
	if _, reply := c.smtp(t, smtpAttacker, "bob@example.com", "bob-pw"); reply != wrong {
		t.Errorf("another account's right password from the attacker: %q, want %q", reply, wrong)
	}
	if code, reply := c.smtp(t, ownerAddr, "victim@example.com", "victim-pw"); code != 235 {
		t.Errorf("the owner after the attack: %s, want 235", reply)
	}
}

// attackIMAP is attackSMTP through imap-login: NO [AUTHENTICATIONFAILED]
// for the attacker, OK for the owner.
func attackIMAP(t *testing.T, c *mailClients, dovecotLog string) {
	var wrong string
	for i := range attackBudget + 3 {
		login := c.imap(t, imapAttacker, "victim@example.com", fmt.Sprintf("guess-%d", i))
		if !strings.HasPrefix(login, "a1 NO [AUTHENTICATIONFAILED]") {
			t.Errorf("guess %d from the attacker: %q, want NO [AUTHENTICATIONFAILED]", i+1, login)
		}
		if i == 0 {
			wrong = login
		}
		if login := c.imap(t, ownerAddr, "victim@example.com", "victim-pw"); !strings.HasPrefix(login, "a1 OK") {
			t.Fatalf("the owner after guess %d: %q, want OK\n%s", i+1, login, readFile(dovecotLog))
		}
	}
	if login := c.imap(t, imapAttacker, "victim@example.com", "victim-pw"); login != wrong {
		t.Errorf("the victim's right password from the attacker: %q, want %q", login, wrong)
	}
	if login := c.imap(t, imapAttacker, "bob@example.com", "bob-pw"); login != wrong {
		t.Errorf("another account's right password from the attacker: %q, want %q", login, wrong)
	}
	if login := c.imap(t, ownerAddr, "bob@example.com", "bob-pw"); !strings.HasPrefix(login, "a1 OK") {
		t.Errorf("bob from the owner's network: %q, want OK", login)
	}
}
