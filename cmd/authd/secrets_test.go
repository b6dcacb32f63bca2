package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
)

// TestNoSecretsInDebugLog: with auth_debug = yes and auth_verbose = yes,
// no password (nor its base64 form), no CONT payload and no REQUEST
// cookie reaches a log line, whatever socket kind or gRPC carried it; and
// a user name cannot flood or forge a line.
func TestNoSecretsInDebugLog(t *testing.T) {
	const canary = "Canary-Pa55word-7f3e"
	conf := strings.Replace(baseConf, "auth_failure_delay = 0", "auth_failure_delay = 0\nauth_debug = yes\nauth_verbose = yes", 1) + `
grpc {
  listen = unix:$DIR/grpc.sock
}
`
	users := map[string]string{"users": baseUsers["users"] + "canary@example.com:{PLAIN}" + canary + "::::::\n"}
	p := startAuthd(t, conf, "run/auth-client", users)

	// Client socket: PLAIN, right and wrong; LOGIN with the password in a
	// CONT.
	for _, pw := range []string{canary, canary + "-wrong"} {
		authdTest(t, "-a", p.path("run/auth-client"), "canary@example.com", pw)
	}
	loginWithCont(t, p.path("run/auth-client"), "canary@example.com", canary)
	// Login socket, then the master's REQUEST with the cookie.
	cookie := loginAndRequest(t, p.path("run/auth-login"), p.path("run/auth-master"), canary)
	// gRPC.
	authdTest(t, "--grpc", "unix:"+p.path("grpc.sock"), "canary@example.com", canary)
	// A name made to flood and to forge.
	authdTest(t, "-a", p.path("run/auth-client"), strings.Repeat("x", 5000)+"\nlevel=INFO msg=forged", "pw")

	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	log := p.stderr.String()
	for _, secret := range []string{canary, base64.StdEncoding.EncodeToString([]byte(canary)),
		base64.StdEncoding.EncodeToString([]byte("\x00canary@example.com\x00" + canary)), cookie} {
		if strings.Contains(log, secret) {
			t.Errorf("the log holds a secret (%.12s…)", secret)
		}
	}
	if strings.Contains(log, strings.Repeat("x", 100)) || strings.Contains(log, "\nlevel=INFO msg=forged") {
		t.Error("a user name flooded or forged a log line")
	}
	// The debug log did see the requests: this test reads a real one.
	for _, want := range []string{"client in", "master in", "<hidden>", "auth failed"} {
		if !strings.Contains(log, want) {
			t.Errorf("the debug log lacks %q", want)
		}
	}
}

// loginWithCont authenticates with LOGIN, the password in a CONT line.
func loginWithCont(t *testing.T, sock, user, pw string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dovecot.DialAuth(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b64 := base64.StdEncoding.EncodeToString
	steps := []string{"AUTH\t1\tLOGIN\tservice=imap", "CONT\t1\t" + b64([]byte(user)), "CONT\t1\t" + b64([]byte(pw))}
	for _, line := range steps {
		if err := c.Send(line); err != nil {
			t.Fatal(err)
		}
		r, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Cmd == "OK" {
			return
		}
	}
	t.Fatal("LOGIN did not succeed")
}

// loginAndRequest logs in on a login socket as a login process does and
// finishes the login with REQUEST on the master socket; it returns the
// cookie it used.
func loginAndRequest(t *testing.T, loginSock, masterSock, pw string) string {
	t.Helper()
	lc, err := net.Dial("unix", loginSock)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	_ = lc.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(lc)
	cookie := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "COOKIE\t"); ok {
			cookie = v
		}
		if strings.TrimSpace(line) == "DONE" {
			break
		}
	}
	resp := base64.StdEncoding.EncodeToString([]byte("\x00canary@example.com\x00" + pw))
	fmt.Fprintf(lc, "VERSION\t1\t2\nCPID\t31337\nAUTH\t7\tPLAIN\tservice=imap\tresp=%s\n", resp)
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "OK\t7\t") {
		t.Fatalf("login socket: %q", line)
	}
	mc, err := net.Dial("unix", masterSock)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	_ = mc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(mc, "VERSION\t1\t0\nREQUEST\t1\t31337\t7\t%s\n", cookie)
	mr := bufio.NewReader(mc)
	for {
		line, err := mr.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "USER\t1\t") {
			return cookie
		}
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "NOTFOUND") {
			t.Fatalf("REQUEST: %q", line)
		}
	}
}
