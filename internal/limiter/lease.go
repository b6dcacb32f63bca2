package limiter

import (
	"context"
	"time"
)

// Leases: how a process that shares its budgets (SetShared) serves the
// logins of a known-good pair without asking the shared store each time
// (docs/scale-out.md, "Leases").
//
// Every attempt is counted when it arrives, in the store as here, so that
// parallel attempts on several processes buy no more than the budget. A
// known-good pair's attempts are nearly all successes, which give their
// count back: two store calls per login for nothing. So when the store
// counts a known-good pair's attempt it may count one unit more, kept by
// this process (the pair's entry holds it): the pair's next attempt here
// takes that unit instead of asking the store, and gives it back to the
// entry when it succeeds. A failure uses the unit up: it stays counted in
// the store, as the failure. The budget thus holds exactly across
// processes: every attempt in flight or failed anywhere is one count in
// the store. A held unit is an attempt in flight that has not happened
// yet; the store grants one only while the pair's window is at most half
// full, so units held across processes never leave an owner on her usual
// network with less than half her budget.
//
// A unit is used for at most half the pair's window after the store
// counted it (its count is in the store's window for its whole length,
// whatever the clocks say); an older unit is handed back by the pair's
// next store call. A unit whose process went away is counted until its
// slot slides out of the window.

// maxLease bounds the units a pair's entry holds.
const maxLease = 4

// leaseFor is how long a granted unit may be used.
func (l *Limiter) leaseFor() time.Duration { return l.budgets[KindPair].Window / 2 }

// takeLease is beginPair's part for a known-good pair of a limiter with a
// shared store, e.s.mu held and the pair's local budget counted: the
// attempt takes one of the entry's units when it has a valid one; an
// expired lease is handed to the attempt to give back. An attempt that
// takes no unit asks the store for one (askShared).
func (a *Attempt) takeLease(e *entry, now time.Duration) {
	if e.lease > 0 && now < time.Duration(e.leaseUntil)*time.Second {
		e.lease--
		a.leased, a.leaseSlot = true, e.leaseSlot
		return
	}
	if e.lease > 0 {
		a.ret, a.retSlot = int(e.lease), e.leaseSlot
		e.lease = 0
	}
}

// settleLease gives the entry of the attempt's pair back its unit (unless
// a failure used it up) and the units the store granted; e's shard lock
// is held.
func (a *Attempt) settleLease(e *entry, o Outcome) {
	if a.leased && (o != Failed || a.repeat) && e.lease < maxLease {
		// A success, an undecided attempt, or a wrong password already
		// counted once: the unit is still counted in the store, unused.
		e.lease++
	}
	if a.grant <= 0 {
		return
	}
	until := int32((a.began + a.l.leaseFor()) / time.Second)
	if e.lease == 0 || until < e.leaseUntil {
		// The units already held may be older: the first to expire sets
		// the lease's end.
		e.leaseUntil = until
	}
	e.lease = uint8(min(int(e.lease)+a.grant, maxLease))
	e.leaseSlot = a.grantSlot
}

// hasLeaseWork reports whether Done must reach the pair's entry for the
// lease alone.
func (a *Attempt) hasLeaseWork() bool { return a.leased || a.grant > 0 }

// keepPassword keeps what a leased attempt needs of its password should it
// fail: the store then learns its hash, computed only then (a login that
// succeeds, the common case, pays for a copy of a few bytes).
func (a *Attempt) keepPassword(pw []byte) {
	switch {
	case pw == nil:
		a.keptN = -1
	case len(pw) <= len(a.kept):
		a.keptN = int8(copy(a.kept[:], pw))
	default:
		a.keptN = -2
		a.keptHash = a.l.sharedHash(pw)
	}
}

// finishLeased tells the store about a leased attempt that failed: the
// hash of its password, so that the password counts once on every
// process; a password the store knows already gives the unit's count back
// (docs/scale-out.md, "Leases").
func (a *Attempt) finishLeased() {
	l := a.l
	sh := l.sharedStore()
	if sh == nil || a.keptN == -1 {
		return
	}
	q := SharedQuery{Account: a.account, IP: a.ip, Budgets: l.budgets, KnownGoodFor: l.cfg.KnownGoodFor, Leased: true, HasPassword: true}
	if a.keptN == -2 {
		q.PasswordHash = a.keptHash
	} else {
		q.PasswordHash = l.sharedHash(a.kept[:a.keptN])
		clear(a.kept[:])
	}
	v := SharedVerdict{KnownGood: true}
	v.Slots[KindPair] = a.leaseSlot
	// Bounded by the store's own deadline; an error leaves the failure
	// counted, which errs towards refusing.
	_ = sh.Finish(context.Background(), q, v, Failed)
}
