package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/testenv"
)

// service auth { inet_listener } for a Postfix on another host
// (smtpd_sasl_path = inet:host:port): the real Postfix authenticates over
// TCP, its rip= (the SMTP client's address) is what the brute-force
// defence and the log see, a peer outside allow_nets is disconnected
// before it gets a handshake, and a peer that sends no rip= is counted at
// its own address.

const inetConf = `
base_dir = $DIR/run
auth_mechanisms = plain login
auth_failure_delay = 0
auth_verbose = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN $DIR/users
}
service auth {
  inet_listener postfix {
    address = 127.0.0.1
    port = $PORT$ALLOW
  }
}
`

// startInetAuthd starts authd with an inet_listener; allow is its
// allow_nets, none (the default: loopback only) when empty.
func startInetAuthd(t *testing.T, allow string) (*proc, string) {
	t.Helper()
	port := testenv.FreePort(t)
	if allow != "" {
		allow = "\n    allow_nets = " + allow
	}
	conf := strings.NewReplacer("$PORT", fmt.Sprint(port), "$ALLOW", allow).Replace(inetConf)
	p := startAuthd(t, conf, "run/auth-client", map[string]string{"users": "alice@example.com:alicepw\n"})
	return p, fmt.Sprintf("127.0.0.1:%d", port)
}

// TestInetListenerPostfix: with no allow_nets, a Postfix on this host
// (loopback) is let in.
func TestInetListenerPostfix(t *testing.T) {
	p, addr := startInetAuthd(t, "")
	// The loud warning, at start (through a pipe: it may trail the
	// socket's first answer).
	eventually(func() bool { return strings.Contains(p.stderr.String(), "PLAINTEXT") })
	if s := p.stderr.String(); !strings.Contains(s, "PLAINTEXT") || !strings.Contains(s, "listener=postfix") ||
		!strings.Contains(s, `allow_nets="127.0.0.0/8 ::1/128"`) {
		t.Fatalf("no plaintext warning at start:\n%s", s)
	}
	pf := testenv.StartPostfix(t, "inet:"+addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mechs, err := testenv.SMTPMechanisms(ctx, pf.Addr)
	if err != nil || strings.Join(mechs, " ") != "PLAIN LOGIN" {
		t.Fatalf("EHLO AUTH %v %v", mechs, err)
	}
	for _, c := range []struct {
		mech, pass, from string
		want             int
	}{
		{"PLAIN", "alicepw", "127.0.0.1", 235},
		{"LOGIN", "alicepw", "127.0.0.1", 235},
		{"PLAIN", "wrong", "127.0.0.7", 535},
	} {
		code, msg, err := testenv.SMTPAuth(testenv.WithSourceIP(ctx, c.from), pf.Addr, c.mech, "alice@example.com", c.pass)
		if err != nil || code != c.want {
			t.Fatalf("AUTH %s %s from %s: %d %q %v, want %d", c.mech, c.pass, c.from, code, msg, err, c.want)
		}
	}
	// The failure is the SMTP client's (Postfix's rip=), not Postfix's
	// own connection's, which comes from 127.0.0.1.
	waitFor(t, func() bool {
		return strings.Contains(p.stderr.String(), `msg="auth failed" rip=127.0.0.7 proto=client service=smtp`)
	})
	p.stillServing(t)
}

func TestInetListenerAllowNets(t *testing.T) {
	p, addr := startInetAuthd(t, "127.0.0.2 127.0.0.3")
	dialFrom := func(src string) (net.Conn, *bufio.Reader) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		return nc, bufio.NewReader(nc)
	}
	// Not listed: closed before any handshake, and logged.
	nc, r := dialFrom("127.0.0.1")
	if line, err := r.ReadString('\n'); err == nil {
		t.Fatalf("a peer outside allow_nets got %q", line)
	}
	nc.Close()
	waitFor(t, func() bool {
		s := p.stderr.String()
		return strings.Contains(s, "connection refused, the peer is not in allow_nets") && strings.Contains(s, "peer=127.0.0.1:")
	})
	// Listed: served. Without rip= its failures count at its own address.
	nc, r = dialFrom("127.0.0.3")
	if _, err := fmt.Fprint(nc, "VERSION\t1\t2\nCPID\t77\nAUTH\t1\tPLAIN\tservice=smtp\tresp=AGFsaWNlQGV4YW1wbGUuY29tAHdyb25n\n"); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("listed peer: %v", err)
		}
		if strings.HasPrefix(line, "FAIL\t1") {
			break
		}
	}
	waitFor(t, func() bool {
		return strings.Contains(p.stderr.String(), `msg="auth failed" rip=127.0.0.3 proto=client service=smtp`)
	})

	// A reload with 127.0.0.1 listed keeps the socket open and lets it in.
	confPath := p.path("authd.conf")
	b, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(confPath, []byte(strings.Replace(string(b), "allow_nets = 127.0.0.2 127.0.0.3", "allow_nets = 127.0.0.1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(p.stderr.String(), "configuration reloaded") })
	_, r = dialFrom("127.0.0.1")
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "VERSION\t1\t") {
		t.Fatalf("127.0.0.1 after the reload: %q %v", line, err)
	}
	if n := strings.Count(p.stderr.String(), "PLAINTEXT"); n != 1 {
		t.Errorf("the plaintext warning was logged %d times; the socket must stay open over a reload", n)
	}
}
