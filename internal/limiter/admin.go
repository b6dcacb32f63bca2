package limiter

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// Stats are the limiter's counters, for metrics.
type Stats struct {
	Keys     int64           // keys tracked now
	Evicted  int64           // keys dropped to stay within MaxKeys
	Refusals [numKinds]int64 // attempts refused, by the kind of key that refused them
	Blocks   [numKinds]int64 // times a key started refusing
	Blocked  [numKinds]int64 // keys refusing now
	// Waits counts attempts of known-good pairs that waited for a
	// turn (flying.go); Busy those that waited in vain, answered as
	// temporary failures.
	Waits, Busy int64
}

// Kinds lists the key kinds, in order, for metric labels.
func Kinds() []Kind { return []Kind{KindIP, KindPrefix, KindAccount, KindPair} }

// Stats returns the current counters.
func (l *Limiter) Stats() Stats {
	var st Stats
	st.Evicted = l.evicted.Load()
	st.Waits, st.Busy = l.waits.Load(), l.busy.Load()
	for k := range numKinds {
		st.Refusals[k] = l.refusals[k].Load()
		st.Blocks[k] = l.blocks[k].Load()
	}
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		st.Keys += int64(s.n)
		for id := range s.blocked {
			st.Blocked[s.slots[s.index(id)].kind]++
		}
		s.mu.Unlock()
	}
	return st
}

// KeyState is one key as `authd penalty` lists it.
type KeyState struct {
	Kind     Kind
	Key      string // the address, network or account, for humans
	Failures int    // in the key's window now
	Limit    int    // its budget
	Refusing bool
}

// List returns the keys that refuse attempts now, then the keys with the
// most failures, at most n in all (n <= 0: no limit). Pairs are listed
// only while they refuse.
func (l *Limiter) List(n int) []KeyState {
	now := l.elapsed()
	var out []KeyState
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		s.each(func(e *entry) {
			f := e.win.sum(l.slot(e.kind, now))
			if f == 0 || (e.kind == KindPair && !e.blocked) {
				return
			}
			out = append(out, KeyState{Kind: e.kind, Key: displayKey(s.keyText(e)), Failures: f,
				Limit: l.budgets[e.kind].Failures, Refusing: e.blocked})
		})
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b KeyState) int {
		if a.Refusing != b.Refusing {
			if a.Refusing {
				return -1
			}
			return 1
		}
		return cmp.Or(b.Failures-a.Failures, cmp.Compare(a.Key, b.Key))
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// Reset forgets the failures of one key: an address (the IP key), a
// network (the prefix key), or an account (its key and every pair of it,
// which also forgets where it logged in from). It reports how many keys
// were reset.
//
// With a shared store the key is reset there too, and every process that
// shares it forgets it (ResetLocal); an unreachable store is reported in
// the log.
func (l *Limiter) Reset(kind Kind, key string) int {
	n := l.ResetLocal(kind, key)
	if sh := l.sharedStore(); sh != nil {
		if err := sh.Reset(context.Background(), kind, key); err != nil {
			l.cfg.Log.Warn("penalty: reset here only; the shared store could not be reached", "kind", kind.String(), "err", err)
		}
	}
	return n
}

// resetKey forgets one address or network key.
func (l *Limiter) resetKey(kind Kind, key string) int {
	k, ok := parseDisplayed(kind, key)
	if !ok {
		return 0
	}
	id := l.keys.id(k)
	s := l.shardOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.peek(id)
	if e == nil {
		return 0
	}
	l.release(s, e)
	s.remove(e)
	return 1
}

func (l *Limiter) resetAccount(display string) int {
	k, ok := parseDisplayed(KindAccount, display)
	if !ok {
		return 0
	}
	account := k[1:]
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		// Removing moves entries: the keys first, then one by one.
		var ids []keyID
		s.each(func(e *entry) {
			if isOfAccount(s.keyBytes(e), account) {
				ids = append(ids, e.id)
			}
		})
		for _, id := range ids {
			e := s.peek(id)
			l.release(s, e)
			s.remove(e)
		}
		n += len(ids)
		s.mu.Unlock()
	}
	return n
}

// FailureDelay is Dovecot's escalating delay for a failure at level (see
// Done): base for the first failure, then 2·2^level seconds, at most
// limit.
func FailureDelay(level int, base, limit time.Duration) time.Duration {
	d := base
	if level > 0 {
		d = max(base, time.Duration(2<<level)*time.Second)
	}
	return min(d, limit)
}
