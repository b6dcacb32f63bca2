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
	if f.refuse && !q.Force {
		return SharedVerdict{Refused: true, By: KindIP, NewBlock: true}, nil
	}
	if f.grant && q.Lease {
		return SharedVerdict{KnownGood: true, Lease: 1, Slots: [numKinds]int64{KindPair: 7}}, nil
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
