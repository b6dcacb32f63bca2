package dovecot_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/sasl"
	"github.com/authd-project/authd/internal/testenv"
)

// The limits on what one client can make authd hold (docs/operations.md
// §8): handshake and line deadlines that leave idle connections alone,
// connection and request caps, paused reading for a client that does not
// read, and a deadline on every request.

// startLimited serves the client protocol with limits.
func (e *testEnv) startLimited(t *testing.T, l dovecot.Limits, eng dovecot.ClientEngine) string {
	t.Helper()
	if eng == nil {
		eng = e.eng
	}
	srv := dovecot.NewClientServer(dovecot.ClientConfig{
		Engine: eng, Mechs: []sasl.Def{sasl.Defs["PLAIN"], sasl.Defs["LOGIN"]}, Shared: e.shared, Limits: l,
	})
	return testenv.ServeUnix(t, filepath.Join(e.dir, "auth-limited"), testenv.Served{Serve: srv.Serve, Shutdown: srv.Shutdown, Run: srv.Run})
}

// handshake reads the server's handshake and sends the client's.
func (c *conn) handshake() {
	c.t.Helper()
	for {
		if l := c.readLine(2 * time.Second); l == "DONE" {
			break
		} else if l == "<closed>" || l == "<timeout>" {
			c.t.Fatalf("handshake: %s", l)
		}
	}
	c.send("VERSION\t1\t2")
	c.send("CPID\t4242")
}

const alicePlain = "AUTH\t%d\tPLAIN\tservice=imap\tresp=AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA=="

func TestIdleConnectionsClosedAtHandshakeDeadline(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	path := env.startLimited(t, dovecot.Limits{Handshake: 300 * time.Millisecond}, nil)
	const n = 1000
	idle := make([]net.Conn, n)
	for i := range idle {
		nc, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		idle[i] = nc
	}
	// A real login is served at once meanwhile.
	c := dial(t, path)
	c.handshake()
	c.send(fmt.Sprintf(alicePlain, 1))
	if got := c.readLine(2 * time.Second); !strings.HasPrefix(got, "OK\t1\t") {
		t.Fatalf("login next to 1000 idle connections: %q", got)
	}
	// Every idle one is closed: reading drains the handshake, then EOF.
	buf := make([]byte, 4096)
	for i, nc := range idle {
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, err := nc.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("idle connection %d still open after the handshake deadline", i)
				}
				break
			}
		}
	}
	// The handshaken connection, idle much longer than the deadline
	// between its requests, is not cut.
	time.Sleep(500 * time.Millisecond)
	c.send(fmt.Sprintf(alicePlain, 2))
	if got := c.readLine(2 * time.Second); !strings.HasPrefix(got, "OK\t2\t") {
		t.Fatalf("idle client after its handshake: %q", got)
	}
}

func TestDribblerCutByLineDeadline(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	path := env.startLimited(t, dovecot.Limits{Line: 400 * time.Millisecond}, nil)
	c := dial(t, path)
	c.handshake()
	line := fmt.Sprintf(alicePlain, 1)
	start := time.Now()
	for i := 0; i < len(line); i++ {
		if _, err := c.nc.Write([]byte{line[i]}); err != nil {
			break // closed: what we want
		}
		time.Sleep(100 * time.Millisecond)
		if time.Since(start) > 5*time.Second {
			t.Fatal("a dribbling client was not cut")
		}
	}
	if got := c.readLine(2 * time.Second); got != "<closed>" {
		t.Fatalf("dribbler: %q, want the connection closed", got)
	}
}

func TestConnectionCap(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	path := env.startLimited(t, dovecot.Limits{MaxConns: 5}, nil)
	var conns []*conn
	for range 5 {
		c := dial(t, path)
		c.handshake()
		conns = append(conns, c)
	}
	before := env.shared.Stats.Refused.Load()
	extra := dial(t, path)
	if got := extra.readLine(2 * time.Second); got != "<closed>" {
		t.Fatalf("connection over the cap: %q, want closed", got)
	}
	if env.shared.Stats.Refused.Load() != before+1 {
		t.Error("the refusal was not counted")
	}
	conns[0].send(fmt.Sprintf(alicePlain, 1))
	if got := conns[0].readLine(2 * time.Second); !strings.HasPrefix(got, "OK\t1\t") {
		t.Fatalf("established connection: %q", got)
	}
	conns[1].nc.Close()
	// Give the server a moment to see the close, then a new one fits.
	deadline := time.Now().Add(2 * time.Second)
	for {
		c := dial(t, path)
		if l := c.readLine(time.Second); l != "<closed>" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no room after a connection closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPendingCap(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	path := env.startLimited(t, dovecot.Limits{MaxPending: 2}, nil)
	c := dial(t, path)
	c.handshake()
	// LOGIN without an initial response waits for the user name.
	c.send("AUTH\t1\tLOGIN\tservice=imap")
	c.send("AUTH\t2\tLOGIN\tservice=imap")
	c.send("AUTH\t3\tLOGIN\tservice=imap")
	got := map[string]bool{}
	for range 3 {
		got[c.readLine(2*time.Second)] = true
	}
	if !got["FAIL\t3\tcode=temp_fail\treason=Too many requests in progress"] || !got["CONT\t1\tVXNlcm5hbWU6"] {
		t.Fatalf("replies %v", got)
	}
	c.send("CANCEL\t1")
	c.send("AUTH\t4\tLOGIN\tservice=imap")
	if l := c.readLine(2 * time.Second); l != "CONT\t4\tVXNlcm5hbWU6" {
		t.Fatalf("after CANCEL: %q", l)
	}
}

// A client that pipelines without reading stops being read once its
// unread replies pass the limit: authd's memory stays bounded, and other
// clients are served.
func TestPipeliningClientThatNeverReads(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	path := env.startLimited(t, dovecot.Limits{}, nil)
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprint(nc, "VERSION\t1\t2\nCPID\t99\n")
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var line strings.Builder
	for i := 1; i <= 200; i++ {
		fmt.Fprintf(&line, alicePlain+"\n", i)
	}
	block := []byte(line.String())
	sent := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 500 { // 100,000 requests, if authd kept reading
			_ = nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := nc.Write(block); err != nil {
				return // authd stopped reading: the kernel buffers filled
			}
			sent++
		}
	}()
	<-done
	if sent == 500 {
		t.Fatal("authd read all 100,000 requests of a client that reads nothing")
	}
	other := dial(t, path)
	other.handshake()
	other.send(fmt.Sprintf(alicePlain, 1))
	if got := other.readLine(2 * time.Second); !strings.HasPrefix(got, "OK\t1\t") {
		t.Fatalf("another client: %q", got)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 32<<20 {
		t.Errorf("heap grew by %d MiB", grew>>20)
	}
}

// slowEngine answers every PLAIN login only after its context ends, and
// then some: a backend that ignores its deadline.
type slowEngine struct {
	dovecot.ClientEngine
	mu    sync.Mutex
	calls int
}

func (s *slowEngine) VerifyPlain(ctx context.Context, info *engine.Info, authzid, authcid string, pw []byte) engine.Result {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	<-ctx.Done()
	time.Sleep(300 * time.Millisecond)
	return engine.Result{Status: engine.StatusOK, User: authcid}
}

func TestRequestDeadline(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	path := env.startLimited(t, dovecot.Limits{Request: 200 * time.Millisecond}, &slowEngine{ClientEngine: env.eng})
	// The step returns 300 ms after its context ended: its late answer is
	// dropped.
	expectOverdue(t, path, 2*time.Second, 700*time.Millisecond)
	if env.shared.Stats.Overdue.Load() != 1 {
		t.Error("the overdue request was not counted")
	}
}

// expectOverdue sends a login that the engine answers too late and
// expects the temporary failure within before, then nothing more for
// quiet.
func expectOverdue(t *testing.T, path string, before, quiet time.Duration) {
	t.Helper()
	c := dial(t, path)
	c.handshake()
	start := time.Now()
	c.send(fmt.Sprintf(alicePlain, 1))
	if got := c.readLine(3 * time.Second); got != "FAIL\t1\tcode=temp_fail" {
		t.Fatalf("overdue request: %q", got)
	}
	if d := time.Since(start); d >= before {
		t.Errorf("answered after %v, deadline 200ms", d)
	}
	if got := c.readLine(quiet); got != "<timeout>" {
		t.Fatalf("after the temporary failure: %q", got)
	}
}

// pollingEngine answers a PLAIN login after a fixed time and never waits
// on its context, only asks it for an error now and then: a backend stuck
// in calls without a deadline of their own. expired says whether it saw
// the deadline pass.
type pollingEngine struct {
	dovecot.ClientEngine
	d       time.Duration
	expired chan bool
}

func (b pollingEngine) VerifyPlain(ctx context.Context, info *engine.Info, authzid, authcid string, pw []byte) engine.Result {
	saw := false
	for end := time.Now().Add(b.d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		saw = saw || errors.Is(ctx.Err(), context.DeadlineExceeded)
	}
	b.expired <- saw
	return engine.Result{Status: engine.StatusOK, User: authcid}
}

// A step that never waits on its context is answered at its deadline all
// the same (before it returns), and its context reports the deadline
// passed to a backend that polls.
func TestRequestDeadlineIgnored(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	eng := pollingEngine{ClientEngine: env.eng, d: time.Second, expired: make(chan bool, 1)}
	path := env.startLimited(t, dovecot.Limits{Request: 200 * time.Millisecond}, eng)
	expectOverdue(t, path, time.Second, 1500*time.Millisecond)
	select {
	case saw := <-eng.expired:
		if !saw {
			t.Error("the step's context never said its deadline had passed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the step never returned")
	}
}

// 60,000 lookups on a userdb socket from a client that does not read stay
// within a fixed number of goroutines.
func TestMasterUnreadLookupsBounded(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	path := env.startMaster(t, false)
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	base := runtime.NumGoroutine()
	fmt.Fprint(nc, "VERSION\t1\t0\n")
	var b strings.Builder
	for i := 1; i <= 60000; i++ {
		fmt.Fprintf(&b, "USER\t%d\talice@example.com\tservice=lmtp\n", i)
	}
	_ = nc.SetWriteDeadline(time.Now().Add(3 * time.Second))
	_, _ = nc.Write([]byte(b.String())) // stops when authd stops reading
	time.Sleep(300 * time.Millisecond)
	if n := runtime.NumGoroutine(); n > base+dovecot.DefaultMasterPending+50 {
		t.Errorf("%d goroutines for one connection's unread lookups (base %d)", n, base)
	}
}

// aliceWrong is alice with a wrong password.
const aliceWrong = "AUTH\t%d\tPLAIN\tservice=imap\tresp=AGFsaWNlQGV4YW1wbGUuY29tAHdyb25n"

// The failure-delay queue is a bounded tarpit: past Limits.MaxDelayed
// replies waiting in the whole process (both listeners here share one
// Shared), a failure is answered at once, and counted.
func TestDelayQueueBounded(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	const delay = time.Minute // nothing leaves the queue during the test
	eng := env.withDelay(delay)
	var srvs []*dovecot.ClientServer
	var conns []*conn
	for _, name := range []string{"auth-a", "auth-b"} {
		srv := dovecot.NewClientServer(dovecot.ClientConfig{
			Engine: eng, Mechs: []sasl.Def{sasl.Defs["PLAIN"]}, FailureDelay: delay, Shared: env.shared,
			Limits: dovecot.Limits{MaxDelayed: 3},
		})
		path := testenv.ServeUnix(t, filepath.Join(env.dir, name), testenv.Served{Serve: srv.Serve, Shutdown: srv.Shutdown, Run: srv.Run})
		c := dial(t, path)
		c.handshake()
		srvs, conns = append(srvs, srv), append(conns, c)
	}
	held := func() int { return srvs[0].DelayedFailures() + srvs[1].DelayedFailures() }
	for i, c := range conns {
		for id := 1; id <= 2; id++ {
			c.send(fmt.Sprintf(aliceWrong, id))
		}
		want := 2 * (i + 1)
		waitUntil(t, "the failures to be delayed or answered", func() bool {
			return held()+int(env.shared.Stats.DelayOverflow.Load()) == want
		})
	}
	if got := held(); got != 3 {
		t.Fatalf("%d failures held, want the process-wide maximum of 3", got)
	}
	if got := env.shared.Stats.DelayOverflow.Load(); got != 1 {
		t.Fatalf("overflow counted %d times, want 1", got)
	}
	// The one past the cap was answered without waiting its minute.
	if got := conns[1].readLine(10 * time.Second); !strings.HasPrefix(got, "FAIL\t") {
		t.Fatalf("the failure past the cap: %q, want a FAIL at once", got)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
