package limiter

import (
	"context"
	"math"
	"time"

	"github.com/authd-project/authd/internal/blocking"
)

// Known-good logins in flight.
//
// Every attempt is counted when it arrives, so that parallel guesses buy
// no more than the budget. For a known-good pair the attempts in flight
// are counted apart from its failures: the shard keeps them in the cache
// line of its lock, which the login takes anyway (a small table keyed by
// 32 bits of the pair's ID, with a map beside it for when the table is
// full), so that a known-good login writes nothing in its pair's entry.
// That was meant to save the entry's cache line a trip between cores; it
// measured no faster than counting in the window (docs/performance.md,
// "Brute-force defence"), but a map alone, the simplest place for counts
// apart, measured 20-40 ns slower per known-good login
// (BenchmarkAttemptKnownGood, four alternating pairs). What the separate
// count is for:
//
// A pair whose budget is full of attempts in flight has not failed:
// a mail client that opens a dozen connections at once, or an office
// sharing one mailbox after a restart, would be told "wrong password" for
// the right one. Such an attempt waits for one of those in flight to end
// instead (at most Config.InFlightWait), and is then counted, or refused
// if the ones that ended failed and filled the budget. A guesser on the
// owner's network still gets no more than the budget verified: the
// attempts beyond it wait for the first to fail. An attempt that waited
// in vain is answered as a temporary failure (Attempt.Busy), never as a
// wrong password.
//
// Two pairs of one shard whose IDs share those 32 bits share a count
// while both have logins in flight: each is checked with the other's
// logins too, which errs towards waiting, at odds of 2⁻³² per pair of
// pairs in flight at once.

// flySlots is how many pairs of a shard have their logins in flight
// counted in the lock's cache line; more go to the map.
const flySlots = 10

func flyKey(id keyID) uint32 { return uint32(id.b) }

// flyTake counts one more login of the pair id in flight, unless limit
// (0: none) are in flight already: then it reports false. s.mu is held.
func (s *shard) flyTake(id keyID, limit int) bool {
	k := flyKey(id)
	at, free := -1, -1
	for i, c := range s.flyN {
		if c > 0 && s.flyID[i] == k {
			at = i
			break
		}
		if c == 0 && free < 0 {
			free = i
		}
	}
	if limit > 0 {
		n := 0
		if at >= 0 {
			n = int(s.flyN[at])
		}
		if s.flyOver {
			n += s.flyMore[k]
		}
		if n >= limit {
			return false
		}
	}
	switch {
	case at >= 0 && s.flyN[at] < math.MaxUint8:
		s.flyN[at]++
		return true
	case at < 0 && free >= 0:
		s.flyID[free], s.flyN[free] = k, 1
		return true
	}
	if s.flyMore == nil {
		s.flyMore = make(map[uint32]int)
	}
	s.flyMore[k]++
	s.flyOver = true
	return true
}

// flyDone takes back one login of the pair id counted by flyTake, and
// wakes the pair's attempts waiting for one to end. s.mu is held.
func (s *shard) flyDone(id keyID) {
	k := flyKey(id)
	if s.flyWaiting {
		if ch, ok := s.flyWake[k]; ok {
			close(ch)
			delete(s.flyWake, k)
			s.flyWaiting = len(s.flyWake) > 0
		}
	}
	if s.flyOver {
		if n := s.flyMore[k]; n > 0 {
			if n == 1 {
				delete(s.flyMore, k)
				s.flyOver = len(s.flyMore) > 0
			} else {
				s.flyMore[k] = n - 1
			}
			return
		}
	}
	for i, c := range s.flyN {
		if c > 0 && s.flyID[i] == k {
			s.flyN[i]--
			return
		}
	}
}

// flyWait is what an attempt waits on for a login in flight of the pair
// id to end: only the pair's own ends wake its waiters, so a burst on one
// pair does not send every waiter of the shard back to its lock. s.mu is
// held.
func (s *shard) flyWait(id keyID) <-chan struct{} {
	k := flyKey(id)
	ch, ok := s.flyWake[k]
	if !ok {
		if s.flyWake == nil {
			s.flyWake = make(map[uint32]chan struct{})
		}
		ch = make(chan struct{})
		s.flyWake[k] = ch
		s.flyWaiting = true
	}
	return ch
}

// waitTurn waits until ch is closed; false when ctx ends or the attempt
// has waited its limit since began.
func (a *Attempt) waitTurn(ctx context.Context, ch <-chan struct{}, began time.Time) bool {
	left := a.l.cfg.InFlightWait - time.Since(began)
	if left <= 0 {
		return false
	}
	// The request's goroutine may have other requests to serve.
	blocking.Announce(ctx)
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// pause waits d, or less when the attempt's wait since began would pass
// Config.InFlightWait; false when that time is up or ctx ends.
func (a *Attempt) pause(ctx context.Context, began time.Time, d time.Duration) bool {
	left := a.l.cfg.InFlightWait - time.Since(began)
	if left <= 0 {
		return false
	}
	blocking.Announce(ctx)
	t := time.NewTimer(min(d, left))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// noteWait counts the attempt among those that waited for a turn, once
// however many waits it takes (here, then in the shared store).
func (a *Attempt) noteWait() {
	if !a.waited {
		a.waited = true
		a.l.waits.Add(1)
	}
}
