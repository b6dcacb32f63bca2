package limiter

import (
	"fmt"
	"sync"
	"testing"
)

// TestPrefetchHint: Start takes the pair's ID from the hint when the hint
// was made for the request's account and address, and works it out again
// when it was not (name processing changed the name): a wrong hint never
// counts an attempt in another pair's budget.
func TestPrefetchHint(t *testing.T) {
	l, _ := newTest(t, Config{})
	for _, c := range []struct {
		hintAccount, hintIP, account, ip string
	}{
		{"ann", "192.0.2.1", "ann", "192.0.2.1"},
		{"Ann", "192.0.2.1", "ann", "192.0.2.1"},
		{"ann", "192.0.2.1", "ann", "198.51.100.1"},
		{"ann", "::ffff:192.0.2.1", "ann", "192.0.2.1"},
	} {
		h := l.Prefetch(c.hintAccount, ip(c.hintIP))
		a := l.Begin(Request{Account: c.account, IP: ip(c.ip), Hint: h})
		b := l.Begin(Request{Account: c.account, IP: ip(c.ip)})
		if a.pairID != b.pairID {
			t.Errorf("hint for %s from %s, request for %s from %s: pair %v, want %v", c.hintAccount, c.hintIP, c.account, c.ip, a.pairID, b.pairID)
		}
		a.Done(Undecided)
		b.Done(Undecided)
	}
	// A known-good pair's login with a hint made for another account is
	// that account's attempt: refused once its own budget is spent.
	if !succeed(l, "ann", "192.0.2.1", "pw") {
		t.Fatal("first login refused")
	}
	for i := range 100 {
		fail(l, "bob", fmt.Sprintf("203.0.113.%d", i), fmt.Sprintf("g%d", i))
	}
	a := l.Begin(Request{Account: "bob", IP: ip("192.0.2.1"), Hint: l.Prefetch("ann", ip("192.0.2.1"))})
	defer a.Done(Failed)
	if !a.Refused() {
		t.Fatal("an attempt at an account over its budget went through with another pair's hint")
	}
}

// TestPrefetchWhileTablesGrow: Prefetch reads a shard's table without its
// lock while attempts make the table grow (run with -race).
func TestPrefetchWhileTablesGrow(t *testing.T) {
	l, _ := newTest(t, Config{})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := range 5000 {
				account := fmt.Sprintf("user%d-%d", g, i)
				h := l.Prefetch(account, ip("192.0.2.7"))
				succeedHint(l, account, "192.0.2.7", h)
			}
		})
	}
	wg.Wait()
	if st := l.Stats(); st.Keys < 10000 {
		t.Fatalf("%d keys tracked after 10000 pairs' logins", st.Keys)
	}
}

func succeedHint(l *Limiter, account, addr string, h PairHint) {
	a := l.Begin(Request{Account: account, IP: ip(addr), Password: []byte("pw"), Hint: h})
	a.Done(Succeeded)
}
