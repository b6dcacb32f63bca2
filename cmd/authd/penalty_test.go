package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
	"golang.org/x/crypto/bcrypt"
)

// The brute-force defence through the real client socket: budgets that
// parallelism cannot escape, owners and NAT neighbours never locked out,
// stale passwords and typos not punished (docs/operations.md §Brute-force
// defence).

const penaltyConf = `
base_dir = $DIR/run
auth_mechanisms = plain
auth_failure_delay = 0
penalty {
  # Escalating delays are tested in internal/limiter; here they only
  # slow the test down.
  client_max_delay = 1 sec
}
passdb {
  driver = passwd-file
  args = $DIR/users
}
userdb {
  driver = static
  args = uid=1000 gid=1000 home=/var/empty
}
service auth {
  unix_listener auth-client {
    mode = 0600
  }
}
`

const penaltyUsers = `victim@example.com:{PLAIN}right-password::::::
owner@example.com:{PLAIN}owner-password::::::
neighbour@example.com:{PLAIN}neighbour-password::::::
stale@example.com:{PLAIN}new-password::::::
bob@example.com:{PLAIN}bob-password::::::
typo@example.com:{PLAIN}typo-password::::::
`

// plainAuth authenticates on a fresh connection from rip and returns the
// reply's command (OK or FAIL; TEMPFAIL for a FAIL marked temp) and how
// long the answer took.
func plainAuth(t *testing.T, sock, rip, user, pass string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dovecot.DialAuth(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	r, err := c.Plain(ctx, []string{"service=imap", "rip=" + rip}, "", user, pass)
	if err != nil {
		t.Fatalf("%s from %s: %v", user, rip, err)
	}
	if _, temp := r.Get("temp"); temp && r.Cmd == "FAIL" {
		return "TEMPFAIL", time.Since(start)
	}
	return r.Cmd, time.Since(start)
}

// mustLogIn checks a login that must succeed at once, attack or not.
func mustLogIn(t *testing.T, sock, rip, user, pass string) {
	t.Helper()
	cmd, d := plainAuth(t, sock, rip, user, pass)
	if cmd != "OK" {
		t.Fatalf("%s from %s: %s, want OK", user, rip, cmd)
	}
	// Not a performance bound: a penalised login would wait seconds.
	if d > time.Second {
		t.Errorf("%s from %s: answered after %v", user, rip, d)
	}
}

// guess sends n wrong passwords at once, one connection each, from the
// addresses rip(i); every one must fail.
func guess(t *testing.T, sock string, n int, user string, rip func(int) string) {
	t.Helper()
	got := atOnce(t, sock, n, user, func(i int) (string, string) { return rip(i), fmt.Sprintf("guess-%d", i) })
	if got["FAIL"] != n {
		t.Errorf("%d wrong guesses got %v, want every one FAIL", n, got)
	}
}

// atOnce sends n logins of user at once, one connection each, login i from
// the address and with the password try(i) gives, and counts the replies.
func atOnce(t *testing.T, sock string, n int, user string, try func(int) (rip, pass string)) map[string]int {
	t.Helper()
	var wg sync.WaitGroup
	got := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			rip, pass := try(i)
			cmd, _ := plainAuth(t, sock, rip, user, pass)
			got <- cmd
		})
	}
	wg.Wait()
	close(got)
	counts := map[string]int{}
	for cmd := range got {
		counts[cmd]++
	}
	return counts
}

func TestPenaltyParallelGuessesFromOneAddress(t *testing.T) {
	p := startAuthd(t, penaltyConf, "run/auth-client", map[string]string{"users": penaltyUsers})
	sock := p.path("run/auth-client")
	const attacker = "198.51.100.7"
	// Before the attack: the owner logs in from her usual network, the
	// neighbour from behind the attacker's NAT.
	mustLogIn(t, sock, "192.0.2.10", "owner@example.com", "owner-password")
	mustLogIn(t, sock, attacker, "neighbour@example.com", "neighbour-password")

	guess(t, sock, 160, "victim@example.com", func(int) string { return attacker })
	if cmd, _ := plainAuth(t, sock, attacker, "victim@example.com", "right-password"); cmd != "FAIL" {
		t.Fatalf("the right password after 160 parallel guesses from one address: %s, want FAIL", cmd)
	}
	if cmd, _ := plainAuth(t, sock, attacker, "bob@example.com", "bob-password"); cmd != "FAIL" {
		t.Fatalf("another account from the attacking address: %s, want FAIL", cmd)
	}
	mustLogIn(t, sock, "192.0.2.11", "owner@example.com", "owner-password")
	mustLogIn(t, sock, attacker, "neighbour@example.com", "neighbour-password")
	// The victim herself, from anywhere else, is not refused by one
	// address's attack.
	mustLogIn(t, sock, "203.0.113.5", "victim@example.com", "right-password")

	// The operator sees the refused address and lifts the block.
	master := p.path("run/auth-master")
	out, code := runCmd(t, "penalty", "-a", master)
	if code != 0 || !regexp.MustCompile(`(?m)^ip\s+198\.51\.100\.7\s+20\s+20\s+refusing$`).MatchString(out) {
		t.Fatalf("authd penalty: exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "penalty", "-a", master, "reset", "ip", attacker); code != 0 || !strings.Contains(out, "1 keys reset") {
		t.Fatalf("authd penalty reset: exit %d\n%s", code, out)
	}
	// The prefix key still counts the 20 failures (100 allowed): the
	// address may try again.
	if cmd, _ := plainAuth(t, sock, attacker, "bob@example.com", "bob-password"); cmd != "OK" {
		t.Fatalf("after the reset: %s, want OK", cmd)
	}
}

// runCmd runs an authd subcommand in-process.
func runCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb strings.Builder
	code := run(args, strings.NewReader(""), &out, &errb)
	return out.String() + errb.String(), code
}

func TestPenaltyDistributedGuessesAtOneAccount(t *testing.T) {
	p := startAuthd(t, penaltyConf, "run/auth-client", map[string]string{"users": penaltyUsers})
	sock := p.path("run/auth-client")
	mustLogIn(t, sock, "2001:db8:aaaa:1::10", "victim@example.com", "right-password")
	mustLogIn(t, sock, "2001:db8:300::1", "neighbour@example.com", "neighbour-password")

	// 300 guesses from 300 IPv6 /48s.
	guess(t, sock, 300, "victim@example.com", func(i int) string { return fmt.Sprintf("2001:db8:%x::1", 0x100+i) })
	if cmd, _ := plainAuth(t, sock, "2001:db8:ffff::1", "victim@example.com", "right-password"); cmd != "FAIL" {
		t.Fatalf("the right password from a fresh network after 300 guesses: %s, want FAIL", cmd)
	}
	// The owner on her known-good network, and a neighbour inside one of
	// the attacking networks, log in.
	mustLogIn(t, sock, "2001:db8:aaaa:1::99", "victim@example.com", "right-password")
	mustLogIn(t, sock, "2001:db8:300::1", "neighbour@example.com", "neighbour-password")
}

func TestPenaltyStalePasswordAndTypos(t *testing.T) {
	p := startAuthd(t, penaltyConf, "run/auth-client", map[string]string{"users": penaltyUsers})
	sock := p.path("run/auth-client")
	const ip = "192.0.2.77"
	for i := range 60 {
		if cmd, _ := plainAuth(t, sock, ip, "stale@example.com", "old-password"); cmd != "FAIL" {
			t.Fatalf("stale retry %d: %s", i, cmd)
		}
	}
	mustLogIn(t, sock, ip, "bob@example.com", "bob-password")
	mustLogIn(t, sock, ip, "stale@example.com", "new-password")

	for i := range 3 {
		if cmd, _ := plainAuth(t, sock, "192.0.2.88", "typo@example.com", fmt.Sprintf("typo-passwort-%d", i)); cmd != "FAIL" {
			t.Fatalf("typo %d: %s", i, cmd)
		}
	}
	mustLogIn(t, sock, "192.0.2.88", "typo@example.com", "typo-password")
}

// More logins of one known-good pair in flight at once than its failure
// budget (10): an office sharing one mailbox after a restart, a client
// opening a dozen connections. Every one logs in: the attempts beyond the
// budget wait for those in flight to end instead of being told "wrong
// password" for the right one (internal/limiter, flying.go).
func TestPenaltyManyLoginsInFlight(t *testing.T) {
	// A hash that costs more than the connections take to arrive, two
	// verifications at a time: all the logins are in flight at once.
	// Not so costly that under the race detector the last one waits the
	// 5 s after which a login gives up its turn.
	hash, err := bcrypt.GenerateFromPassword([]byte("shared-password"), 8)
	if err != nil {
		t.Fatal(err)
	}
	users := "info@example.com:{BLF-CRYPT}" + strings.Replace(string(hash), "$2a$", "$2y$", 1) + "::::::\n"
	p := startAuthd(t, penaltyConf, "run/auth-client", map[string]string{"users": users})
	sock := p.path("run/auth-client")
	if cmd, _ := plainAuth(t, sock, "192.0.2.10", "info@example.com", "shared-password"); cmd != "OK" {
		t.Fatalf("first login: %s", cmd)
	}
	const n = 16
	counts := atOnce(t, sock, n, "info@example.com", func(i int) (string, string) {
		return fmt.Sprintf("192.0.2.%d", 20+i), "shared-password"
	})
	if counts["OK"] != n {
		t.Fatalf("%d logins of one known-good pair at once: %v, want every one OK", n, counts)
	}
}
