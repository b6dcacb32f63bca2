package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/dovecot"
)

// The limits' counters reach /metrics, and gRPC's survive a reload that
// restarts its listener.
func TestLimitMetrics(t *testing.T) {
	grpcAddr, metricsAddr := freePort(t), freePort(t)
	grpcConf := func(maxConns int) string {
		return fmt.Sprintf("grpc {\n  listen = %s\n  max_connections = %d\n}\nmetrics {\n  listen = %s\n}\n", grpcAddr, maxConns, metricsAddr)
	}
	p := startAuthd(t, baseConf+grpcConf(1), "run/auth-client", baseUsers)
	waitFor(t, func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	metric := func(series string) string {
		t.Helper()
		_, body := httpGet(t, "http://"+metricsAddr+"/metrics")
		for _, l := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(l, series+" "); ok {
				return v
			}
		}
		return "(absent)"
	}
	for _, s := range []string{
		`authd_connections_refused_total{protocol="dovecot"}`,
		`authd_connections_refused_total{protocol="grpc"}`,
		`authd_requests_overdue_total`,
		`authd_failure_delay_overflow_total{protocol="dovecot"}`,
		`authd_failure_delay_overflow_total{protocol="grpc"}`,
		`authd_replies_too_large_total`,
		`authd_verify_shed_total{reason="queue_full"}`,
		`authd_verify_shed_total{reason="wait"}`,
	} {
		if v := metric(s); v != "0" {
			t.Errorf("%s = %s at start, want 0", s, v)
		}
	}
	// max_connections = 1: the first connection is served, the second
	// refused at accept.
	first, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := authdv1.NewAuthServiceClient(first).LookupUser(context.Background(), &authdv1.LookupUserRequest{User: "carol@example.com"}); err != nil {
		t.Fatal(err)
	}
	second, err := net.Dial("tcp", grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	waitFor(t, func() bool { return metric(`authd_connections_refused_total{protocol="grpc"}`) == "1" })

	// A new connection limit restarts the gRPC listener; the count stays.
	if err := os.WriteFile(p.path("authd.conf"), []byte(strings.ReplaceAll(baseConf+grpcConf(2), "$DIR", p.dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(p.stderr.String(), "configuration reloaded") })
	if v := metric(`authd_connections_refused_total{protocol="grpc"}`); v != "1" {
		t.Errorf("refusals after the gRPC listener restarted: %s, want 1", v)
	}
}

// With its file descriptors used up, authd's accept loops (Dovecot
// sockets and gRPC) back off and log the failure at most once a second,
// and serve again as soon as descriptors free up.
func TestAcceptEMFILE(t *testing.T) {
	conf := baseConf + "grpc {\n  listen = unix:$DIR/run/grpc.sock\n}\n"
	dir := t.TempDir()
	for name, body := range baseUsers {
		if err := os.WriteFile(dir+"/"+name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(dir+"/authd.conf", []byte(strings.ReplaceAll(conf, "$DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	// authd uses 15 descriptors when idle; 40 leaves room for 25 clients.
	p := startAuthdEnv(t, dir, "run/auth-client", []string{"AUTHD_TEST_NOFILE=40"}, "serve", "-c", dir+"/authd.conf")
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	// Connections that finished their handshake stay; those past the
	// limit wait in the kernel's backlog.
	for range 60 {
		c, err := net.Dial("unix", p.path("run/auth-client"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, "VERSION\t1\t2\nCPID\t1\n")
		flood = append(flood, c)
	}
	acceptLog := regexp.MustCompile(`msg="accept failed" listener=\S*auth-client`)
	grpcLog := regexp.MustCompile(`msg="grpc accept failed"`)
	waitFor(t, func() bool { return acceptLog.MatchString(p.stderr.String()) })
	// Out of descriptors now: gRPC's accept fails too.
	for range 2 {
		c, err := net.Dial("unix", p.path("run/grpc.sock"))
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, c)
	}
	waitFor(t, func() bool { return grpcLog.MatchString(p.stderr.String()) })
	// Measure a while of EMFILE: the log and the CPU it costs.
	cpu0, t0 := cpuTime(t, p.cmd.Process.Pid), time.Now()
	before := p.stderr.String()
	time.Sleep(2 * time.Second)
	cpu, wall := cpuTime(t, p.cmd.Process.Pid)-cpu0, time.Since(t0)
	during := strings.TrimPrefix(p.stderr.String(), before)
	if !strings.Contains(during, "EMFILE") && !strings.Contains(during, "too many open files") {
		t.Fatalf("no accept failure logged while out of descriptors:\n%s", during)
	}
	// At most one line a second per accept loop (+1 for the edges).
	limit := int(wall/time.Second) + 1
	if n := len(acceptLog.FindAllString(during, -1)); n > limit {
		t.Errorf("%d accept-failed lines in %v for the client socket, want at most %d", n, wall, limit)
	}
	if n := len(grpcLog.FindAllString(during, -1)); n > limit {
		t.Errorf("%d grpc accept-failed lines in %v, want at most %d", n, wall, limit)
	}
	// A loop that does not back off spins a core.
	if cpu > wall/2 {
		t.Errorf("authd used %v of CPU in %v while out of descriptors: the accept loops spin", cpu, wall)
	}
	for _, c := range flood {
		c.Close()
	}
	flood = nil
	// Descriptors free: both listeners serve again.
	waitFor(t, func() bool {
		_, code := authdTest(t, "-a", p.path("run/auth-client"), "carol@example.com", "carolpw")
		return code == 0
	})
	waitFor(t, func() bool {
		_, code := authdCmd(t, "test", "--grpc", "unix:"+p.path("run/grpc.sock"), "carol@example.com", "carolpw")
		return code == 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dovecot.DialAuth(ctx, p.path("run/auth-client"))
	if err != nil {
		t.Fatalf("after the descriptors freed up: %v", err)
	}
	c.Close()
}

// cpuTime is the user and system CPU time process pid used so far.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) in
	// parentheses: utime and stime are the 14th and 15th of the line.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}
