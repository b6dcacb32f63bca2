package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// freePort returns a loopback address nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// authdCmd runs `authd CMD args…` in-process.
func authdCmd(t *testing.T, cmd string, args ...string) (string, int) {
	t.Helper()
	var out, errb syncBuffer
	code := run(append([]string{cmd}, args...), strings.NewReader(""), &out, &errb)
	return out.String() + errb.String(), code
}

// TestGRPCAndMetrics: the daemon serves gRPC and the metrics endpoint
// from its configuration, the CLI's --grpc gives the socket commands' exit
// codes, the metrics see both protocols, and a reload keeps gRPC up while
// moving the metrics listener.
func TestGRPCAndMetrics(t *testing.T) {
	grpcAddr, metricsAddr := freePort(t), freePort(t)
	conf := baseConf + "grpc {\n  listen = " + grpcAddr + "\n}\nmetrics {\n  listen = " + metricsAddr + "\n}\n"
	p := startAuthd(t, conf, "run/auth-client", baseUsers)

	for _, c := range []struct {
		cmd  string
		args []string
		code int
		want string
	}{
		{"test", []string{"--grpc", grpcAddr, "alice@example.com", "wonderland"}, 0, "auth succeeded"},
		{"test", []string{"--grpc", grpcAddr, "-x", "service=imap", "alice@example.com", "wrong"}, 77, "auth failed"},
		{"user", []string{"--grpc", grpcAddr, "alice@example.com"}, 0, "home\t/home/alice"},
		// Listing users is an admin RPC: no plaintext TCP caller has the
		// role (TestGRPCUnixSocket lists over a unix socket).
		{"user", []string{"--grpc", grpcAddr, "*"}, 77, "needs the admin role"},
		{"lookup", []string{"--grpc", grpcAddr, "nosuch@example.com"}, 67, "doesn't exist"},
		{"test", []string{"--grpc", grpcAddr, "--tls-ca", "/nonexistent", "alice@example.com", "x"}, 64, "--tls-ca"},
	} {
		out, code := authdCmd(t, c.cmd, c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("authd %s %v: exit %d, want %d with %q:\n%s", c.cmd, c.args, code, c.code, c.want, out)
		}
	}
	if out, code := authdTest(t, "-a", p.path("run/auth-client"), "carol@example.com", "carolpw"); code != 0 {
		t.Fatalf("socket login: %d %s", code, out)
	}

	code, body := httpGet(t, "http://"+metricsAddr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`authd_auth_requests_total{mechanism="PLAIN",protocol="grpc",result="ok"} 1`,
		`authd_auth_requests_total{mechanism="PLAIN",protocol="grpc",result="fail"} 1`,
		`authd_auth_requests_total{mechanism="PLAIN",protocol="client",result="ok"} 1`,
		`authd_lookup_requests_total{command="user",protocol="grpc",result="ok"} 1`,
		`authd_passdb_lookups_total{driver="passwd-file",result="found"}`,
		`authd_scheme_verify_duration_seconds_count{scheme="SHA512-CRYPT"}`,
		`authd_auth_failure_delay_queue_length 0`,
		`authd_panics_recovered_total 0`,
		`authd_ready 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, _ := httpGet(t, "http://"+metricsAddr+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d", code)
	}

	// Reload: same gRPC listener, metrics on a new port.
	metrics2 := freePort(t)
	conf2 := strings.ReplaceAll(baseConf, "$DIR", p.dir) + "grpc {\n  listen = " + grpcAddr + "\n}\nmetrics {\n  listen = " + metrics2 + "\n}\n"
	os.WriteFile(p.path("authd.conf"), []byte(conf2), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(p.stderr.String(), "configuration reloaded") })
	waitFor(t, func() bool {
		resp, err := http.Get("http://" + metrics2 + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	if _, err := http.Get("http://" + metricsAddr + "/healthz"); err == nil {
		t.Error("the old metrics listener still answers")
	}
	if out, code := authdCmd(t, "test", "--grpc", grpcAddr, "carol@example.com", "carolpw"); code != 0 {
		t.Errorf("gRPC after reload: %d %s", code, out)
	}
	_, body = httpGet(t, "http://"+metrics2+"/metrics")
	if !strings.Contains(body, `authd_config_reloads_total{result="success"} 1`) {
		t.Error("the reload was not counted")
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := net.Dial("tcp", grpcAddr); err == nil {
		t.Error("gRPC still listening after stop")
	}
}

// TestGRPCUnixSocket: grpc { listen = unix:PATH } serves plaintext
// locally, without allow_plaintext_remote, and a peer uid in admin_uids
// may list the users.
func TestGRPCUnixSocket(t *testing.T) {
	conf := baseConf + "grpc {\n  listen = unix:$DIR/run/grpc.sock\n  admin_uids = " + strconv.Itoa(os.Getuid()) + "\n}\n"
	p := startAuthd(t, conf, "run/auth-client", baseUsers)
	addr := "unix:" + p.path("run/grpc.sock")
	if out, code := authdCmd(t, "test", "--grpc", addr, "alice@example.com", "wonderland"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if out, code := authdCmd(t, "user", "--grpc", addr, "*"); code != 0 || !strings.Contains(out, "carol@example.com") {
		t.Errorf("listing users as an admin: exit %d: %s", code, out)
	}
}
