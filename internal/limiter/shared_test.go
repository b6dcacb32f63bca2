package limiter

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeShared is a shared store that refuses what it is told to and can
// be taken down.
type fakeShared struct {
	mu       sync.Mutex
	down     bool
	refuse   bool
	grant    bool // count a lease unit for every attempt that asks
	waits    int  // answer Wait this many times first
	reserved []SharedQuery
	finished []Outcome
	finishQ  []SharedQuery
	resets   []string
}

var errUnreachable = errors.New("store unreachable")

func (f *fakeShared) Reserve(_ context.Context, q SharedQuery) (SharedVerdict, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return SharedVerdict{}, errUnreachable
	}
	f.reserved = append(f.reserved, q)
	if f.waits > 0 && !q.Force {
		f.waits--
		return SharedVerdict{KnownGood: true, Wait: true}, nil
	}
	if f.refuse && !q.Force {
		return SharedVerdict{Refused: true, By: KindIP, NewBlock: true}, nil
	}
	if f.grant && q.Lease {
		return SharedVerdict{KnownGood: true, Lease: 1, LeaseSlot: 7, FlySlot: 3}, nil
	}
	return SharedVerdict{Slots: [numKinds]int64{KindIP: 1}}, nil
}

func (f *fakeShared) Finish(_ context.Context, q SharedQuery, _ SharedVerdict, o Outcome) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errUnreachable
	}
	f.finished = append(f.finished, o)
	f.finishQ = append(f.finishQ, q)
	return nil
}

func (f *fakeShared) Reset(_ context.Context, kind Kind, display string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resets = append(f.resets, kind.String()+" "+display)
	return nil
}

// TestSharedVerdictDecides: while the store answers, its refusal decides
// even where this process has counted nothing, and its reset is asked
// for; a success's end reaches it.
func TestSharedVerdictDecides(t *testing.T) {
	l, _ := newTest(t, Config{})
	f := &fakeShared{}
	l.SetShared(f, []byte("0123456789abcdef"))
	if !succeed(l, "ann", "192.0.2.1", "pw") {
		t.Fatal("refused with the store allowing")
	}
	if len(f.finished) != 1 || f.finished[0] != Succeeded {
		t.Fatalf("finishes %v", f.finished)
	}
	f.refuse = true
	if succeed(l, "ann", "192.0.2.1", "pw") {
		t.Fatal("the store's refusal was ignored")
	}
	if st := l.Stats(); st.Refusals[KindIP] != 1 || st.Blocks[KindIP] != 1 {
		t.Errorf("stats %+v", st)
	}
	l.Reset(KindIP, "192.0.2.1")
	if len(f.resets) != 1 || f.resets[0] != "ip 192.0.2.1" {
		t.Errorf("resets %v", f.resets)
	}
}

// TestSharedDown: with the store unreachable the limiter counts alone and
// refuses at its own budget, applies the refusals others broadcast, and
// replays its failures once the store is back.
func TestSharedDown(t *testing.T) {
	l, clk := newTest(t, Config{IP: Budget{Failures: 3, Window: time.Hour}})
	f := &fakeShared{down: true}
	l.SetShared(f, nil)
	for i := range 3 {
		if fail(l, "bob", "198.51.100.1", string(rune('a'+i))) {
			t.Fatalf("failure %d refused", i+1)
		}
	}
	if !fail(l, "bob", "198.51.100.1", "z") {
		t.Fatal("the fourth failure went through while the store was down")
	}
	l.NoteBlock(KindIP, "", ip("203.0.113.9"), time.Minute)
	if succeed(l, "cat", "203.0.113.9", "pw") {
		t.Fatal("a refusal another process broadcast was not applied")
	}
	clk.Advance(2 * time.Minute)
	if !succeed(l, "cat", "203.0.113.9", "pw") {
		t.Fatal("a broadcast refusal outlived its window")
	}
	if n := l.PendingReplay(); n != 3 {
		t.Fatalf("%d failures waiting for replay, want 3", n)
	}
	f.down = false
	if err := l.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.reserved) != 3 || !f.reserved[0].Force || l.PendingReplay() != 0 {
		t.Fatalf("replayed %d (%+v), pending %d", len(f.reserved), f.reserved, l.PendingReplay())
	}
}

// TestLease: a known-good pair's unit, granted by the store, serves the
// pair's next logins without a store call; a success gives it back to the
// pair, a failure uses it up and tells the store the password's hash; a
// unit older than half the pair's window goes back with the next store
// call instead of being used.
func TestLease(t *testing.T) {
	l, clk := newTest(t, Config{})
	f := &fakeShared{grant: true}
	l.SetShared(f, []byte("0123456789abcdef"))
	if !succeed(l, "ann", "192.0.2.1", "pw") {
		t.Fatal("first login refused")
	}
	if len(f.reserved) != 1 || !f.reserved[0].Lease {
		t.Fatalf("reserved %+v, want one call asking for a unit", f.reserved)
	}
	for i := range 5 {
		if !succeed(l, "ann", "192.0.2.2", "pw") {
			t.Fatalf("login %d on the unit refused", i+2)
		}
	}
	if len(f.reserved) != 1 || len(f.finished) != 1 {
		t.Fatalf("%d reserve and %d finish calls, want 1 and 1: the unit was not used", len(f.reserved), len(f.finished))
	}
	// A failure on the unit: the store hears of the password, not of a
	// new attempt.
	if fail(l, "ann", "192.0.2.2", "typo") {
		t.Fatal("a failure on the unit was refused")
	}
	if len(f.reserved) != 1 || len(f.finishQ) != 2 || !f.finishQ[1].Leased || !f.finishQ[1].HasPassword {
		t.Fatalf("reserved %d, finishes %+v: want a leased failure's finish with its password hash", len(f.reserved), f.finishQ)
	}
	// The unit is used up: the next login asks the store, and gets one.
	if !succeed(l, "ann", "192.0.2.2", "pw") || len(f.reserved) != 2 {
		t.Fatalf("after the unit was used up: %d reserve calls, want 2", len(f.reserved))
	}
	clk.Advance(l.leaseFor() + time.Second)
	if !succeed(l, "ann", "192.0.2.2", "pw") {
		t.Fatal("login after the lease expired refused")
	}
	if q := f.reserved[len(f.reserved)-1]; len(f.reserved) != 3 || q.ReturnUnits != 1 || q.ReturnSlot != 7 {
		t.Fatalf("reserved %+v: want a third call giving the expired unit back", f.reserved)
	}
	// A unit granted for a pair that is not known-good here (it failed
	// before ever logging in on this process) cannot be used: it goes
	// back to the store at once, as an undecided attempt's count.
	n := len(f.finished)
	if fail(l, "bob", "198.51.100.7", "guess") {
		t.Fatal("a first failure was refused")
	}
	if got := f.finished[n:]; len(got) != 2 || got[0] != Failed || got[1] != Undecided {
		t.Fatalf("finishes %v, want the failure's, then the unit given back", got)
	}
}

// TestSharedWait: while the store answers that a known-good pair's budget
// is full of logins in flight (on any process), the attempt pauses and
// asks again, and goes on when the store lets it; kept waiting past
// InFlightWait it is Busy, never refused, and nothing stays counted.
func TestSharedWait(t *testing.T) {
	l, _ := newTest(t, Config{InFlightWait: 200 * time.Millisecond})
	f := &fakeShared{}
	l.SetShared(f, nil)
	req := Request{Account: "ann", IP: ip("192.0.2.1"), Password: []byte("pw")}
	f.waits = 3
	a := l.Begin(req)
	if a.Refused() || a.Busy() {
		t.Fatalf("refused %v, busy %v after three waits: want the attempt to go on", a.Refused(), a.Busy())
	}
	a.Done(Succeeded)
	if len(f.reserved) != 4 {
		t.Fatalf("%d reserve calls, want 4 (three answered Wait)", len(f.reserved))
	}
	if st := l.Stats(); st.Waits != 1 || st.Busy != 0 {
		t.Fatalf("waits %d, busy %d: want 1 and 0", st.Waits, st.Busy)
	}
	f.waits = 1 << 20
	start := time.Now()
	a = l.Begin(req)
	if !a.Busy() || a.Refused() {
		t.Fatalf("busy %v, refused %v after waiting past InFlightWait: want busy only", a.Busy(), a.Refused())
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("gave up after %v, before InFlightWait", d)
	}
	a.Done(Undecided)
	if st := l.Stats(); st.Busy != 1 {
		t.Fatalf("busy %d, want 1", st.Busy)
	}
	// The pair's local budget holds no count of the attempt that
	// waited in vain: all ten of its turns are there for the owner.
	f.waits = 0
	for i := range 10 {
		a := l.Begin(req)
		if a.Refused() || a.Busy() {
			t.Fatalf("login %d in flight: refused %v, busy %v", i+1, a.Refused(), a.Busy())
		}
		defer a.Done(Succeeded)
	}
}
