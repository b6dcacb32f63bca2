package bench_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/bench"
	"github.com/authd-project/authd/internal/bench/grpcload"
)

// buildDir holds the authd binary built for this test binary; TestMain
// removes it.
var buildDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildAuthd compiles ./cmd/authd once per test binary.
var buildAuthd = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "authd-bench-e2e-")
	if err != nil {
		return "", err
	}
	buildDir = dir
	bin := filepath.Join(dir, "authd")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/authd-project/authd/cmd/authd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/authd: %v\n%s", err, out)
	}
	return bin, nil
})

// startAuthd runs a real authd as a child with a passwd-file of n {PLAIN}
// users (the generator's default user set) and returns its socket dir and
// its gRPC address.
func startAuthd(t *testing.T, n int) (run, grpcAddr string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts authd")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain to build authd")
	}
	bin, err := buildAuthd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	users, err := bench.GenerateUsers(n, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var pf strings.Builder
	for i := range users.Names {
		fmt.Fprintf(&pf, "%s:{PLAIN}%s:1000:1000::/var/empty::\n", users.Names[i], users.Passwords[i])
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(pf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr = l.Addr().String()
	l.Close()
	conf := fmt.Sprintf(`base_dir = %[1]s/run
auth_mechanisms = plain login scram-sha-1 scram-sha-256
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = %[1]s/users
}
userdb {
  driver = passwd-file
  args = %[1]s/users
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  unix_listener auth-userdb {
    mode = 0600
  }
}
grpc {
  listen = %[2]s
}
`, dir, grpcAddr)
	if err := os.WriteFile(filepath.Join(dir, "authd.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "authd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve", "-c", filepath.Join(dir, "authd.conf"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "authd.log"))
			t.Logf("authd log:\n%s", b)
		}
	})
	// Wait for the start-up log line before connecting (see
	// compare.startAuthd), then for a complete handshake.
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "authd.log"))
		if strings.Contains(string(b), "authd started") && handshake(filepath.Join(dir, "run", "auth-client")) == nil {
			return filepath.Join(dir, "run"), grpcAddr
		}
		select {
		case <-done:
			t.Fatalf("authd exited during start-up:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("authd not ready:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func handshake(sock string) error {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "VERSION\t1\t2\nCPID\t%d\n", os.Getpid())
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if sc.Text() == "DONE" {
			return nil
		}
	}
	return fmt.Errorf("no DONE")
}

// checkCounts verifies that a run's numbers add up.
func checkCounts(t *testing.T, r *bench.Result) {
	t.Helper()
	if r.Requests == 0 {
		t.Fatalf("no requests completed: %+v", r)
	}
	if sum := r.OK + r.Fail + r.TempFail + r.Errors; sum != r.Requests {
		t.Errorf("ok %d + fail %d + tempfail %d + errors %d = %d, want requests %d", r.OK, r.Fail, r.TempFail, r.Errors, sum, r.Requests)
	}
	if r.Errors != 0 || r.TempFail != 0 || r.Late.Unanswered != 0 || len(r.ErrorSamples) > 0 {
		t.Errorf("errors %d tempfail %d unanswered %d: %v", r.Errors, r.TempFail, r.Late.Unanswered, r.ErrorSamples)
	}
	if r.Unexpected != 0 {
		t.Errorf("%d unexpected outcomes", r.Unexpected)
	}
	if r.Fail != r.WrongSent || r.OK != r.Requests-r.WrongSent {
		t.Errorf("fail %d ok %d, but %d of %d were sent with a wrong password", r.Fail, r.OK, r.WrongSent, r.Requests)
	}
	if r.Histogram().Count() != uint64(r.Requests) {
		t.Errorf("histogram has %d samples for %d requests", r.Histogram().Count(), r.Requests)
	}
	if r.RPS <= 0 || r.Seconds <= 0 || r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max {
		t.Errorf("rate %v over %v s, latency %+v", r.RPS, r.Seconds, r.Latency)
	}
}

// TestRunAgainstAuthd runs the generator for about a second per protocol
// and mechanism against a real authd and checks that the counts add up.
func TestRunAgainstAuthd(t *testing.T) {
	run, grpcAddr := startAuthd(t, 200)
	users, _ := bench.GenerateUsers(200, "", "")
	client, _ := bench.ParseTarget(filepath.Join(run, "auth-client"))
	userdb, _ := bench.ParseTarget("unix:" + filepath.Join(run, "auth-userdb"))
	grpcTarget, err := bench.ParseTarget(grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	// Protocols is package state: put it back, so the tests that expect
	// the unwired default still see it (go test -count=2 runs them again).
	prev := bench.Protocols["grpc"]
	bench.Protocols["grpc"] = grpcload.Protocol{}
	t.Cleanup(func() { bench.Protocols["grpc"] = prev })
	for _, c := range []struct {
		name  string
		proto string
		mech  string
		t     bench.Target
	}{
		{"PLAIN", "client", "PLAIN", client},
		{"LOGIN", "client", "LOGIN", client},
		{"SCRAM-SHA-256", "client", "SCRAM-SHA-256", client},
		{"SCRAM-SHA-1", "client", "SCRAM-SHA-1", client},
		{"USER", "master", "", userdb},
		{"gRPC", "grpc", "", grpcTarget},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			res, err := bench.Run(ctx, bench.Config{
				Target: c.t, Protocol: c.proto, Mech: c.mech, Conns: 4, Depth: 4,
				Duration: time.Second, Warmup: 200 * time.Millisecond, Users: users,
				WrongShare: 0.2, NoPenalty: true, Seed: 42,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkCounts(t, res)
			if res.WrongSent == 0 {
				t.Error("no wrong requests at a 20% share")
			}
			var sb strings.Builder
			res.WriteText(&sb)
			t.Logf("\n%s", sb.String())
		})
	}

	t.Run("max requests and warm-all", func(t *testing.T) {
		res, err := bench.Run(t.Context(), bench.Config{
			Target: client, Conns: 3, Depth: 5, Duration: 30 * time.Second, MaxRequests: 1000,
			Users: users, WarmAll: true, NoPenalty: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		checkCounts(t, res)
		if res.WarmAll == nil || res.WarmAll.OK != int64(users.Len()) || res.WarmAll.Total() != int64(users.Len()) {
			t.Errorf("warm-all: %+v, want %d ok", res.WarmAll, users.Len())
		}
		// Nothing is counted in the warm-up or after the window, so the
		// budget is exactly the measured requests, and the run ended
		// long before its 30 s.
		if res.Requests+res.Warmup.Total()+res.Late.Total() != 1000 {
			t.Errorf("requests %d + warm-up %d + late %d, want 1000", res.Requests, res.Warmup.Total(), res.Late.Total())
		}
		if res.Seconds >= 30 {
			t.Errorf("window %v s: the request budget did not end the run", res.Seconds)
		}
	})

	t.Run("wrong socket kind", func(t *testing.T) {
		_, err := bench.Run(t.Context(), bench.Config{Target: userdb, Protocol: "client", Duration: time.Second, Users: users})
		if err == nil || !strings.Contains(err.Error(), "master socket") {
			t.Errorf("client protocol on a master socket: %v", err)
		}
		_, err = bench.Run(t.Context(), bench.Config{Target: client, Protocol: "master", Duration: time.Second, Users: users})
		if err == nil || !strings.Contains(err.Error(), "client socket") {
			t.Errorf("master protocol on a client socket: %v", err)
		}
	})
}
