package redisstate_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/blocking"
	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/realserver"
	"github.com/authd-project/authd/internal/redisstate"
	"github.com/authd-project/authd/internal/testenv"
)

// TestMain fails the package's tests when a goroutine outlives them
// (docs/architecture.md, house rule 9).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is one process's share: a client, its limiter and its cache.
type node struct {
	c   *redisstate.Client
	lim *limiter.Limiter
	ca  *cache.Cache
}

// newNode builds a node on addrs and runs its client until the test
// ends.
func newNode(t *testing.T, o redisstate.Options, lc limiter.Config) *node {
	t.Helper()
	if o.CallTimeout == 0 {
		// Generous: the tests run on a loaded machine, and a spurious
		// timeout would open the breaker in the middle of a check.
		o.CallTimeout = 500 * time.Millisecond
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = 50 * time.Millisecond
	}
	c, err := redisstate.New(o)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{c: c, lim: limiter.New(lc), ca: cache.New(cache.Options{MaxBytes: 1 << 20, TTL: time.Hour, NegativeTTL: time.Hour, Fingerprint: true})}
	n.lim.SetShared(c.Limiter(), c.PasswordKey())
	n.ca.SetShared(c.Cache(), cache.SharedOptions{DegradedTTL: time.Second})
	c.Attach(n.ca, n.lim)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = c.Close()
	})
	return n
}

// waitSubscribed waits until every node's subscription is confirmed, so
// that announcements reach them.
func waitSubscribed(t *testing.T, nodes ...*node) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range nodes {
		for n.c.Stats().Resubscribes == 0 {
			if time.Now().After(deadline) {
				t.Fatal("a node never subscribed")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// attempt runs one attempt to its end, including the shared store's
// (batched) part of the end.
func attempt(n *node, account, ip, password string, o limiter.Outcome) bool {
	a := n.lim.Begin(limiter.Request{Account: account, IP: netip.MustParseAddr(ip), Password: []byte(password)})
	ok := !a.Refused()
	if !ok {
		o = limiter.Failed
	}
	a.Done(o)
	for n.c.Up() && n.c.Stats().FinishPending > 0 {
		time.Sleep(time.Millisecond)
	}
	return ok
}

// TestSharedBudget: an address's budget (20 failures) holds exactly
// however the failures are spread over three processes: the 21st attempt
// is refused on every one, even with the right password, and the refusal
// is announced.
func TestSharedBudget(t *testing.T) {
	run := func(t *testing.T, addrs []string) {
		var nodes []*node
		for range 3 {
			nodes = append(nodes, newNode(t, redisstate.Options{Addrs: addrs, KeyPrefix: "t1:"}, limiter.Config{}))
		}
		waitSubscribed(t, nodes...)
		for i := range 20 {
			if !attempt(nodes[i%3], fmt.Sprintf("user%d", i), "198.51.100.7", fmt.Sprintf("wrong%d", i), limiter.Failed) {
				t.Fatalf("failure %d refused", i+1)
			}
		}
		for i, n := range nodes {
			if attempt(n, "fresh", "198.51.100.7", "right", limiter.Succeeded) {
				t.Fatalf("node %d let the 21st attempt through", i)
			}
			if st := n.lim.Stats(); st.Refusals[limiter.KindIP] != 1 {
				t.Errorf("node %d: refusals %v", i, st.Refusals)
			}
		}
		// Another address of the network has its own budget.
		if !attempt(nodes[0], "fresh", "198.51.100.8", "right", limiter.Succeeded) {
			t.Fatal("a neighbour address was refused")
		}
		// The refusal was announced: every node holds it for when Redis
		// cannot be asked.
		waitFor(t, "the refusal announced to every node", func() bool {
			for _, n := range nodes {
				if n.c.Stats().Messages == 0 {
					return false
				}
			}
			return true
		})
		concurrentBudget(t, nodes)
	}
	t.Run("standalone", func(t *testing.T) { run(t, []string{testenv.StartRedis(t, testenv.RedisOptions{}).Addr}) })
	t.Run("cluster", func(t *testing.T) { run(t, testenv.StartRedisCluster(t, testenv.RedisOptions{}).Addrs) })
}

// concurrentBudget: 60 failures from one address, sent at once from 20
// goroutines on each of the nodes, get exactly 20 through.
func concurrentBudget(t *testing.T, nodes []*node) {
	t.Helper()
	var passed atomic.Int64
	var wg sync.WaitGroup
	for i := range 60 {
		n := nodes[i%len(nodes)]
		wg.Go(func() {
			if attempt(n, fmt.Sprintf("par%d", i), "198.51.100.99", fmt.Sprintf("wrong%d", i), limiter.Failed) {
				passed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := passed.Load(); got != 20 {
		t.Fatalf("%d of 60 concurrent failures went through, want exactly 20", got)
	}
	for i, n := range nodes {
		if !n.c.Up() {
			t.Fatalf("node %d's breaker opened: the check was not shared", i)
		}
	}
}

// TestSharedRepeatsAndKnownGood: the same wrong password repeated on
// several processes counts once (with a shared secret), and a success on
// one process makes the pair known-good on the others, whose own budget
// then applies instead of the account's.
func TestSharedRepeatsAndKnownGood(t *testing.T) {
	r := testenv.StartRedis(t, testenv.RedisOptions{})
	o := redisstate.Options{Addrs: []string{r.Addr}, KeyPrefix: "t2:", Secret: []byte("0123456789abcdef-shared")}
	lc := limiter.Config{Account: limiter.Budget{Failures: 3, Window: time.Hour}}
	a, b := newNode(t, o, lc), newNode(t, o, lc)
	for i := range 6 {
		n := []*node{a, b}[i%2]
		if !attempt(n, "carol", fmt.Sprintf("203.0.113.%d", i+1), "stale", limiter.Failed) {
			t.Fatalf("repeat %d of one wrong password refused", i+1)
		}
	}
	// Two new wrong passwords fill the account's budget of 3 (the
	// repeated one counted once) ...
	for i, pw := range []string{"guess1", "guess2"} {
		if !attempt(a, "carol", "203.0.113.50", pw, limiter.Failed) {
			t.Fatalf("guess %d refused", i+1)
		}
	}
	if attempt(b, "carol", "203.0.113.51", "guess3", limiter.Failed) {
		t.Fatal("the account's fourth distinct failure went through")
	}
	// ... but carol logged in from 192.0.2.0/24 before, on a: b knows.
	r2 := testenv.StartRedis(t, testenv.RedisOptions{})
	o.Addrs, o.KeyPrefix = []string{r2.Addr}, "t3:"
	a, b = newNode(t, o, lc), newNode(t, o, lc)
	if !attempt(a, "dave", "192.0.2.10", "right", limiter.Succeeded) {
		t.Fatal("first login refused")
	}
	for i := range 3 {
		attempt(a, "dave", fmt.Sprintf("203.0.113.%d", 60+i), fmt.Sprintf("g%d", i), limiter.Failed)
	}
	if attempt(a, "dave", "203.0.113.70", "g9", limiter.Failed) {
		t.Fatal("the attacked account's budget did not hold")
	}
	if !attempt(b, "dave", "192.0.2.11", "right", limiter.Succeeded) {
		t.Fatal("the owner, from a network known-good on another process, was locked out")
	}
}

// TestSharedCache: an answer fetched on one process is a second-level hit
// on another; a flush on one makes the others drop their entry before
// its next use; a record with a plaintext password is kept only sealed.
func TestSharedCache(t *testing.T) {
	r := testenv.StartRedis(t, testenv.RedisOptions{})
	o := redisstate.Options{Addrs: []string{r.Addr}, KeyPrefix: "t4:"}
	a, b := newNode(t, o, limiter.Config{}), newNode(t, o, limiter.Config{})
	waitSubscribed(t, a, b)
	var calls atomic.Int64
	pw := "{SHA512-CRYPT}$6$salt$hash"
	fetch := func(ctx context.Context) (cache.Entry, error) {
		calls.Add(1)
		return cache.Entry{HasPassword: true, Scheme: "SHA512-CRYPT", Data: pw}, nil
	}
	get := func(n *node) *cache.Entry {
		t.Helper()
		ans, err := n.ca.Get(t.Context(), "P1\talice", false, time.Second, fetch)
		if err != nil {
			t.Fatal(err)
		}
		return ans.Entry
	}
	get(a)
	get(b)
	if calls.Load() != 1 || b.ca.SharedStats().Hits != 1 {
		t.Fatalf("backend calls %d, b's shared hits %d: want 1 and 1", calls.Load(), b.ca.SharedStats().Hits)
	}
	get(b)
	if calls.Load() != 1 || b.ca.Stats().Hits != 1 {
		t.Fatalf("b's repeat was not an L1 hit: %+v", b.ca.Stats())
	}
	pw = "{SHA512-CRYPT}$6$salt$changed"
	if _, err := a.ca.FlushShared(t.Context(), []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	// No waiting for the announcement: the generation check alone must
	// keep b from using its entry.
	if e := get(b); e.Data != pw || calls.Load() != 2 {
		t.Fatalf("after the flush b answered %q with %d backend calls", e.Data, calls.Load())
	}
	// Plaintext: not kept without a secret ...
	plain := func(ctx context.Context) (cache.Entry, error) {
		calls.Add(1)
		return cache.Entry{HasPassword: true, Scheme: "PLAIN", Data: "s3cret-plain"}, nil
	}
	before := calls.Load()
	for _, n := range []*node{a, b} {
		if _, err := n.ca.Get(t.Context(), "P1\tbob", false, time.Second, plain); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load()-before != 2 {
		t.Fatalf("a PLAIN record was shared without a secret")
	}
	// ... and sealed with one: shared, and not readable in Redis.
	o.KeyPrefix, o.Secret = "t5:", []byte("0123456789abcdef-shared")
	c, d := newNode(t, o, limiter.Config{}), newNode(t, o, limiter.Config{})
	before = calls.Load()
	for _, n := range []*node{c, d} {
		if _, err := n.ca.Get(t.Context(), "P1\tbob", false, time.Second, plain); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load()-before != 1 {
		t.Fatalf("a sealed PLAIN record was not shared")
	}
	keys, err := realserver.RedisDo(t.Context(), r.Addr, "", "KEYS", "t5:*")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		v, _ := realserver.RedisDo(t.Context(), r.Addr, "", "GET", k)
		if strings.Contains(strings.Join(v, ""), "s3cret-plain") {
			t.Fatalf("the password is readable in Redis under %s", k)
		}
	}
}

// TestOutage: a hung Redis costs the first call its deadline and nothing
// after; the limiter keeps refusing on its own; a flush made meanwhile
// reaches the other process once Redis answers again; a restarted
// (empty) Redis invalidates every entry fetched before.
func TestOutage(t *testing.T) {
	r := testenv.StartRedis(t, testenv.RedisOptions{})
	o := redisstate.Options{Addrs: []string{r.Addr}, KeyPrefix: "t6:", CallTimeout: 50 * time.Millisecond}
	lc := limiter.Config{IP: limiter.Budget{Failures: 5, Window: time.Hour}}
	a, b := newNode(t, o, lc), newNode(t, o, lc)
	waitSubscribed(t, a, b)
	var calls atomic.Int64
	fetch := func(context.Context) (cache.Entry, error) {
		calls.Add(1)
		return cache.Entry{HasPassword: true, Scheme: "SHA512-CRYPT", Data: "$6$x"}, nil
	}
	for _, n := range []*node{a, b} {
		if _, err := n.ca.Get(t.Context(), "P1\terin", false, time.Second, fetch); err != nil {
			t.Fatal(err)
		}
	}
	r.Pause()
	start := time.Now()
	attempt(a, "x", "192.0.2.1", "w0", limiter.Failed)
	first := time.Since(start)
	if a.c.Up() {
		t.Fatal("the breaker did not open on a hung Redis")
	}
	start = time.Now()
	for i := 1; i < 5; i++ {
		attempt(a, "x", "192.0.2.1", fmt.Sprintf("w%d", i), limiter.Failed)
	}
	t.Logf("hung Redis: first attempt %v, next four %v", first, time.Since(start))
	if attempt(a, "x", "192.0.2.1", "w9", limiter.Failed) {
		t.Fatal("with Redis down the limiter let the sixth failure through")
	}
	if _, err := a.ca.FlushShared(t.Context(), []string{"erin"}); !errors.Is(err, redisstate.ErrUnavailable) {
		t.Fatalf("flush while Redis is hung: %v", err)
	}
	r.Resume()
	waitFor(t, "both breakers closed", func() bool {
		b.ca.Get(t.Context(), "P1\tother", false, time.Second, fetch) // a call, so that b notices
		return a.c.Up() && b.c.Up() && a.c.Stats().Outbox == 0 && a.lim.PendingReplay() == 0
	})
	// The outbox delivered the flush: erin's generation moved.
	if out, err := realserver.RedisDo(t.Context(), r.Addr, "", "GET", "t6:c:{u:erin}:g"); err != nil || len(out) != 1 || out[0] != "1" {
		t.Fatalf("erin's generation after the outage: %q %v", out, err)
	}
	before := calls.Load()
	if _, err := b.ca.Get(t.Context(), "P1\terin", false, time.Second, fetch); err != nil {
		t.Fatal(err)
	}
	if calls.Load() == before {
		t.Fatalf("b answered from an entry flushed during the outage: %+v", b.ca.SharedStats())
	}
	// The five failures counted alone are now in Redis: the other
	// process refuses the address too.
	if attempt(b, "y", "192.0.2.1", "w10", limiter.Failed) {
		t.Fatal("failures counted during the outage were not replayed")
	}
}

// TestGiveBackHeldAcrossOutage: attempts counted in Redis that succeed
// while the breaker is open give their counts back once Redis answers
// again. Dropped, each give-back would stay there as a failure, and
// enough of them would refuse the owner with the right password.
func TestGiveBackHeldAcrossOutage(t *testing.T) {
	r := testenv.StartRedis(t, testenv.RedisOptions{})
	o := redisstate.Options{Addrs: []string{r.Addr}, KeyPrefix: "t9:", CallTimeout: 50 * time.Millisecond}
	a := newNode(t, o, limiter.Config{})
	waitSubscribed(t, a)
	count := func() int {
		out, err := realserver.RedisDo(t.Context(), r.Addr, "", "HGETALL", "t9:bf:{a:gina}")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i := 0; i+1 < len(out); i += 2 {
			if strings.HasPrefix(out[i], "s") {
				v, _ := strconv.Atoi(out[i+1])
				n += v
			}
		}
		return n
	}
	var atts []*limiter.Attempt
	for range 3 {
		at := a.lim.Begin(limiter.Request{Account: "gina", IP: netip.MustParseAddr("192.0.2.60"), Password: []byte("right")})
		if at.Refused() {
			t.Fatal("a first attempt was refused")
		}
		atts = append(atts, at)
	}
	if c := count(); c != 3 {
		t.Fatalf("Redis counted %d attempts for gina's account, want 3", c)
	}
	r.Pause()
	attempt(a, "trip", "198.51.100.7", "x", limiter.Failed) // waits out the deadline: the breaker opens
	if a.c.Up() {
		t.Fatal("the breaker did not open on a hung Redis")
	}
	for _, at := range atts {
		at.Done(limiter.Succeeded)
	}
	if st := a.c.Stats(); st.HeldGiveBacks != 3 {
		t.Fatalf("%d give-backs held during the outage, want 3", st.HeldGiveBacks)
	}
	r.Resume()
	waitFor(t, "gina's counts given back after the outage", func() bool { return a.c.Up() && count() == 0 })
}

// TestResubscribeEmptiesL1: when a process's subscription is broken and
// made again, it empties its local cache (flushes announced in between
// were missed), without the breaker being involved.
func TestResubscribeEmptiesL1(t *testing.T) {
	r := testenv.StartRedis(t, testenv.RedisOptions{})
	n := newNode(t, redisstate.Options{Addrs: []string{r.Addr}, KeyPrefix: "t7:"}, limiter.Config{})
	waitSubscribed(t, n)
	fetch := func(context.Context) (cache.Entry, error) {
		return cache.Entry{HasPassword: true, Scheme: "SHA512-CRYPT", Data: "$6$x"}, nil
	}
	for _, u := range []string{"P1\talice", "P1\tbob"} {
		if _, err := n.ca.Get(t.Context(), u, false, time.Second, fetch); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.ca.Stats().Entries; got != 2 {
		t.Fatalf("%d entries cached, want 2", got)
	}
	if _, err := realserver.RedisDo(t.Context(), r.Addr, "", "CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscription made again", func() bool { return n.c.Stats().Resubscribes >= 2 })
	if got := n.ca.Stats().Entries; got != 0 {
		t.Fatalf("%d entries left in L1 after the resubscription", got)
	}
	if !n.c.Up() {
		t.Fatal("the breaker opened")
	}
}

// TestWrongPassword: a Redis that refuses the client's password opens the
// breaker (every call would fail) and the limiter counts alone; nothing
// is retried until a probe succeeds.
func TestWrongPassword(t *testing.T) {
	r := testenv.StartRedis(t, testenv.RedisOptions{Password: "right-one"})
	lc := limiter.Config{IP: limiter.Budget{Failures: 3, Window: time.Hour}}
	for _, pw := range []string{"", "wrong-one"} {
		n := newNode(t, redisstate.Options{Addrs: []string{r.Addr}, KeyPrefix: "t8:", Password: pw}, lc)
		for i := range 3 {
			if !attempt(n, "x", "192.0.2.9", fmt.Sprintf("w%d", i), limiter.Failed) {
				t.Fatalf("password %q: failure %d refused", pw, i+1)
			}
		}
		if n.c.Up() {
			t.Fatalf("password %q: the breaker is closed although Redis refuses every call: %+v", pw, n.c.Stats())
		}
		if attempt(n, "x", "192.0.2.9", "w9", limiter.Failed) {
			t.Fatalf("password %q: the limiter alone let the fourth failure through", pw)
		}
		if st := n.c.Stats(); st.Opened != 1 {
			t.Fatalf("password %q: the breaker opened %d times, want once", pw, st.Opened)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLeases: a known-good pair's logins are served on a unit of its
// budget the store counted for the process (internal/limiter/lease.go),
// without a call to Redis; the pair's budget (10 failures) still holds
// exactly however its failures are spread over processes that hold
// units; and a wrong password already failed on one process, failing
// again on another's unit, counts once.
func TestLeases(t *testing.T) {
	r := testenv.StartRedis(t, testenv.RedisOptions{})
	o := redisstate.Options{Addrs: []string{r.Addr}, KeyPrefix: "t4:", Secret: []byte("0123456789abcdef-shared")}
	a, b := newNode(t, o, limiter.Config{}), newNode(t, o, limiter.Config{})
	calls := func(n *node) int64 {
		st := n.c.Stats()
		return st.Calls[0] + st.Calls[1] // reserve, finish
	}
	// The first login makes the pair known-good, the second gets a unit
	// on each node; from then on a node's logins cost Redis nothing.
	for _, n := range []*node{a, a, b} {
		if !attempt(n, "erin", "192.0.2.10", "right", limiter.Succeeded) {
			t.Fatal("a login of the owner was refused")
		}
	}
	before := calls(a)
	for range 20 {
		if !attempt(a, "erin", "192.0.2.11", "right", limiter.Succeeded) {
			t.Fatal("a login on the unit was refused")
		}
	}
	if got := calls(a) - before; got != 0 {
		t.Fatalf("20 logins of a known-good pair holding a unit made %d Redis calls, want 0", got)
	}
	// b fails with a stale password on its unit; a, on its own, fails
	// with the same one: the store counts it once. Then distinct guesses
	// alternate; exactly the 9 the budget has left go through.
	for _, n := range []*node{b, a} {
		if !attempt(n, "erin", "192.0.2.12", "stale", limiter.Failed) {
			t.Fatal("a stale password on a unit was refused")
		}
	}
	passed := 0
	for i := range 30 {
		if attempt([]*node{a, b}[i%2], "erin", "192.0.2.13", fmt.Sprintf("guess%d", i), limiter.Failed) {
			passed++
		}
	}
	if passed != 9 {
		t.Fatalf("%d distinct failures went through after the repeated one, want exactly 9 (budget 10)", passed)
	}
	for i, n := range []*node{a, b} {
		if attempt(n, "erin", "192.0.2.14", "right", limiter.Succeeded) {
			t.Fatalf("node %d let the pair log in past its budget", i)
		}
	}
}

// TestLeasedFailureCountedWhenItHappens: a failure on a leased unit is
// counted in the slot where it happens, not in the older one where the
// unit was granted, so it stays in the pair's window for a whole window.
func TestLeasedFailureCountedWhenItHappens(t *testing.T) {
	r := testenv.StartRedis(t, testenv.RedisOptions{})
	o := redisstate.Options{Addrs: []string{r.Addr}, KeyPrefix: "t5:"}
	// Slots of 1 s (the local lease keeps seconds); a unit lives 6 s.
	n := newNode(t, o, limiter.Config{KnownGood: limiter.Budget{Failures: 10, Window: 12 * time.Second}})
	rdb := goredis.NewClient(&goredis.Options{Addr: r.Addr})
	defer rdb.Close()
	slots := func() map[string]string {
		t.Helper()
		keys, err := rdb.Keys(context.Background(), "t5:bf:*:g:*").Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("pair keys %v, %v", keys, err)
		}
		h, err := rdb.HGetAll(context.Background(), keys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for f, v := range h {
			if strings.HasPrefix(f, "s") && v != "0" {
				out[f] = v
			}
		}
		return out
	}
	for range 2 {
		if !attempt(n, "gina", "192.0.2.20", "right", limiter.Succeeded) {
			t.Fatal("a login of the owner was refused")
		}
	}
	granted := slots()
	if len(granted) != 1 {
		t.Fatalf("after the unit's grant the pair counts %v, want one slot with the unit", granted)
	}
	time.Sleep(1100 * time.Millisecond)
	before := n.c.Stats().Calls[0]
	if !attempt(n, "gina", "192.0.2.20", "typo", limiter.Failed) {
		t.Fatal("a failure on the unit was refused")
	}
	if n.c.Stats().Calls[0] != before {
		t.Fatal("the failure did not run on the unit: it asked Redis")
	}
	after := slots()
	for f := range granted {
		if after[f] != "" {
			t.Fatalf("the failure stayed in the unit's slot %s: %v", f, after)
		}
	}
	if len(after) != 1 {
		t.Fatalf("after the failure the pair counts %v, want the failure alone in a later slot", after)
	}
}

// announceCount is a blocking.Hook that counts announcements.
type announceCount struct{ n atomic.Int32 }

func (h *announceCount) WillBlock() { h.n.Add(1) }

type announceCtx struct {
	context.Context
	h *announceCount
}

// Done counts too: a wait on the context announces itself, as the client
// socket's step context makes it.
func (c announceCtx) Done() <-chan struct{} {
	c.h.WillBlock()
	return c.Context.Done()
}

func (c announceCtx) Value(key any) any {
	if _, ok := key.(blocking.Key); ok {
		return c.h
	}
	return c.Context.Value(key)
}

// An L1 hit's check of the flush sequence waits for a shared read without
// watching the caller's context; it announces the wait first, so that a
// caller running the login on a connection's reader hands the reading on
// (internal/blocking).
func TestFlushSeqWaitAnnounced(t *testing.T) {
	r := testenv.StartRedis(t, testenv.RedisOptions{})
	n := newNode(t, redisstate.Options{Addrs: []string{r.Addr}, KeyPrefix: "t9:"}, limiter.Config{})
	waitSubscribed(t, n)
	fetch := func(context.Context) (cache.Entry, error) {
		return cache.Entry{HasPassword: true, Scheme: "PLAIN", Data: "pw"}, nil
	}
	// The first stores the entry, the second finds its generation
	// current, the third only reads the flush sequence.
	for range 2 {
		if _, err := n.ca.Get(t.Context(), "P1\talice", false, time.Second, fetch); err != nil {
			t.Fatal(err)
		}
	}
	h := &announceCount{}
	ans, err := n.ca.Get(announceCtx{Context: t.Context(), h: h}, "P1\talice", false, time.Second, fetch)
	if err != nil || ans.Source != cache.Fresh {
		t.Fatalf("the repeat: %+v, %v; want an L1 hit", ans, err)
	}
	if h.n.Load() == 0 {
		t.Error("the L1 hit waited for the flush sequence without announcing it")
	}
}

// burst runs n logins of one pair at once, spread over nodes, each in
// flight for hold before it ends with o; it returns how many were let
// through, refused, and answered Busy.
func burst(nodes []*node, n int, account, ip string, hold time.Duration, o limiter.Outcome, password func(i int) string) (through, refused, busy int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		nd := nodes[i%len(nodes)]
		wg.Go(func() {
			a := nd.lim.Begin(limiter.Request{Account: account, IP: netip.MustParseAddr(ip), Password: []byte(password(i))})
			mu.Lock()
			switch {
			case a.Busy():
				busy++
			case a.Refused():
				refused++
			default:
				through++
			}
			mu.Unlock()
			switch {
			case a.Busy():
				a.Done(limiter.Undecided)
			case a.Refused():
				a.Done(limiter.Failed)
			default:
				time.Sleep(hold)
				a.Done(o)
			}
		})
	}
	wg.Wait()
	for _, nd := range nodes {
		for nd.c.Up() && nd.c.Stats().FinishPending > 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return through, refused, busy
}

// TestOwnerBurstAcrossHosts: thirty logins of one known-good pair at once,
// spread over two processes that hold units of its budget, all log in:
// the pair's logins in flight count apart from its failures in Redis too,
// and those beyond its budget wait for a turn rather than being refused
// as if they had failed. Thirty guesses at once from the same pair still
// get no more than its ten failures verified, and then the pair refuses.
func TestOwnerBurstAcrossHosts(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		ownerBurst(t, []string{testenv.StartRedis(t, testenv.RedisOptions{}).Addr})
	})
	t.Run("cluster", func(t *testing.T) { ownerBurst(t, testenv.StartRedisCluster(t, testenv.RedisOptions{}).Addrs) })
}

func ownerBurst(t *testing.T, addrs []string) {
	o := redisstate.Options{Addrs: addrs, KeyPrefix: "t7:", Secret: []byte("0123456789abcdef-shared")}
	a, b := newNode(t, o, limiter.Config{}), newNode(t, o, limiter.Config{})
	nodes := []*node{a, b}
	for _, n := range []*node{a, b, a, b} {
		if !attempt(n, "hana", "192.0.2.30", "right", limiter.Succeeded) {
			t.Fatal("a login of the owner was refused")
		}
	}
	right := func(int) string { return "right" }
	through, refused, busy := burst(nodes, 30, "hana", "192.0.2.31", 30*time.Millisecond, limiter.Succeeded, right)
	if through != 30 {
		t.Fatalf("30 logins of the owner at once: %d through, %d refused, %d busy; want all through", through, refused, busy)
	}
	guess := func(i int) string { return fmt.Sprintf("guess%d", i) }
	through, refused, busy = burst(nodes, 30, "hana", "192.0.2.32", 30*time.Millisecond, limiter.Failed, guess)
	t.Logf("30 guesses at once: %d verified, %d refused, %d busy", through, refused, busy)
	if through > 10 || through == 0 {
		t.Fatalf("30 guesses at once: %d verified (%d refused, %d busy); want at most the pair's 10", through, refused, busy)
	}
	for i, n := range nodes {
		if attempt(n, "hana", "192.0.2.33", "right", limiter.Succeeded) {
			t.Fatalf("node %d let the pair log in past its budget", i)
		}
	}
}

// TestLoginsInFlightAgeOut: Redis's count of a pair's logins in flight
// (what a process that died mid-login leaves behind) is dropped after a
// few minutes; while it is there and fills the budget, a login of the
// pair waits, and waiting in vain is a temporary failure, not a refusal.
func TestLoginsInFlightAgeOut(t *testing.T) {
	r := testenv.StartRedis(t, testenv.RedisOptions{})
	o := redisstate.Options{Addrs: []string{r.Addr}, KeyPrefix: "t8:"}
	lc := limiter.Config{InFlightWait: 150 * time.Millisecond}
	if !attempt(newNode(t, o, lc), "ida", "192.0.2.40", "right", limiter.Succeeded) {
		t.Fatal("first login refused")
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: r.Addr})
	defer rdb.Close()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "t8:bf:*:g:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("pair keys %v, %v", keys, err)
	}
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	minute := now.UnixMilli() / 60000
	// Ten logins in flight counted an hour ago: gone.
	old := "f" + strconv.FormatInt(minute-60, 10)
	rdb.HSet(ctx, keys[0], old, 10)
	if !attempt(newNode(t, o, lc), "ida", "192.0.2.41", "right", limiter.Succeeded) {
		t.Fatal("a login was refused behind logins in flight an hour old")
	}
	if n, _ := rdb.HExists(ctx, keys[0], old).Result(); n {
		t.Fatal("the hour-old count of logins in flight was kept")
	}
	// Ten in flight now: the next login waits, then gives up as busy.
	rdb.HSet(ctx, keys[0], "f"+strconv.FormatInt(minute, 10), 10)
	n := newNode(t, o, lc)
	a := n.lim.Begin(limiter.Request{Account: "ida", IP: netip.MustParseAddr("192.0.2.42"), Password: []byte("right")})
	defer a.Done(limiter.Undecided)
	if !a.Busy() || a.Refused() {
		t.Fatalf("busy %v, refused %v behind a budget full of logins in flight: want busy", a.Busy(), a.Refused())
	}
}
