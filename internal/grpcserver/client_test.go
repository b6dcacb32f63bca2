package grpcserver_test

import (
	"context"
	"flag"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/grpcserver"
)

// TestClientCommands pins what `authd test|user|lookup --grpc` print and
// their exit codes: doveadm's, the same as over the sockets.
func TestClientCommands(t *testing.T) {
	up := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(newEngine(t, testUsers), nil, 0), grpcserver.Options{})
	down := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(newEngine(t, ""), nil, 0), grpcserver.Options{})
	// An address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	type run func(c *grpcserver.Client, ctx context.Context, out, errOut *strings.Builder) int
	test := func(user, pass string, params ...string) run {
		return func(c *grpcserver.Client, ctx context.Context, out, errOut *strings.Builder) int {
			return c.Test(ctx, out, errOut, user, "", []byte(pass), params)
		}
	}
	user := func(name string, params ...string) run {
		return func(c *grpcserver.Client, ctx context.Context, out, errOut *strings.Builder) int {
			return c.User(ctx, out, errOut, name, params)
		}
	}
	lookup := func(name string) run {
		return func(c *grpcserver.Client, ctx context.Context, out, errOut *strings.Builder) int {
			return c.Lookup(ctx, out, errOut, name, nil)
		}
	}
	for _, tc := range []struct {
		name    string
		addr    string
		run     run
		code    int
		out     string // exact stdout, or prefix when it ends in "…"
		errPart string
	}{
		{"test ok", up.Addr().String(), test("alice@example.com", "secret", "service=imap", "rip=192.0.2.1"), 0,
			"passdb: alice@example.com auth succeeded\nextra fields:\n  user=alice@example.com\n", ""},
		{"test fields", up.Addr().String(), test("nl@example.com", "secret"), 0,
			"passdb: nl@example.com auth succeeded\nextra fields:\n  user=nl@example.com\n  nologin\n  reason=Go_away\n", ""},
		{"test wrong password", up.Addr().String(), test("alice@example.com", "wrong"), 77,
			"passdb: alice@example.com auth failed\nextra fields:\n  user=alice@example.com\n", ""},
		{"test unknown user", up.Addr().String(), test("nobody@example.com", "secret"), 77,
			"passdb: nobody@example.com auth failed\nextra fields:\n  user=nobody@example.com\n", ""},
		{"test backend down", down.Addr().String(), test("alice@example.com", "secret"), 75,
			"passdb: alice@example.com auth failed\n", "temporary authentication failure"},
		{"test server unreachable", closed, test("alice@example.com", "secret"), 75,
			"passdb: alice@example.com auth failed\n", "Unavailable"},
		{"test bad parameter", up.Addr().String(), test("alice@example.com", "secret", "cert_username=x"), 64, "", "unknown parameter"},
		{"user ok", up.Addr().String(), user("alice@example.com"), 0,
			"field\tvalue\nuser\talice@example.com\nuid\t1000\ngid\t1000\nhome\t/home/alice\nmail\tmaildir:~/Maildir\n", ""},
		{"user unknown", up.Addr().String(), user("nobody@example.com"), 67, "", "user nobody@example.com doesn't exist"},
		{"user backend down", down.Addr().String(), user("alice@example.com"), 75, "", "userdb lookup failed for alice@example.com"},
		{"user list", up.Addr().String(), user("*@example.com"), 0,
			"alice@example.com\nbob@example.com\nnl@example.com\npx@example.com\nnd@example.com\nbad@example.com\n", ""},
		{"user list backend down", down.Addr().String(), user("*"), 75, "", "listing users failed"},
		{"lookup ok", up.Addr().String(), lookup("px@example.com"), 0,
			"field\tvalue\nuser\tpx@example.com\nproxy\t\nhost\t10.0.0.5\nport\t143\nnodelay\t\n", ""},
		{"lookup unknown", up.Addr().String(), lookup("nobody@example.com"), 67, "", "doesn't exist"},
		{"lookup backend down", down.Addr().String(), lookup("alice@example.com"), 75, "", "passdb lookup failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := grpcserver.DialClient(tc.addr, grpcserver.TLSOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out, errOut strings.Builder
			code := tc.run(c, ctx, &out, &errOut)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errOut.String())
			}
			if out.String() != tc.out {
				t.Errorf("stdout:\n%q\nwant\n%q", out.String(), tc.out)
			}
			if !strings.Contains(errOut.String(), tc.errPart) {
				t.Errorf("stderr %q does not contain %q", errOut.String(), tc.errPart)
			}
		})
	}
}

func TestDialClientTLSOptions(t *testing.T) {
	for _, o := range []grpcserver.TLSOptions{
		{CAFile: "/nonexistent/ca.pem"},
		{CertFile: "/nonexistent/c.pem"},
		{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/c.key"},
	} {
		if c, err := grpcserver.DialClient("127.0.0.1:1", o); err == nil {
			c.Close()
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestTLSFlags(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var o grpcserver.TLSOptions
	o.RegisterFlags(fs)
	if err := fs.Parse([]string{"--tls-ca", "ca.pem", "--tls-cert", "c.pem", "--tls-key", "c.key", "--tls-server-name", "mx1", "--tls"}); err != nil {
		t.Fatal(err)
	}
	want := grpcserver.TLSOptions{TLS: true, CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "c.key", ServerName: "mx1"}
	if o != want {
		t.Errorf("%+v, want %+v", o, want)
	}
}
