package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/testenv"
)

// Proxy fields as Dovecot's auth finishes them, through a real Dovecot 2.3
// imap-login proxy (docs/protocol.md §1.5): a front Dovecot whose login
// processes ask authd, and a backend Dovecot with its own users. The
// passdb names the backend by host name, which Dovecot 2.3's login
// processes refuse ("host … is not an IP"); authd resolves it to hostip.
// proxy_maybe logs in on the front when host and port are the front's
// own, and proxies otherwise; destuser and starttls reach the login
// process as the passdb gave them (the front logs in to the backend as
// another user, over STARTTLS); a name that cannot be resolved is a
// temporary failure.
func TestDovecotProxyHostByName(t *testing.T) {
	testenv.Require(t, "dovecot", "doveadm")
	front, back, p, mail := proxyPair(t)
	backPort := strings.TrimPrefix(back.IMAPAddr, "127.0.0.1:")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	for _, c := range []struct{ user, pass, where string }{
		{"alice@example.com", "alicepw", "backend"},
		{"carol@example.com", "carolpw", "backend"},
		{"bob@example.com", "bobpw", "front"},
		{"erin@example.com", "frankpw", "backend"},
	} {
		login, sel, err := testenv.IMAPLogin(ctx, front.IMAPAddr, c.user, c.pass)
		if err != nil || !strings.HasPrefix(login, "a1 OK") || !strings.HasPrefix(sel, "a2 OK") {
			t.Fatalf("%s: LOGIN %q SELECT %q %v\nfront log:\n%s\nbackend log:\n%s", c.user, login, sel, err, readFile(front.Log), readFile(back.Log))
		}
		name := strings.TrimSuffix(c.user, "@example.com")
		if name == "erin" {
			name = "frank" // destuser
		}
		home := filepath.Join(back.Dir, "mail", name)
		if c.where == "front" {
			home = filepath.Join(mail, name)
		}
		if _, err := os.Stat(filepath.Join(home, "Maildir")); err != nil {
			t.Errorf("%s logged in, but not on the %s: %v", c.user, c.where, err)
		}
	}
	// Dovecot names the host as the passdb gave it and the address authd
	// resolved it to.
	// Dovecot's log process writes the lines a moment after the logins.
	proxied := "proxy(alice@example.com,127.0.0.1:" + backPort + "): Started proxying to <127.0.0.1> (<localhost>)"
	if !eventually(func() bool { return strings.Contains(readFile(front.Log), proxied) }) {
		t.Errorf("the front did not proxy alice to 127.0.0.1:%s:\n%s", backPort, readFile(front.Log))
	}
	// destuser and starttls: the backend saw frank, over TLS.
	frankTLS := regexp.MustCompile(`Login: user=<frank@example\.com>.*, TLS`)
	if !eventually(func() bool { return frankTLS.MatchString(readFile(back.Log)) }) {
		t.Errorf("the backend did not log frank in over STARTTLS:\n%s", readFile(back.Log))
	}
	login, _, err := testenv.IMAPLogin(ctx, front.IMAPAddr, "dave@example.com", "davepw")
	if err != nil || !strings.HasPrefix(login, "a1 NO [UNAVAILABLE]") {
		t.Errorf("unresolvable host: %q %v, want a temporary failure", login, err)
	}
	if !eventually(func() bool { return strings.Contains(p.stderr.String(), "proxy: DNS lookup for no!such!host failed") }) {
		t.Errorf("the failed lookup is not logged:\n%s", p.stderr.String())
	}
	// A master PASS (doveadm auth lookup) gets hostip too, as from Dovecot.
	out, code, err := testenv.NewDoveadm(t).Run(ctx, "auth", "lookup", "-a", p.path("run/auth-userdb"), "alice@example.com")
	if err != nil || code != 0 || !strings.Contains(out, "hostip") || !strings.Contains(out, "127.0.0.1") {
		t.Errorf("doveadm auth lookup: %d %v\n%s", code, err, out)
	}
}

// proxyPair starts a backend Dovecot with its own users (alice, carol,
// frank), authd, and a front Dovecot whose login processes ask authd (its
// mailboxes under mail). authd's passwd-file then holds the users the test
// logs in as: alice (proxy) and carol (proxy_maybe) go to the backend by
// the name "localhost", bob (proxy_maybe) names the front itself, dave a
// name that does not resolve, and erin goes to the backend as frank
// (destuser) over STARTTLS.
func proxyPair(t *testing.T) (front, back *testenv.Dovecot, p *proc, mail string) {
	t.Helper()
	// The host name must resolve on this machine: take "localhost"'s
	// first address, as authd does, and put the backend there.
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", "localhost")
	if err != nil || len(addrs) == 0 {
		t.Fatalf("localhost does not resolve: %v", err)
	}
	if !addrs[0].Unmap().Is4() || !addrs[0].IsLoopback() {
		t.Fatalf("localhost resolves first to %v; the Dovecot test setup listens on 127.0.0.1 only", addrs[0])
	}

	back = backendDovecot(t, "alice@example.com:{PLAIN}alicepw\ncarol@example.com:{PLAIN}carolpw\nfrank@example.com:{PLAIN}frankpw\n")
	_, backPort, _ := net.SplitHostPort(back.IMAPAddr)

	p = startAuthd(t, mailConf, "run/auth-login", map[string]string{"users": ""})
	mail = p.path("mail")
	if err := os.MkdirAll(mail, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(mail, 0o777)
	front = dovecotFor(t, p.path("run"))
	_, frontPort, _ := net.SplitHostPort(front.IMAPAddr)
	// The passwd-file is re-read when it changes: now that both ports are
	// known.
	users := fmt.Sprintf("alice@example.com:{PLAIN}alicepw::::::proxy=y host=localhost port=%[1]s\n"+
		"bob@example.com:{PLAIN}bobpw::::::proxy_maybe=y host=localhost port=%[2]s\n"+
		"carol@example.com:{PLAIN}carolpw::::::proxy_maybe=y host=localhost port=%[1]s\n"+
		"dave@example.com:{PLAIN}davepw::::::proxy=y host=no!such!host port=%[1]s\n"+
		"erin@example.com:{PLAIN}frankpw::::::proxy=y host=localhost port=%[1]s destuser=frank@example.com starttls=any-cert\n", backPort, frontPort)
	if err := os.WriteFile(p.path("users"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	return front, back, p, mail
}

// backendDovecot is a Dovecot with its own passwd-file users (plaintext
// logins allowed, STARTTLS offered with a certificate for localhost), the
// target of the proxy.
func backendDovecot(t *testing.T, users string) *testenv.Dovecot {
	t.Helper()
	dir := testenv.Dir(t)
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	mail := filepath.Join(dir, "mail")
	if err := os.MkdirAll(mail, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(mail, 0o777)
	cert, key := testenv.NewCA(t).Issue(t, dir, "backend", "localhost", "127.0.0.1")
	conf := strings.NewReplacer("$DIR", dir, "$CERT", cert, "$KEY", key).Replace(`
ssl = yes
ssl_cert = <$CERT
ssl_key = <$KEY
auth_failure_delay = 0
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = $DIR/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$DIR/mail/%n
}
`)
	return testenv.StartDovecot(t, testenv.DovecotOptions{Config: conf, Protocols: []string{"imap"}, Dir: dir})
}

// eventually polls cond for up to 10 s: a log line is written by another
// process (or goroutine) a moment after the reply it goes with.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
