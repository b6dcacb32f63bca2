package limiter

import (
	"net/netip"
	"time"
)

// Request is what the limiter needs to know about an attempt.
type Request struct {
	// Account is the name being authenticated, after name processing
	// (realm, translation, auth_username_format); "" when there is none.
	Account string
	// IP is the client's address; the zero Addr when the request carries
	// none (a local tool): it is then counted by account only, never in
	// one shared bucket.
	IP netip.Addr
	// Password is the password tried, when the mechanism sends one (PLAIN,
	// LOGIN): a repeat of a password that already failed for this account
	// from this network is not counted again. nil for challenge-response
	// mechanisms.
	Password []byte
}

// Outcome is how an attempt ended.
type Outcome uint8

// The outcomes.
const (
	// Undecided: a temporary failure, a cancelled or abandoned request.
	// It never counts: the reservation is given back.
	Undecided Outcome = iota
	// Failed: a wrong password or an unknown user (or a refusal).
	Failed
	// Succeeded: the password was right; the reservation is given back
	// and the pair becomes known-good.
	Succeeded
)

// reservation is one key's count taken at Begin.
type reservation struct {
	s    *shard
	e    *entry
	slot int64
}

// Attempt is one authentication attempt between Begin and Done. Its
// methods are not safe for concurrent use; an attempt belongs to one
// request.
type Attempt struct {
	l        *Limiter
	refused  bool
	by       Kind // the key that refused it
	repeat   bool // the same wrong password again: counted once already
	hashed   bool
	pwHash   uint32
	ip       netip.Addr
	pairKey  string
	res      [3]reservation
	nres     int
	finished bool
}

// Begin counts an attempt as a failure before any work is done, and
// decides whether it may go on. A refused attempt (Refused) must be
// answered like a wrong password without a lookup or verification. Every
// attempt must end with Done.
func (l *Limiter) Begin(r Request) *Attempt {
	a := &Attempt{l: l, ip: normalize(r.IP)}
	now := l.elapsed()
	knownGood := false
	if r.Account != "" {
		a.pairKey = pairKey(r.Account, a.ip)
		if r.Password != nil {
			a.hashed, a.pwHash = true, l.passwordHash(r.Password)
		}
		s := l.shardOf(a.pairKey)
		s.mu.Lock()
		// Only looked up: the pair is made when an attempt that was not
		// refused ends (Done). A refused guess thus costs no memory and
		// evicts nothing: an attacker refused by address or network
		// cannot fill the table with pairs and push out the known-good
		// ones of real users.
		if e := s.peek(a.pairKey); e != nil {
			knownGood = e.knownGood(now, l.cfg.KnownGoodFor)
			a.repeat = a.hashed && e.hasPassword(a.pwHash)
		}
		s.mu.Unlock()
	}
	var keys [3]string
	var kinds [3]Kind
	n := 0
	add := func(k Kind, key string) { keys[n], kinds[n] = key, k; n++ }
	switch {
	case knownGood:
		// The owner's usual network: only the pair's own budget.
		add(KindPair, a.pairKey)
	default:
		if a.ip.IsValid() {
			add(KindIP, ipKey(a.ip))
			add(KindPrefix, prefixKey(a.ip))
		}
		if r.Account != "" {
			add(KindAccount, accountKey(r.Account))
		}
	}
	for i := range n {
		if !a.reserve(kinds[i], keys[i], now) {
			a.giveBack()
			a.refused, a.by = true, kinds[i]
			break
		}
	}
	return a
}

// reserve checks one key's budget and, unless the attempt repeats a
// failed password, counts the attempt in it. It is false when the key
// refuses.
func (a *Attempt) reserve(k Kind, key string, now time.Duration) bool {
	l := a.l
	b := l.budgets[k]
	s := l.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.get(key, k, l.noteEviction)
	slot := l.slot(k, now)
	if b.Failures > 0 && e.win.sum(slot) >= b.Failures {
		l.block(s, e)
		return false
	}
	if e.blocked {
		l.release(s, e)
	}
	if !a.repeat {
		e.win.add(slot)
		a.res[a.nres] = reservation{s: s, e: e, slot: slot}
		a.nres++
	}
	return true
}

// giveBack returns every reservation.
func (a *Attempt) giveBack() {
	for _, r := range a.res[:a.nres] {
		r.s.mu.Lock()
		r.e.win.remove(r.slot)
		r.s.mu.Unlock()
	}
	a.nres = 0
}

// Refused reports whether the attempt must be refused without any work.
func (a *Attempt) Refused() bool { return a.refused }

// RefusedBy is the kind of key that refused the attempt.
func (a *Attempt) RefusedBy() Kind { return a.by }

// Done ends the attempt and returns the failure-delay level of a failure
// (Dovecot's penalty: the number of failures from this address in quick
// succession before this one, 0 to 4), which the caller turns into the
// delay of its FAIL reply. It is 0 for other outcomes. Only the first call
// counts.
func (a *Attempt) Done(o Outcome) int {
	if a == nil || a.finished {
		return 0
	}
	a.finished = true
	switch o {
	case Succeeded:
		a.giveBack()
		a.notePair(func(e *entry, now time.Duration) { e.lastOK = int32(now/time.Second) + 1 })
		return 0
	case Failed:
		if a.hashed && !a.refused {
			a.notePair(func(e *entry, _ time.Duration) { e.addPassword(a.pwHash) })
		}
		return a.escalate()
	}
	a.giveBack()
	return 0
}

// notePair updates the attempt's pair entry, if any.
func (a *Attempt) notePair(f func(e *entry, now time.Duration)) {
	if a.pairKey == "" {
		return
	}
	l := a.l
	s := l.shardOf(a.pairKey)
	s.mu.Lock()
	f(s.get(a.pairKey, KindPair, l.noteEviction), l.elapsed())
	s.mu.Unlock()
}

// escalate raises the address's failure-delay level and returns the level
// before this failure. A level decays to 0 after penaltyQuiet without a
// failure, as in Dovecot.
func (a *Attempt) escalate() int {
	if !a.ip.IsValid() {
		return 0
	}
	l := a.l
	key := ipKey(a.ip)
	s := l.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.get(key, KindIP, l.noteEviction)
	now := int32(l.elapsed() / time.Second)
	if now-e.lastFail >= int32(penaltyQuiet/time.Second) {
		e.level = 0
	}
	level := int(e.level)
	if a.repeat {
		// The same wrong password again (a device with a stale
		// password): no guess, so no escalation, and no more than the
		// base delay (Dovecot does not raise its level for it either).
		return 0
	}
	if e.level < maxLevel {
		e.level++
	}
	e.lastFail = now
	return level
}

// Dovecot's penalty: the level rises by one per failure up to 4, and 15 s
// without failures forget it.
const (
	maxLevel     = 4
	penaltyQuiet = 15 * time.Second
)

func (l *Limiter) noteEviction() { l.evicted.Add(1) }
