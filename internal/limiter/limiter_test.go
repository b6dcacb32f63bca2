package limiter

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is an injected clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(t *testing.T, cfg Config) (*Limiter, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.Now = clk.Now
	return New(cfg), clk
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// fail runs one failed attempt and reports whether it was refused.
func fail(l *Limiter, account, addr, password string) bool {
	r := Request{Account: account, Password: []byte(password)}
	if addr != "" {
		r.IP = ip(addr)
	}
	a := l.Begin(r)
	a.Done(Failed)
	return a.Refused()
}

func succeed(l *Limiter, account, addr, password string) bool {
	r := Request{Account: account, Password: []byte(password)}
	if addr != "" {
		r.IP = ip(addr)
	}
	a := l.Begin(r)
	if a.Refused() {
		a.Done(Failed)
		return false
	}
	a.Done(Succeeded)
	return true
}

func TestIPBudgetSlides(t *testing.T) {
	l, clk := newTest(t, Config{})
	for i := range 20 {
		if fail(l, fmt.Sprintf("u%d", i), "192.0.2.1", "pw") {
			t.Fatalf("failure %d refused", i+1)
		}
	}
	// The 21st attempt is refused, even with the right password of an
	// account that has never failed.
	if succeed(l, "fresh", "192.0.2.1", "right") {
		t.Fatal("the 21st attempt from the address went through")
	}
	if st := l.Stats(); st.Refusals[KindIP] != 1 || st.Blocks[KindIP] != 1 {
		t.Errorf("stats %+v", st)
	}
	// Another address of the same /24 is not refused.
	if !succeed(l, "fresh", "192.0.2.2", "right") {
		t.Fatal("a neighbour was refused")
	}
	// The window slides: after 10 minutes the failures are forgotten.
	clk.Advance(9 * time.Minute)
	if succeed(l, "fresh2", "192.0.2.1", "right") {
		t.Fatal("refused key released too early")
	}
	clk.Advance(2 * time.Minute)
	if !succeed(l, "fresh2", "192.0.2.1", "right") {
		t.Fatal("refused key not released after its window")
	}
}

func TestPrefixBudget(t *testing.T) {
	l, _ := newTest(t, Config{IP: Budget{Failures: 1000, Window: time.Minute}})
	for i := range 100 {
		if fail(l, fmt.Sprintf("u%d", i), fmt.Sprintf("198.51.100.%d", i), "pw") {
			t.Fatalf("failure %d refused", i+1)
		}
	}
	if succeed(l, "x", "198.51.100.200", "pw") {
		t.Fatal("the /24 is not refused after 100 failures")
	}
	if !succeed(l, "x", "198.51.101.1", "pw") {
		t.Fatal("the next /24 is refused")
	}
}

// IPv6: one key per /64, one prefix per /48; an IPv4-mapped address is the
// IPv4 address.
func TestIPv6AndMapped(t *testing.T) {
	l, _ := newTest(t, Config{IP: Budget{Failures: 3, Window: time.Minute}, Prefix: Budget{Failures: 5, Window: time.Minute}})
	for i := range 3 {
		fail(l, fmt.Sprintf("u%d", i), fmt.Sprintf("2001:db8:1:2::%x", i+1), "pw")
	}
	if succeed(l, "x", "2001:db8:1:2:ffff::1", "pw") {
		t.Error("another address of the same /64 is not refused")
	}
	if !succeed(l, "x", "2001:db8:1:3::1", "pw") {
		t.Error("another /64 is refused")
	}
	fail(l, "a", "2001:db8:1:4::1", "pw")
	fail(l, "b", "2001:db8:1:5::1", "pw")
	// (Not "x": its success above made its pair in this /48 known-good.)
	if succeed(l, "y", "2001:db8:1:6::1", "pw") {
		t.Error("the /48 is not refused after 5 failures")
	}
	if !succeed(l, "x", "2001:db8:2::1", "pw") {
		t.Error("another /48 is refused")
	}
	for i := range 3 {
		fail(l, fmt.Sprintf("v%d", i), "::ffff:203.0.113.7", "pw")
	}
	if succeed(l, "x", "203.0.113.7", "pw") {
		t.Error("::ffff:203.0.113.7 and 203.0.113.7 are different keys")
	}
}

// 300 guesses from 300 networks at one account refuse the account; the
// owner from her known-good network keeps logging in, with the pair's own
// budget.
func TestAccountBudgetAndKnownGood(t *testing.T) {
	l, _ := newTest(t, Config{})
	if !succeed(l, "victim", "192.0.2.10", "right") {
		t.Fatal("first login refused")
	}
	for i := range 100 {
		if fail(l, "victim", fmt.Sprintf("2001:db8:%x::1", i), fmt.Sprintf("guess%d", i)) {
			t.Fatalf("guess %d refused", i)
		}
	}
	if succeed(l, "victim", "2001:db8:ffff::1", "right") {
		t.Fatal("the right password from a fresh network logged in during the attack")
	}
	// The owner on her usual network (another address of the /24).
	if !succeed(l, "victim", "192.0.2.99", "right") {
		t.Fatal("the owner was locked out")
	}
	// The known-good pair has its own budget: 10 failures.
	for i := range 10 {
		if fail(l, "victim", "192.0.2.10", fmt.Sprintf("typo%d", i)) {
			t.Fatalf("typo %d refused", i)
		}
	}
	if succeed(l, "victim", "192.0.2.10", "right") {
		t.Fatal("the known-good pair's budget is not applied")
	}
	// Failures from a known-good network do not count for the account:
	// another user's account is unaffected anyway, and the account key
	// counts only the 100 guesses above.
	st := l.List(0)
	for _, k := range st {
		if k.Kind == KindAccount && k.Failures != 100 {
			t.Errorf("account failures %d, want 100", k.Failures)
		}
	}
}

// A neighbour behind the attacker's NAT with a known-good pair logs in.
func TestNATNeighbour(t *testing.T) {
	l, _ := newTest(t, Config{})
	if !succeed(l, "neighbour", "192.0.2.50", "pw") {
		t.Fatal("first login refused")
	}
	for i := range 200 {
		fail(l, fmt.Sprintf("target%d", i%7), "192.0.2.50", fmt.Sprintf("g%d", i))
	}
	if succeed(l, "other", "192.0.2.50", "pw") {
		t.Fatal("the attacking address is not refused")
	}
	if !succeed(l, "neighbour", "192.0.2.50", "pw") {
		t.Fatal("the neighbour with a known-good pair was refused")
	}
}

// The same wrong password counts once per pair: a stale password on one
// device does not block the address for anybody.
func TestRepeatedPassword(t *testing.T) {
	l, _ := newTest(t, Config{})
	for i := range 60 {
		if fail(l, "alice", "192.0.2.7", "stale") {
			t.Fatalf("retry %d refused", i)
		}
	}
	if !succeed(l, "bob", "192.0.2.7", "bobpw") {
		t.Fatal("60 retries of one stale password blocked the address")
	}
	for _, k := range l.List(0) {
		if k.Failures > 1 {
			t.Errorf("%s %s: %d failures, want 1", k.Kind, k.Key, k.Failures)
		}
	}
}

// The pair remembers at most pwSlots passwords.
func TestRepeatedPasswordBounded(t *testing.T) {
	l, _ := newTest(t, Config{})
	for i := range pwSlots + 1 {
		fail(l, "alice", "192.0.2.7", fmt.Sprintf("p%d", i))
	}
	// p0 was forgotten: it counts again.
	fail(l, "alice", "192.0.2.7", "p0")
	for _, k := range l.List(0) {
		if k.Kind == KindIP && k.Failures != pwSlots+2 {
			t.Errorf("ip failures %d, want %d", k.Failures, pwSlots+2)
		}
	}
}

// Attempts are counted when they begin: however many run in parallel,
// no more than the budget go through; successes give their reservation
// back; undecided attempts never count.
func TestReservationUnderConcurrency(t *testing.T) {
	l, _ := newTest(t, Config{})
	var mu sync.Mutex
	admitted := 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var held []*Attempt
			for i := range 20 {
				a := l.Begin(Request{Account: fmt.Sprintf("u%d-%d", c, i), IP: ip("192.0.2.1"), Password: []byte("x")})
				if !a.Refused() {
					mu.Lock()
					admitted++
					mu.Unlock()
				}
				held = append(held, a)
			}
			for _, a := range held {
				a.Done(Failed)
			}
		}()
	}
	close(start)
	wg.Wait()
	if admitted != 20 {
		t.Errorf("%d attempts admitted, want exactly the budget of 20", admitted)
	}

	l2, _ := newTest(t, Config{})
	for range 100 {
		a := l2.Begin(Request{Account: "u", IP: ip("192.0.2.2"), Password: []byte("right")})
		a.Done(Succeeded)
		b := l2.Begin(Request{Account: "v", IP: ip("192.0.2.2")})
		b.Done(Undecided)
	}
	if keys := l2.List(0); len(keys) != 0 {
		t.Errorf("successes and undecided attempts left failures: %+v", keys)
	}
}

// A known-good pair's attempts in flight count against its own budget,
// in the shard's table or, when that is full, its map: an attempt beyond
// the budget waits for one in flight to end rather than being told
// "wrong password"; it goes on when a success ends, and is refused when
// the ones in flight fail and fill the budget.
func TestKnownGoodInFlight(t *testing.T) {
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("table full %v", full), func(t *testing.T) {
			l, _ := newTest(t, Config{InFlightWait: time.Minute})
			if !succeed(l, "owner", "192.0.2.10", "right") {
				t.Fatal("first login refused")
			}
			id := l.keys.id(pairKey("owner", ip("192.0.2.10")))
			s := l.shardOf(id)
			if full {
				for i := range s.flyN {
					s.flyID[i], s.flyN[i] = flyKey(id)+uint32(i)+1, 1
				}
			}
			begin := func(pw string) *Attempt {
				return l.Begin(Request{Account: "owner", IP: ip("192.0.2.10"), Password: []byte(pw)})
			}
			var held []*Attempt
			for i := range 10 {
				a := begin(fmt.Sprintf("pw%d", i))
				if a.Refused() || a.Busy() {
					t.Fatalf("attempt %d in flight refused", i+1)
				}
				held = append(held, a)
			}
			if n, f := inFlight(l, s, id); n != 10 || f != 0 {
				t.Errorf("%d in flight, %d failures; want 10 and 0", n, f)
			}
			got := make(chan *Attempt)
			go func() { got <- begin("eleventh") }()
			waitForWaiter(t, s)
			held[0].Done(Succeeded)
			if a := <-got; a.Refused() || a.Busy() {
				t.Fatal("the attempt that waited for a success to end was not let through")
			} else {
				held[0] = a
			}
			go func() { got <- begin("twelfth") }()
			waitForWaiter(t, s)
			for _, a := range held {
				a.Done(Failed)
			}
			if a := <-got; !a.Refused() || a.RefusedBy() != KindPair {
				t.Fatal("an attempt went through although the ones in flight failed and filled the budget")
			}
			if n, f := inFlight(l, s, id); n != 0 || f != 10 {
				t.Errorf("after: %d in flight, %d failures; want 0 and 10", n, f)
			}
		})
	}
	t.Run("in vain", func(t *testing.T) {
		l, _ := newTest(t, Config{InFlightWait: 20 * time.Millisecond})
		succeed(l, "owner", "192.0.2.10", "right")
		for i := range 10 {
			l.Begin(Request{Account: "owner", IP: ip("192.0.2.10"), Password: []byte(fmt.Sprint(i))})
		}
		a := l.Begin(Request{Account: "owner", IP: ip("192.0.2.10"), Password: []byte("right")})
		if !a.Busy() || a.Refused() {
			t.Fatalf("busy %v, refused %v; want a temporary failure, not a wrong password", a.Busy(), a.Refused())
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var b Attempt
		l.Start(ctx, &b, Request{Account: "owner", IP: ip("192.0.2.10")})
		if !b.Busy() {
			t.Error("an attempt whose request ended kept waiting")
		}
		id := l.keys.id(pairKey("owner", ip("192.0.2.10")))
		if n, f := inFlight(l, l.shardOf(id), id); n != 10 || f != 0 {
			t.Errorf("the busy attempts were counted: %d in flight, %d failures", n, f)
		}
	})
}

// An attempt that waited for a turn while its pair was forgotten (evicted,
// or reset) is no longer known-good: it counts, and is refused, in the
// address's, the network's and the account's budgets.
func TestWaitedPairForgotten(t *testing.T) {
	l, _ := newTest(t, Config{Account: Budget{Failures: 3, Window: time.Hour}, InFlightWait: time.Minute})
	succeed(l, "owner", "192.0.2.10", "right")
	for i := range 3 {
		fail(l, "owner", fmt.Sprintf("198.51.%d.1", i), "guess")
	}
	var held []*Attempt
	for i := range 10 {
		held = append(held, l.Begin(Request{Account: "owner", IP: ip("192.0.2.10"), Password: []byte(fmt.Sprint(i))}))
	}
	id := l.keys.id(pairKey("owner", ip("192.0.2.10")))
	s := l.shardOf(id)
	got := make(chan *Attempt)
	go func() { got <- l.Begin(Request{Account: "owner", IP: ip("192.0.2.10"), Password: []byte("waiting")}) }()
	waitForWaiter(t, s)
	s.mu.Lock()
	s.remove(s.find(id))
	s.mu.Unlock()
	held[0].Done(Undecided)
	if a := <-got; !a.Refused() || a.RefusedBy() != KindAccount {
		t.Fatalf("refused %v by %v: the attempt kept the forgotten pair's exemption", a.Refused(), a.RefusedBy())
	}
	for _, a := range held[1:] {
		a.Done(Undecided)
	}
}

// inFlight is the pair id's attempts in flight and its failures.
func inFlight(l *Limiter, s *shard, id keyID) (flying, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flying(id), s.find(id).win.sum(l.slot(KindPair, l.elapsed()))
}

// flying is how many logins of the pair id are in flight. s.mu is held.
func (s *shard) flying(id keyID) int {
	k := flyKey(id)
	n := 0
	for i, c := range s.flyN {
		if c > 0 && s.flyID[i] == k {
			n = int(c)
			break
		}
	}
	if s.flyOver {
		n += int(s.flyMore[k])
	}
	return n
}

// waitForWaiter returns once an attempt waits for a turn in s.
func waitForWaiter(t *testing.T, s *shard) {
	t.Helper()
	for range 10000 {
		s.mu.Lock()
		w := s.flyWaiting
		s.mu.Unlock()
		if w {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no attempt waits for a turn")
}

// A request without an address is counted by account only.
func TestNoAddress(t *testing.T) {
	l, _ := newTest(t, Config{Account: Budget{Failures: 5, Window: time.Hour}})
	for i := range 5 {
		fail(l, "alice", "", fmt.Sprintf("p%d", i))
	}
	if succeed(l, "alice", "", "right") {
		t.Error("the account is not refused")
	}
	if !succeed(l, "bob", "", "right") {
		t.Error("local requests share one bucket")
	}
}

// A repeated wrong password neither escalates nor gets more than the
// base delay.
func TestRepeatNoEscalation(t *testing.T) {
	l, _ := newTest(t, Config{})
	var levels []int
	for range 5 {
		a := l.Begin(Request{Account: "a", IP: ip("192.0.2.1"), Password: []byte("stale")})
		levels = append(levels, a.Done(Failed))
	}
	a := l.Begin(Request{Account: "a", IP: ip("192.0.2.1"), Password: []byte("other")})
	levels = append(levels, a.Done(Failed))
	if fmt.Sprint(levels) != "[0 0 0 0 0 1]" {
		t.Errorf("levels %v, want [0 0 0 0 0 1]", levels)
	}
}

func TestFailureDelayLevels(t *testing.T) {
	l, clk := newTest(t, Config{})
	var levels []int
	for i := range 6 {
		a := l.Begin(Request{Account: "a", IP: ip("192.0.2.1"), Password: []byte(fmt.Sprint(i))})
		levels = append(levels, a.Done(Failed))
	}
	if fmt.Sprint(levels) != "[0 1 2 3 4 4]" {
		t.Errorf("levels %v", levels)
	}
	clk.Advance(16 * time.Second)
	if lv := l.Begin(Request{Account: "a", IP: ip("192.0.2.1"), Password: []byte("q")}).Done(Failed); lv != 0 {
		t.Errorf("level after 16 quiet seconds: %d, want 0", lv)
	}
	base, limit := 2*time.Second, 8*time.Second
	for _, c := range []struct {
		level int
		want  time.Duration
	}{{0, 2 * time.Second}, {1, 4 * time.Second}, {2, 8 * time.Second}, {3, 8 * time.Second}} {
		if got := FailureDelay(c.level, base, limit); got != c.want {
			t.Errorf("FailureDelay(%d) = %v, want %v", c.level, got, c.want)
		}
	}
}

func TestLogLinesAndReset(t *testing.T) {
	var buf bytes.Buffer
	l, clk := newTest(t, Config{IP: Budget{Failures: 2, Window: time.Minute}, Log: slog.New(slog.NewTextHandler(&buf, nil))})
	fail(l, "a\nforged=1", "192.0.2.1", "secret-password-canary")
	fail(l, "b", "192.0.2.1", "x")
	fail(l, "c", "192.0.2.1", "x")
	fail(l, "d", "192.0.2.1", "x")
	if n := strings.Count(buf.String(), "penalty: refusing attempts"); n != 1 {
		t.Errorf("%d block lines, want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "key=192.0.2.1") {
		t.Errorf("block line does not name the address:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), "canary") || strings.Contains(buf.String(), "\nforged") {
		t.Errorf("log leaks a password or lets a name forge a line:\n%s", buf.String())
	}
	list := l.List(1)
	if len(list) != 1 || !list[0].Refusing || list[0].Key != "192.0.2.1" {
		t.Fatalf("List: %+v", list)
	}
	if n := l.Reset(KindIP, "192.0.2.1"); n != 1 {
		t.Fatalf("Reset: %d", n)
	}
	if !succeed(l, "e", "192.0.2.1", "x") {
		t.Error("still refused after Reset")
	}
	clk.Advance(2 * time.Minute)
	fail(l, "x", "192.0.2.9", "1")
	fail(l, "x", "192.0.2.9", "2")
	fail(l, "x", "192.0.2.9", "3")
	clk.Advance(2 * time.Minute)
	l.sweep()
	if !strings.Contains(buf.String(), "penalty: no longer refusing") {
		t.Errorf("no release line:\n%s", buf.String())
	}
	if n := l.Reset(KindAccount, `"x"`); n != 2 {
		t.Errorf("Reset account: %d keys, want 2 (account and pair)", n)
	}
}

// The oldest keys go first, and the count stays bounded.
func TestEviction(t *testing.T) {
	l, _ := newTest(t, Config{MaxKeys: 64})
	for i := range 1000 {
		fail(l, "", fmt.Sprintf("10.0.%d.%d", i/250, i%250), "x")
	}
	st := l.Stats()
	if st.Keys > 64+shards || st.Evicted == 0 {
		t.Errorf("keys %d evicted %d", st.Keys, st.Evicted)
	}
}

// A refused guess keeps no state: an attacker whose address is refused
// cannot fill the table with (account, network) pairs and push out the
// known-good pair of the owner.
func TestRefusedGuessesKeepNoState(t *testing.T) {
	l, _ := newTest(t, Config{MaxKeys: 64})
	if !succeed(l, "owner", "192.0.2.10", "right") {
		t.Fatal("the owner was refused")
	}
	for i := range DefaultIP.Failures {
		fail(l, "victim", "198.51.100.7", fmt.Sprintf("guess-%d", i))
	}
	before := l.Stats()
	for i := range 10000 {
		if !fail(l, fmt.Sprintf("user%d", i), "198.51.100.7", "guess") {
			t.Fatalf("guess %d over the budget went through", i)
		}
	}
	after := l.Stats()
	if after.Keys != before.Keys || after.Evicted != before.Evicted {
		t.Errorf("refused guesses: keys %d → %d, evicted %d → %d", before.Keys, after.Keys, before.Evicted, after.Evicted)
	}
	if !l.tracked(pairKey("owner", ip("192.0.2.10"))) {
		t.Error("the owner's known-good pair was evicted")
	}
}

func TestWindow(t *testing.T) {
	var w window
	for s := int64(0); s < 12; s++ {
		w.add(s)
	}
	if w.sum(11) != 12 {
		t.Fatalf("sum %d", w.sum(11))
	}
	if w.sum(12) != 11 || w.sum(15) != 8 {
		t.Fatalf("sliding: %d %d", w.sum(12), w.sum(15))
	}
	w.remove(10)
	w.remove(15) // nothing was counted there
	w.remove(3)  // slid out long ago: nothing
	if w.sum(15) != 7 {
		t.Fatalf("after remove: %d", w.sum(15))
	}
	if w.sum(100) != 0 {
		t.Fatal("not empty after a long time")
	}
	// An event older than the window (an attempt that outlasted it) is
	// not counted, in particular not in the slot that reuses its counter.
	w.add(200)
	w.add(200 - slots)
	if w.sum(200) != 1 {
		t.Fatalf("an event older than the window counted: sum %d", w.sum(200))
	}
}

// The caller's clock reading is used as it is, and one from before the
// limiter was made counts at its start.
func TestAttemptAt(t *testing.T) {
	before := time.Now().Add(-time.Hour)
	l := New(Config{IP: Budget{Failures: 1, Window: time.Minute}})
	a := l.Begin(Request{Account: "x", IP: ip("192.0.2.1"), At: before})
	if a.Refused() || a.began != 0 {
		t.Fatalf("refused %v, began %v; want counted at the start", a.Refused(), a.began)
	}
	a.Done(Failed)
	if !l.Begin(Request{Account: "y", IP: ip("192.0.2.1"), At: time.Now()}).Refused() {
		t.Error("the failure counted at the start did not count")
	}
}
