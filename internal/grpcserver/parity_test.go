package grpcserver_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/cli"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/grpcserver"
	"github.com/authd-project/authd/internal/tabescape"
)

// outcome is an answer reduced to what both protocols carry: the result,
// the final user and the extra fields (key or key=value, in order).
type outcome struct {
	Result string // ok, fail, user_disabled, pass_expired, authz_fail, tempfail; notfound, denied for lookups
	User   string
	Fields []string
}

func (o outcome) String() string {
	return fmt.Sprintf("%s user=%q fields=%q", o.Result, o.User, o.Fields)
}

func (o outcome) equal(p outcome) bool {
	return o.Result == p.Result && o.User == p.User && slices.Equal(o.Fields, p.Fields)
}

// socketAuth runs AUTH PLAIN on the client socket as `authd test` does.
func socketAuth(t *testing.T, path, user, pass string, params []string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dovecot.DialAuth(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Plain(ctx, params, user, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	o := outcome{Result: "ok"}
	if r.Cmd == "FAIL" {
		o.Result = "fail"
	}
	for _, f := range r.Fields {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "user":
			o.User = v
		case "code":
			o.Result = strings.ReplaceAll(v, "temp_fail", "tempfail")
		case "original_user", "auth_user", "anonymous":
			// The trailer restates what the gRPC client sent itself.
		default:
			o.Fields = append(o.Fields, f)
		}
	}
	if o.Result == "tempfail" {
		// gRPC answers a temporary failure with a status and nothing
		// else; the socket's FAIL line details are not compared.
		o.User, o.Fields = "", nil
	}
	return o
}

func grpcAuth(t *testing.T, c authdv1.AuthServiceClient, user, pass string, ri *authdv1.RequestInfo) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: user, Password: []byte(pass), Info: ri})
	if err != nil {
		if status.Code(err) == codes.Unavailable {
			return outcome{Result: "tempfail"}
		}
		t.Fatalf("Authenticate(%s): %v", user, err)
	}
	o := outcome{User: resp.GetUser()}
	switch resp.GetResult() {
	case authdv1.AuthResult_AUTH_RESULT_OK:
		o.Result = "ok"
	case authdv1.AuthResult_AUTH_RESULT_FAILED:
		o.Result = "fail"
	case authdv1.AuthResult_AUTH_RESULT_USER_DISABLED:
		o.Result = "user_disabled"
	case authdv1.AuthResult_AUTH_RESULT_PASSWORD_EXPIRED:
		o.Result = "pass_expired"
	case authdv1.AuthResult_AUTH_RESULT_AUTHZ_FAILED:
		o.Result = "authz_fail"
	default:
		t.Fatalf("Authenticate(%s): result %v", user, resp.GetResult())
	}
	o.Fields = protoFieldStrings(resp.GetFields())
	if r, ok := fieldValue(resp.GetFields(), "reason"); ok != (resp.GetReason() != "") || r != resp.GetReason() {
		t.Errorf("Authenticate(%s): reason %q, reason field %q", user, resp.GetReason(), r)
	}
	return o
}

func protoFieldStrings(fs []*authdv1.Field) []string {
	var out []string
	for _, f := range fs {
		if f.GetValue() == "" {
			out = append(out, f.GetKey())
		} else {
			out = append(out, f.GetKey()+"="+f.GetValue())
		}
	}
	return out
}

func fieldValue(fs []*authdv1.Field, key string) (string, bool) {
	for _, f := range fs {
		if f.GetKey() == key {
			return f.GetValue(), true
		}
	}
	return "", false
}

// socketMaster sends one USER or PASS on the master socket.
func socketMaster(t *testing.T, path, cmd, user string) outcome {
	t.Helper()
	nc, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(nc, "VERSION\t1\t0\n%s\t1\t%s\tservice=authd\n", cmd, tabescape.Escape(user))
	r := bufio.NewReader(nc)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s %s: %v", cmd, user, err)
		}
		f := dovecot.SplitLine(strings.TrimSuffix(line, "\n"))
		switch f[0] {
		case "VERSION", "SPID":
			continue
		case "USER":
			return outcome{Result: "ok", User: f[2], Fields: f[3:]}
		case "PASS":
			o := outcome{Result: "ok"}
			for _, kv := range f[2:] {
				if u, ok := strings.CutPrefix(kv, "user="); ok {
					o.User = u
				} else {
					o.Fields = append(o.Fields, kv)
				}
			}
			return o
		case "NOTFOUND":
			return outcome{Result: "notfound"}
		case "FAIL":
			return outcome{Result: "tempfail"}
		}
		t.Fatalf("%s %s: unexpected %q", cmd, user, line)
	}
}

func grpcLookup(t *testing.T, c authdv1.AuthServiceClient, cmd, user string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var found bool
	var u string
	var fs []*authdv1.Field
	var err error
	if cmd == "USER" {
		var r *authdv1.LookupUserResponse
		r, err = c.LookupUser(ctx, &authdv1.LookupUserRequest{User: user})
		found, u, fs = r.GetFound(), r.GetUser(), r.GetFields()
	} else {
		var r *authdv1.LookupPassdbResponse
		r, err = c.LookupPassdb(ctx, &authdv1.LookupPassdbRequest{User: user})
		found, u, fs = r.GetFound(), r.GetUser(), r.GetFields()
	}
	switch {
	case status.Code(err) == codes.Unavailable:
		return outcome{Result: "tempfail"}
	case err != nil:
		t.Fatalf("%s %s: %v", cmd, user, err)
	case !found:
		return outcome{Result: "notfound"}
	}
	return outcome{Result: "ok", User: u, Fields: protoFieldStrings(fs)}
}

// TestSameAnswersAsDovecotSockets runs every user through an internal/
// dovecot client and master socket and through gRPC over mTLS, all on one
// engine, and requires the same answers.
func TestSameAnswersAsDovecotSockets(t *testing.T) {
	files := newTLSFiles(t)
	cfg := config.GRPC{TLSCertFile: files.serverCert, TLSKeyFile: files.serverKey, TLSClientCAFile: files.ca.CertFile}
	for _, backend := range []struct {
		name, users string
	}{{"passwd-file", testUsers}, {"backend down", ""}} {
		t.Run(backend.name, func(t *testing.T) {
			eng := newEngine(t, backend.users)
			socks := startSockets(t, eng)
			srv := startGRPC(t, cfg, grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})
			c := dial(t, srv, files.clientTLS(t, true))

			auths := []struct {
				user, pass string
				params     []string
				want       string // expected result, for sanity beyond equality
			}{
				{"alice@example.com", "secret", nil, "ok"},
				{"alice@example.com", "wrong", nil, "fail"},
				{"nobody@example.com", "secret", nil, "fail"},
				{"Alice@Example.COM", "secret", nil, "ok"},
				{"bob@example.com", "secret", nil, "ok"},
				{"bob@example.com", "Secret", nil, "fail"},
				{"nl@example.com", "secret", nil, "ok"},
				{"px@example.com", "secret", nil, "ok"},
				{"nd@example.com", "wrong", nil, "fail"},
				{"bad@example.com", "secret", nil, "tempfail"},
				{"alice@example.com", "secret", []string{"service=imap", "rip=192.0.2.1", "lip=192.0.2.2", "rport=4711", "lport=143", "secured"}, "ok"},
			}
			for _, a := range auths {
				want := a.want
				if backend.users == "" {
					want = "tempfail"
				}
				ri, err := cli.ParseParams(a.params)
				if err != nil {
					t.Fatal(err)
				}
				sock := socketAuth(t, socks.client, a.user, a.pass, a.params)
				g := grpcAuth(t, c, a.user, a.pass, ri)
				t.Logf("AUTH %s/%s: %v", a.user, a.pass, g)
				if !sock.equal(g) {
					t.Errorf("AUTH %s/%s %v:\n socket %v\n grpc   %v", a.user, a.pass, a.params, sock, g)
				}
				if g.Result != want {
					t.Errorf("AUTH %s/%s: %s, want %s", a.user, a.pass, g.Result, want)
				}
			}

			lookups := []struct{ cmd, user, want string }{
				{"USER", "alice@example.com", "ok"},
				{"USER", "Bob@example.com", "ok"},
				{"USER", "nobody@example.com", "notfound"},
				{"PASS", "alice@example.com", "ok"},
				{"PASS", "nl@example.com", "ok"},
				{"PASS", "px@example.com", "ok"},
				{"PASS", "nobody@example.com", "notfound"},
			}
			for _, l := range lookups {
				want := l.want
				if backend.users == "" {
					want = "tempfail"
				}
				sock := socketMaster(t, socks.master, l.cmd, l.user)
				g := grpcLookup(t, c, l.cmd, l.user)
				t.Logf("%s %s: %v", l.cmd, l.user, g)
				if !sock.equal(g) {
					t.Errorf("%s %s:\n socket %v\n grpc   %v", l.cmd, l.user, sock, g)
				}
				if g.Result != want {
					t.Errorf("%s %s: %s, want %s", l.cmd, l.user, g.Result, want)
				}
			}
		})
	}
}

// TestUnknownUserLooksLikeWrongPassword: the two failures must be the same
// answer, field for field.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	eng := newEngine(t, "carol@example.com:{PLAIN}right\n")
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})
	c := dial(t, srv, nil)
	ctx := context.Background()
	wrong, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "carol@example.com", Password: []byte("nope")})
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "dave@example.com", Password: []byte("nope")})
	if err != nil {
		t.Fatal(err)
	}
	if wrong.GetResult() != authdv1.AuthResult_AUTH_RESULT_FAILED || unknown.GetResult() != wrong.GetResult() ||
		len(wrong.GetFields()) != 0 || len(unknown.GetFields()) != 0 || wrong.GetReason() != unknown.GetReason() {
		t.Errorf("wrong password: %v\nunknown user:   %v", wrong, unknown)
	}
}
