package load_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/cmd/authd-bench/internal/grpcload"
	"github.com/authd-project/authd/cmd/authd-bench/internal/load"
	"github.com/authd-project/authd/internal/testenv"
)

// startAuthd runs a real authd, built from this tree, as a child with a
// passwd-file of users ({PLAIN}) and a gRPC listener, and returns it and
// its gRPC address. testenv starts it (with internal/realserver, as the
// comparison harness does) and knows it is ready from its /readyz and a
// handshake, not from its log.
func startAuthd(t *testing.T, users *load.Users) (*testenv.Authd, string) {
	t.Helper()
	// The load sends a share of wrong passwords: the brute-force defence
	// would refuse some right ones after them.
	return startAuthdPenalty(t, users, "penalty {\n  enabled = no\n}\n")
}

// startAuthdPenalty is startAuthd with penalty, the penalty { } section.
func startAuthdPenalty(t *testing.T, users *load.Users, penalty string) (*testenv.Authd, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts authd")
	}
	bin := testenv.BuildAuthd(t)
	dir := testenv.Dir(t)
	var pf strings.Builder
	for i := range users.Names {
		fmt.Fprintf(&pf, "%s:{PLAIN}%s:1000:1000::/var/empty::\n", users.Names[i], users.Passwords[i])
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(pf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	conf := fmt.Sprintf(`auth_mechanisms = plain login scram-sha-1 scram-sha-256
auth_failure_delay = 0
%[3]spassdb {
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
`, dir, grpcAddr, penalty)
	a := testenv.StartAuthd(t, testenv.AuthdOptions{Bin: bin, Dir: dir, Config: conf})
	return a, grpcAddr
}

// checkCounts verifies that a run's numbers add up.
func checkCounts(t *testing.T, r *load.Result) {
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
	users, _ := load.GenerateUsers(200, "", "")
	a, grpcAddr := startAuthd(t, users)
	client, _ := load.ParseTarget(a.Socket("auth-client"))
	userdb, _ := load.ParseTarget("unix:" + a.Socket("auth-userdb"))
	grpcTarget, err := load.ParseTarget(grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	// The command's registry: the built-in protocols and gRPC, built here
	// and handed to each run.
	protos := load.Builtin()
	protos["grpc"] = grpcload.Protocol{}
	for _, c := range []struct {
		name  string
		proto string
		mech  string
		t     load.Target
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
			res, err := load.Run(ctx, load.Config{
				Target: c.t, Protocols: protos, Protocol: c.proto, Mech: c.mech, Conns: 4, Depth: 4,
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
		res, err := load.Run(t.Context(), load.Config{
			Target: client, Protocols: protos, Conns: 3, Depth: 5, Duration: 30 * time.Second, MaxRequests: 1000,
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
		_, err := load.Run(t.Context(), load.Config{Target: userdb, Protocols: protos, Protocol: "client", Duration: time.Second, Users: users})
		if err == nil || !strings.Contains(err.Error(), "master socket") {
			t.Errorf("client protocol on a master socket: %v", err)
		}
		_, err = load.Run(t.Context(), load.Config{Target: client, Protocols: protos, Protocol: "master", Duration: time.Second, Users: users})
		if err == nil || !strings.Contains(err.Error(), "client socket") {
			t.Errorf("master protocol on a client socket: %v", err)
		}
	})
}

// TestAttackAgainstAuthd runs the attack scenario briefly against a real
// authd with its brute-force defence on (a budget of 3 failures per
// address, no failure delays, so the attackers go as fast as authd
// answers): the legitimate users all log in, no guess gets in, the probes
// see refusals, and authd's own count of refusals (its metrics) shows
// that no more attacker requests got past the defence than the budgets
// allow.
func TestAttackAgainstAuthd(t *testing.T) {
	users, _ := load.GenerateUsers(200, "", "")
	// A probe that logs in makes its account known-good from the
	// attacker's network, which then has that pair's own budget. (Not 1:
	// attempts count while in flight, and two legitimate logins of one
	// user at once would exceed it.)
	const addrs, budget, pairBudget = 50, 3, 4
	a, _ := startAuthdPenalty(t, users, fmt.Sprintf("penalty {\n  ip_failures = %d\n  known_good_failures = %d\n  client_max_delay = 0\n}\n",
		budget, pairBudget))
	client, _ := load.ParseTarget(a.Socket("auth-client"))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	res, err := load.RunAttack(ctx, load.Config{
		Target: client, Protocols: load.Builtin(), Conns: 2, Depth: 4,
		Duration: time.Second, Warmup: 200 * time.Millisecond, Users: users, Seed: 42,
	}, load.Attack{Addrs: addrs, Conns: 2, Depth: 16, ProbeShare: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	res.WriteText(&sb)
	t.Logf("\n%s", sb.String())

	checkCounts(t, res.Legit)
	at := res.Attacker
	if at.Errors != 0 || at.TempFail != 0 || at.Late.Unanswered != 0 || at.WrongOK != 0 {
		t.Errorf("attackers: %d errors, %d tempfail, %d unanswered, %d guesses let in", at.Errors, at.TempFail, at.Late.Unanswered, at.WrongOK)
	}
	if res.Probes == 0 || res.ProbesRefused == 0 {
		t.Errorf("%d probes, %d refused: want refusals", res.Probes, res.ProbesRefused)
	}

	// Every attacker request authd answered without refusing it was a
	// probe that logged in, or a counted failure: at most budget per
	// address, plus pairBudget for each pair a probe made known-good (the
	// windows are 10 minutes long).
	refusals := metricSum(t, a, "authd_penalty_refusals_total")
	sent := at.Warmup.Total() + at.Counts.Total() + at.Late.Total()
	loggedIn := at.Warmup.OK + at.OK + at.Late.OK
	if refusals == 0 || refusals > sent {
		t.Errorf("authd refused %d of %d attacker requests", refusals, sent)
	}
	if passed, most := sent-refusals, addrs*budget+loggedIn*(1+pairBudget); passed > most {
		t.Errorf("%d attacker requests got past the defence, more than %d (%d addresses × %d failures, %d probes that logged in × %d)",
			passed, most, addrs, budget, loggedIn, 1+pairBudget)
	}
}

// metricSum adds up every sample of a metric family, read from authd's
// /metrics.
func metricSum(t *testing.T, a *testenv.Authd, name string) int64 {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", a.MetricsSocket)
	}}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://authd/metrics", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += int64(v)
		found = true
	}
	if !found {
		t.Fatalf("%s not in /metrics:\n%s", name, body)
	}
	return sum
}
