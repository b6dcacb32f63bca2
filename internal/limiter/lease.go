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
// entry when it succeeds. A failure uses the unit up: its count stays in
// the store as the failure's, moved to the slot where the failure
// happened (finishLeased). The budget thus holds exactly across
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
func (a *Attempt) takeLease(e *coldEntry, now time.Duration) {
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
// is held. An entry holds the units of one slot only (their counts leave
// the store's window together): a unit of another slot, one beyond
// maxLease, or one for a pair not known-good here is left in a.surplus
// for Done to give back to the store.
func (a *Attempt) settleLease(s *shard, hot *entry, o Outcome) {
	if !a.hasLeaseWork() {
		return
	}
	kg := hot.knownGood(a.began, a.l.cfg.KnownGoodFor)
	e := s.coldOf(hot)
	if a.leased && (o != Failed || a.repeat) {
		// A success, an undecided attempt, or a wrong password already
		// counted once: the unit is still counted in the store, unused.
		if kg && e.leaseSlot == a.leaseSlot && e.lease < maxLease {
			e.lease++
		} else {
			a.surplus, a.surplusSlot = 1, a.leaseSlot
		}
	}
	if a.grant <= 0 {
		return
	}
	until := int32((a.began + a.l.leaseFor()) / time.Second)
	switch {
	case !kg:
		a.surplus, a.surplusSlot = a.grant, a.grantSlot
	case e.lease == 0:
		// Units of an older slot still out with attempts go back to the
		// store when those end (the slot no longer matches).
		e.lease, e.leaseSlot, e.leaseUntil = uint8(a.grant), a.grantSlot, until
	case e.leaseSlot == a.grantSlot && int(e.lease)+a.grant <= maxLease:
		e.lease += uint8(a.grant)
		e.leaseUntil = min(e.leaseUntil, until)
	default:
		a.surplus, a.surplusSlot = a.grant, a.grantSlot
	}
}

// giveBackSurplus returns to the store the units settleLease could not
// keep: each one's count goes, as an undecided attempt's would.
func (a *Attempt) giveBackSurplus() {
	if a.surplus == 0 {
		return
	}
	sh := a.l.sharedStore()
	if sh == nil {
		return
	}
	q := a.sharedQuery()
	var v SharedVerdict
	v.Slots[KindPair] = a.surplusSlot
	for range a.surplus {
		// Bounded by the store's own deadline; a unit not given back
		// stays counted until its slot leaves the window (errs towards
		// refusing).
		_ = sh.Finish(context.Background(), q, v, Undecided)
	}
	a.surplus = 0
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
// unit's count moves from the slot it was granted in to the current one
// (a failure stays counted for a whole window), and the password's hash
// is noted, so that it counts once on every process; a password the
// store knows already only gives the unit's count back
// (docs/scale-out.md, "Leases").
func (a *Attempt) finishLeased() {
	l := a.l
	sh := l.sharedStore()
	if sh == nil {
		return
	}
	q := a.sharedQuery()
	q.Leased = true
	switch {
	case a.keptN == -2:
		q.HasPassword, q.PasswordHash = true, a.keptHash
	case a.keptN >= 0:
		q.HasPassword, q.PasswordHash = true, l.sharedHash(a.kept[:a.keptN])
	}
	v := SharedVerdict{KnownGood: true}
	v.Slots[KindPair] = a.leaseSlot
	// Bounded by the store's own deadline; an error leaves the failure
	// counted, which errs towards refusing.
	_ = sh.Finish(context.Background(), q, v, Failed)
}
