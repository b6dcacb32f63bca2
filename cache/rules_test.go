package cache

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errDown = errors.New("server down")

// fetcher is a backend for Get: it answers with e (or err) and counts
// its calls.
type fetcher struct {
	e     Entry
	err   error
	calls int
}

func (f *fetcher) fn(context.Context) (Entry, error) {
	f.calls++
	return f.e, f.err
}

func TestGetRules(t *testing.T) {
	clk := newClock()
	c := testCache(t, clk, Options{TTL: time.Minute, NegativeTTL: time.Minute})
	ctx := context.Background()
	f := &fetcher{e: pos("h1")}
	get := func(force bool) (Answer, error) { return c.Get(ctx, "k", force, time.Second, f.fn) }

	if a, err := get(false); err != nil || a.Source != FromBackend || a.Entry.Data != "h1" || f.calls != 1 {
		t.Fatalf("miss: %+v %v, %d calls", a, err, f.calls)
	}
	if a, err := get(false); err != nil || a.Source != Fresh || f.calls != 1 {
		t.Fatalf("hit: %+v %v, %d calls", a, err, f.calls)
	}
	f.e = pos("h2")
	if a, err := get(true); err != nil || a.Source != FromBackend || a.Entry.Data != "h2" || f.calls != 2 {
		t.Fatalf("forced: %+v %v, %d calls", a, err, f.calls)
	}
	// A forced Get is not a use of the entry: one hit, one miss so far.
	if st := c.Stats(); st.Hits != 1 || st.Misses != 1 {
		t.Errorf("stats %+v, want 1 hit and 1 miss", st)
	}

	// An outage: a fresh entry still answers; an expired one stands in,
	// and says why.
	f.err = errDown
	if a, err := get(false); err != nil || a.Source != Fresh {
		t.Fatalf("outage, fresh: %+v %v", a, err)
	}
	clk.Advance(2 * time.Minute)
	a, err := get(false)
	if err != nil || a.Source != Stale || a.Entry.Data != "h2" || !errors.Is(a.BackendErr, errDown) {
		t.Fatalf("outage, expired: %+v %v", a, err)
	}
	if st := c.Stats(); st.StaleHits != 1 {
		t.Errorf("stale hits %d, want 1", st.StaleHits)
	}
	if _, err := c.Get(ctx, "other", false, time.Second, f.fn); !errors.Is(err, errDown) {
		t.Fatalf("outage, nothing cached: %v", err)
	}
}

// A refusal is the backend's answer: handed out, never stored, never
// replaced by an expired entry, and it leaves the stored entry alone.
func TestGetRefusal(t *testing.T) {
	clk := newClock()
	c := testCache(t, clk, Options{TTL: time.Minute, NegativeTTL: time.Minute})
	ctx := context.Background()
	f := &fetcher{e: pos("h1")}
	if _, err := c.Get(ctx, "k", false, time.Second, f.fn); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	f.e = Entry{Refusal: 3}
	a, err := c.Get(ctx, "k", false, time.Second, f.fn)
	if err != nil || a.Source != FromBackend || a.Entry.Refusal != 3 {
		t.Fatalf("refusal: %+v %v", a, err)
	}
	if e, _, found := c.Lookup("k"); !found || e.Data != "h1" || e.Refusal != 0 {
		t.Fatalf("the refusal replaced the entry: %+v %v", e, found)
	}
	c.Store("r", Entry{Refusal: 1})
	if _, _, found := c.Lookup("r"); found {
		t.Error("Store kept a refusal")
	}
}

func TestGetNilCache(t *testing.T) {
	var c *Cache
	f := &fetcher{e: pos("h1")}
	for range 2 {
		a, err := c.Get(context.Background(), "k", false, time.Second, f.fn)
		if err != nil || a.Source != FromBackend || a.Entry.Data != "h1" {
			t.Fatalf("%+v %v", a, err)
		}
	}
	if f.calls != 2 {
		t.Errorf("%d backend calls, want 2", f.calls)
	}
}

// checker counts scheme verifications.
type checker struct {
	right string
	err   error
	calls int
}

func (v *checker) verify(pw []byte) func() (bool, error) {
	return func() (bool, error) {
		v.calls++
		return string(pw) == v.right, v.err
	}
}

func TestCheckPassword(t *testing.T) {
	clk := newClock()
	c := testCache(t, clk, Options{TTL: time.Hour, NegativeTTL: time.Hour, Fingerprint: true})
	c.Store("k", pos("h1"))
	e, _, _ := c.Lookup("k")
	v := &checker{right: "secret"}
	check := func(pw string, fromCache bool) Verdict {
		t.Helper()
		got, err := c.CheckPassword("k", e, fromCache, []byte(pw), v.verify([]byte(pw)))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := check("secret", false); got != Right || v.calls != 1 {
		t.Fatalf("first: %v after %d verifies", got, v.calls)
	}
	if got := check("secret", true); got != Right || v.calls != 1 {
		t.Fatalf("repeat: %v after %d verifies, want the fingerprint to answer", got, v.calls)
	}
	// The last check succeeded: a mismatch may be a changed password.
	if got := check("wrong", true); got != Recheck {
		t.Fatalf("wrong after a success: %v, want Recheck", got)
	}
	if got := check("wrong", true); got != Wrong {
		t.Fatalf("wrong again: %v, want Wrong", got)
	}
	// From the backend itself there is nothing to recheck.
	if got := check("other", false); got != Wrong {
		t.Fatalf("wrong from the backend: %v", got)
	}
	v.err = errDown
	if _, err := c.CheckPassword("k", e, true, []byte("x"), v.verify([]byte("x"))); !errors.Is(err, errDown) {
		t.Fatalf("verify error: %v", err)
	}
	var nilc *Cache
	v.err = nil
	if got, err := nilc.CheckPassword("k", nil, false, []byte("secret"), v.verify([]byte("secret"))); got != Right || err != nil {
		t.Fatalf("nil cache: %v %v", got, err)
	}
}

func TestCheckRemote(t *testing.T) {
	clk := newClock()
	c := testCache(t, clk, Options{TTL: time.Minute, NegativeTTL: time.Minute, Fingerprint: true})
	calls := 0
	var answer RemoteCheck
	var down error
	check := func() (RemoteCheck, error) { calls++; return answer, down }
	try := func(pw string) (RemoteCheck, bool, error) {
		return c.CheckRemote(context.Background(), "k", []byte(pw), check)
	}

	answer = RemoteCheck{Entry: Entry{Fields: pos("").Fields}, Right: true}
	if rc, fromCache, err := try("secret"); err != nil || !rc.Right || fromCache || calls != 1 {
		t.Fatalf("first: %+v %v %v, %d calls", rc, fromCache, err, calls)
	}
	if rc, fromCache, err := try("secret"); err != nil || !rc.Right || !fromCache || calls != 1 {
		t.Fatalf("repeat: %+v %v %v, %d calls", rc, fromCache, err, calls)
	}
	answer.Right = false
	if rc, _, err := try("wrong"); err != nil || rc.Right || calls != 2 {
		t.Fatalf("wrong: %+v %v, %d calls", rc, err, calls)
	}
	// Down, expired: only the password that verified stands in.
	clk.Advance(2 * time.Minute)
	down = errDown
	if rc, fromCache, err := try("secret"); err != nil || !rc.Right || !fromCache {
		t.Fatalf("outage, known password: %+v %v %v", rc, fromCache, err)
	}
	if _, _, err := try("wrong"); !errors.Is(err, errDown) {
		t.Fatalf("outage, other password: %v", err)
	}
	// A refusal forgets the fingerprint: after it, an outage lets no one in.
	down, answer = nil, RemoteCheck{Entry: Entry{Refusal: 1}}
	if rc, _, err := try("secret"); err != nil || rc.Entry.Refusal != 1 {
		t.Fatalf("refusal: %+v %v", rc, err)
	}
	down = errDown
	if _, _, err := try("secret"); !errors.Is(err, errDown) {
		t.Fatalf("outage after a refusal: %v, want the backend's error", err)
	}
}
