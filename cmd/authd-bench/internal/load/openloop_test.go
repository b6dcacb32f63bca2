package load

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// stallingServer answers AUTH at once on the client protocol, except that
// after reading its stallAt-th request it waits stall before answering
// anything more (a garbage-collection pause, a slow backend).
func stallingServer(t *testing.T, stallAt int, stall time.Duration) string {
	var n atomic.Int64 // requests read, over every connection
	return serveUnix(t, func(c net.Conn) {
		c.Write([]byte(clientHandshake))
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			f := strings.Split(sc.Text(), "\t")
			if len(f) < 2 || f[0] != "AUTH" {
				continue
			}
			if n.Add(1) == int64(stallAt) {
				time.Sleep(stall)
			}
			fmt.Fprintf(c, "OK\t%s\tuser=x\n", f[1])
		}
	})
}

// TestOpenLoopCountsFromSchedule: at a fixed rate the window holds exactly
// the requests scheduled in it, and a server stall shows in the latency of
// every request scheduled during it, not only of the one it held up. The
// bounds follow from causality (no reply can come before the stall ends),
// not from how fast this machine is.
func TestOpenLoopCountsFromSchedule(t *testing.T) { bothPacers(t, testOpenLoopCountsFromSchedule) }

func testOpenLoopCountsFromSchedule(t *testing.T) {
	const rate, stall = 200, 300 * time.Millisecond
	// Request 60 is scheduled 0.3 s in, inside the window.
	sock := stallingServer(t, 60, stall)
	users, _ := GenerateUsers(10, "", "")
	res, err := Run(t.Context(), Config{
		Target: Target{Network: "unix", Address: sock}, Protocols: Builtin(), Conns: 1, Depth: 1000,
		Rate: rate, Warmup: 100 * time.Millisecond, Duration: time.Second, Users: users,
	})
	if err != nil {
		t.Fatal(err)
	}
	// start + k/rate for k = 20 … 220 lies in [t0, t1].
	if res.Requests < rate-1 || res.Requests > rate+1 || res.OK != res.Requests || res.Unsent != 0 {
		t.Fatalf("%d requests (%d OK, %d unsent), want %d OK", res.Requests, res.OK, res.Unsent, rate)
	}
	// The 31 requests scheduled in the stall's first 150 ms waited at
	// least 150 ms each: more than 10 % of the window, so p90 shows it.
	if res.Latency.P90 < 150 {
		t.Errorf("p90 %.1f ms, want ≥ 150 ms: latency is not counted from the scheduled time", res.Latency.P90)
	}
	if res.SendLag == nil || res.Rate != rate {
		t.Errorf("open-loop report lacks send lag or rate: %+v, %v", res.SendLag, res.Rate)
	}
}

// TestOpenLoopDepthBound: requests due on a connection that has Depth in
// flight are counted as unsent rather than sent or lost.
func TestOpenLoopDepthBound(t *testing.T) { bothPacers(t, testOpenLoopDepthBound) }

func testOpenLoopDepthBound(t *testing.T) {
	sock := fakeAuthServer(t, false, "") // never answers
	users, _ := GenerateUsers(10, "", "")
	res, err := Run(t.Context(), Config{
		Target: Target{Network: "unix", Address: sock}, Protocols: Builtin(), Conns: 2, Depth: 3,
		Rate: 100, Duration: 200 * time.Millisecond, Timeout: 200 * time.Millisecond, Users: users,
	})
	if err != nil {
		t.Fatal(err)
	}
	// 20 or 21 scheduled: 6 sent and never answered, the rest unsent.
	if res.Late.Unanswered != 6 || res.Unsent < 14 || res.Unsent > 15 || res.Requests != 0 {
		t.Errorf("unanswered %d, unsent %d, requests %d; want 6, 14–15, 0", res.Late.Unanswered, res.Unsent, res.Requests)
	}
}

// bothPacers runs test with the platform's pacer (on Linux the event
// loop) and with the portable pacer and reader goroutines.
func bothPacers(t *testing.T, test func(t *testing.T)) {
	t.Run("default", test)
	t.Run("portable", func(t *testing.T) {
		portablePacer = true
		t.Cleanup(func() { portablePacer = false })
		test(t)
	})
}

// TestOpenLoopServerHangsUp: a server that closes the connection after
// its tenth request ends the run on time; what was in flight or due
// afterwards counts as errors, with the cause in the report, and the
// nine answered before count as OK.
func TestOpenLoopServerHangsUp(t *testing.T) { bothPacers(t, testOpenLoopServerHangsUp) }

func testOpenLoopServerHangsUp(t *testing.T) {
	sock := serveUnix(t, func(c net.Conn) {
		c.Write([]byte(clientHandshake))
		sc := bufio.NewScanner(c)
		for n := 0; sc.Scan(); {
			f := strings.Split(sc.Text(), "\t")
			if len(f) < 2 || f[0] != "AUTH" {
				continue
			}
			if n++; n == 10 {
				return
			}
			fmt.Fprintf(c, "OK\t%s\tuser=x\n", f[1])
		}
	})
	users, _ := GenerateUsers(10, "", "")
	start := time.Now()
	res, err := Run(t.Context(), Config{
		Target: Target{Network: "unix", Address: sock}, Protocols: Builtin(), Conns: 1, Depth: 100,
		Rate: 100, Duration: 300 * time.Millisecond, Timeout: 300 * time.Millisecond, Users: users,
	})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("run took %v", el)
	}
	if res.OK != 9 || res.Errors < 20 || res.Requests != res.OK+res.Errors {
		t.Errorf("%d requests: %d OK, %d errors; want 9 OK and the other 20-odd errors", res.Requests, res.OK, res.Errors)
	}
	if len(res.ErrorSamples) == 0 {
		t.Error("no error sample in the report")
	}
}

// TestOpenLoopConfigErrors: a rate out of bounds is refused with a clear
// error, and so is an attack at a fixed rate.
func TestOpenLoopConfigErrors(t *testing.T) {
	users, _ := GenerateUsers(10, "", "")
	cfg := Config{Target: Target{Network: "unix", Address: "/nonexistent"}, Protocols: Builtin(), Users: users,
		Duration: time.Second, Rate: -1}
	if _, err := Run(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "rate") {
		t.Errorf("negative rate: %v", err)
	}
	cfg.Rate = 10
	if _, err := RunAttack(t.Context(), cfg, Attack{}); err == nil || !strings.Contains(err.Error(), "fixed rate") {
		t.Errorf("attack at a fixed rate: %v", err)
	}
}
