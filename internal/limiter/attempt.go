package limiter

import (
	"context"
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
	// At is when the request arrived, as the caller read the clock
	// (saving a read per login: the limiter keeps seconds); the zero Time
	// makes the limiter read it. Ignored under Config.Now.
	At time.Time
	// Hint is what Prefetch returned for this request, if it was asked:
	// Start then need not hash the pair's key again.
	Hint PairHint
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

// reservation is one key's count taken at Begin: the key's ID in its
// shard (entries move within their table), and the window slot counted;
// fly: counted in the shard's table of known-good logins in flight
// (flying.go) rather than in the key's window.
type reservation struct {
	s    *shard
	id   keyID
	slot int64
	fly  bool
}

// Attempt is one authentication attempt between Begin and Done. Its
// methods are not safe for concurrent use; an attempt belongs to one
// request.
type Attempt struct {
	l       *Limiter
	refused bool
	busy    bool // waited in vain for a turn (Busy)
	waited  bool // waited for a turn: counted once in Stats.Waits
	by      Kind // the key that refused it
	repeat  bool // the same wrong password again: counted once already
	hashed  bool
	pwHash  uint32
	ip      netip.Addr
	// account is the request's; pairID its pair's key ID (when account
	// is not ""). The pair key's text is made only for a new entry.
	account string
	pairID  keyID
	// began is when Begin counted the attempt (since the limiter
	// started). Done's notes use it too: they keep seconds, and an
	// attempt lasts milliseconds, so a second clock read buys nothing.
	began    time.Duration
	res      [3]reservation
	nres     int
	finished bool

	knownGood bool
	// sh is the shared store's part (shared.go); nil without a store.
	sh *sharedAttempt

	// The lease (lease.go). leased: the attempt took a unit its pair's
	// entry held, counted in the store at leaseSlot, and did not ask the
	// store. Otherwise it asks the store for a unit: grant is how many
	// the store counted for this process at grantSlot. ret units counted
	// at retSlot, expired, go back to the store with its call.
	leased             bool
	leaseSlot          int64
	grant, ret         int
	grantSlot, retSlot int64
	// surplus units counted at surplusSlot could not be kept: Done gives
	// them back (settleLease).
	surplus     int
	surplusSlot int64
	kept        [64]byte // a leased attempt's password, until Done
	keptN       int8     // its length; -1: none, -2: too long, hashed in keptHash
	keptHash    uint32
}

// sharedAttempt is an attempt's part in the shared store: q is what it was
// asked, sv its answer when it answered (store != nil), degraded when it
// could not be asked and this process decided alone.
type sharedAttempt struct {
	q        SharedQuery
	store    Shared
	sv       SharedVerdict
	degraded bool
}

// Begin is BeginContext without a deadline of the caller's: a shared
// store's calls are still bounded by its own.
func (l *Limiter) Begin(r Request) *Attempt {
	return l.BeginContext(context.Background(), r)
}

// BeginContext counts an attempt as a failure before any work is done,
// and decides whether it may go on. A refused attempt (Refused) must be
// answered like a wrong password without a lookup or verification. Every
// attempt must end with Done.
//
// With a shared store (SetShared) the attempt is counted both here and in
// the store, and the store's verdict decides: the budgets then hold across
// every process that shares it. When the store cannot be asked, this
// process's own counts decide, together with the refusals other processes
// broadcast (NoteBlock): never fewer refusals than without a store.
func (l *Limiter) BeginContext(ctx context.Context, r Request) *Attempt {
	a := new(Attempt)
	l.Start(ctx, a, r)
	return a
}

// Start is BeginContext into a, which must be a zero Attempt: a caller
// that keeps the attempt inside its own request state saves an
// allocation per login.
func (l *Limiter) Start(ctx context.Context, a *Attempt, r Request) {
	l.beginLocal(ctx, a, r)
	if a.busy || !l.sh.has.Load() {
		return
	}
	if a.leased {
		// Counted in the store already: the unit the pair held.
		a.keepPassword(r.Password)
		return
	}
	if sh := l.sharedStore(); sh != nil {
		l.askShared(ctx, sh, a, r)
	}
}

// beginLocal is the attempt as this process alone counts it.
func (l *Limiter) beginLocal(ctx context.Context, a *Attempt, r Request) {
	now := l.elapsedAt(r.At)
	a.l, a.ip, a.began = l, normalize(r.IP), now
	if r.Account != "" {
		a.account = r.Account
		a.pairID = l.pairID(r.Hint, r.Account, a.ip)
		if r.Password != nil {
			a.hashed, a.pwHash = true, l.passwordHash(r.Password)
		}
		if a.beginPair(ctx, now) {
			// The owner's usual network: only the pair's own budget,
			// counted (or refused) under the lock that found it.
			return
		}
	}
	keys, kinds, n := a.keys(r.Account)
	for i := range n {
		if !a.reserve(kinds[i], keys[i], now) {
			a.giveBack()
			a.refused, a.by = true, kinds[i]
			break
		}
	}
}

// beginPair looks the attempt's pair up and, when it is known-good,
// checks and counts the pair's budget at once; it reports whether the
// pair was known-good (the attempt then has no other keys). When the
// budget is full of attempts in flight, it waits for one of them to end
// (flying.go); an attempt that waits in vain is Busy.
//
// The pair is only looked up: it is made when an attempt that was not
// refused ends (Done). A refused guess thus costs no memory and evicts
// nothing: an attacker refused by address or network cannot fill the
// table with pairs and push out the known-good ones of real users.
func (a *Attempt) beginPair(ctx context.Context, now time.Duration) bool {
	l := a.l
	s := l.shardOf(a.pairID)
	var since time.Time
	for {
		s.mu.Lock()
		e := s.find(a.pairID)
		if e == nil || !e.knownGood(now, l.cfg.KnownGoodFor) {
			// Also after a wait, when the pair was reset or evicted
			// meanwhile: the attempt then counts in the address's,
			// the network's and the account's budgets.
			a.knownGood = false
			a.repeat = e != nil && a.hashed && s.hasPassword(e, a.pwHash)
			s.mu.Unlock()
			return false
		}
		a.knownGood = true
		a.repeat = a.hashed && s.hasPassword(e, a.pwHash)
		var wait <-chan struct{}
		switch a.reservePair(s, e, now) {
		case turnRefused:
			a.refused, a.by = true, KindPair
		case turnWait:
			wait = s.flyWait(e.id)
		default:
			if l.sh.has.Load() {
				a.takeLease(s.coldOf(e), now)
			}
		}
		s.mu.Unlock()
		if wait == nil {
			return true
		}
		if since.IsZero() {
			since = time.Now()
			a.noteWait()
		}
		if !a.waitTurn(ctx, wait, since) {
			a.busy = true
			l.busy.Add(1)
			return true
		}
	}
}

// The outcomes of reservePair.
const (
	turnGo = iota
	turnRefused
	turnWait
)

// reservePair checks and counts a known-good pair's attempt, e being the
// pair's entry in s, whose lock is held: refused when the pair's failures
// fill its budget, wait when its failures and its attempts in flight do.
func (a *Attempt) reservePair(s *shard, e *entry, now time.Duration) int {
	l := a.l
	b := l.budgets[KindPair]
	slot := l.slot(KindPair, now)
	failed := e.win.sum(slot)
	if b.Failures > 0 && failed >= b.Failures {
		l.block(s, e)
		return turnRefused
	}
	if e.blocked {
		l.release(s, e)
	}
	if a.repeat {
		return turnGo // counted once already
	}
	limit := 0 // no budget: no limit
	if b.Failures > 0 {
		limit = b.Failures - failed
	}
	if !s.flyTake(e.id, limit) {
		return turnWait
	}
	a.res[a.nres] = reservation{s: s, id: e.id, slot: slot, fly: true}
	a.nres++
	return turnGo
}

// keys are the keys whose budgets the attempt is counted in: a known-good
// pair's own, or the address's, the network's and the account's.
func (a *Attempt) keys(account string) (keys [3]string, kinds [3]Kind, n int) {
	add := func(k Kind, key string) { keys[n], kinds[n] = key, k; n++ }
	switch {
	case a.knownGood:
		// The owner's usual network: only the pair's own budget.
		add(KindPair, pairKey(a.account, a.ip))
	default:
		if a.ip.IsValid() {
			add(KindIP, ipKey(a.ip))
			add(KindPrefix, prefixKey(a.ip))
		}
		if account != "" {
			add(KindAccount, accountKey(account))
		}
	}
	return keys, kinds, n
}

// reserve checks one key's budget and, unless the attempt repeats a
// failed password, counts the attempt in it. It is false when the key
// refuses.
func (a *Attempt) reserve(k Kind, key string, now time.Duration) bool {
	id := a.l.keys.id(key)
	s := a.l.shardOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	return a.reserveLocked(s, s.get(id, key, k, a.l.noteEviction), k, now)
}

// reserveLocked is reserve for e, found in s; s.mu is held.
func (a *Attempt) reserveLocked(s *shard, e *entry, k Kind, now time.Duration) bool {
	l := a.l
	b := l.budgets[k]
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
		a.res[a.nres] = reservation{s: s, id: e.id, slot: slot}
		a.nres++
	}
	return true
}

// giveBack returns every reservation.
func (a *Attempt) giveBack() {
	for _, r := range a.res[:a.nres] {
		r.s.mu.Lock()
		r.giveBack()
		r.s.mu.Unlock()
	}
	a.nres = 0
}

// giveBack takes the count back from the key, unless it was evicted
// since (its count then went with it; a key evicted and made again since
// loses a count of another attempt's, as the eviction lost all of its
// counts). r.s.mu is held.
func (r reservation) giveBack() {
	if r.fly {
		r.s.flyDone(r.id)
		return
	}
	if i := r.s.index(r.id); i >= 0 {
		r.s.slots[i].win.remove(r.slot)
	}
}

// Refused reports whether the attempt must be refused without any work.
func (a *Attempt) Refused() bool { return a.refused }

// Busy reports whether the attempt waited in vain for its known-good
// pair's attempts in flight to end (flying.go): it must be answered as a
// temporary failure without any work, and is not counted.
func (a *Attempt) Busy() bool { return a.busy }

// RefusedBy is the kind of key that refused the attempt.
func (a *Attempt) RefusedBy() Kind { return a.by }

// Done ends the attempt and returns the failure-delay level of a failure
// (Dovecot's penalty: the number of failures from this address in quick
// succession before this one, 0 to 4), which the caller turns into the
// delay of its FAIL reply. It is 0 for other outcomes. Only the first call
// counts; a zero Attempt (never started) does nothing.
func (a *Attempt) Done(o Outcome) int {
	if a == nil || a.l == nil || a.finished {
		return 0
	}
	a.finished = true
	a.finishShared(o)
	if a.leased {
		if o == Failed && !a.repeat {
			a.finishLeased()
		}
		clear(a.kept[:])
	}
	defer a.giveBackSurplus()
	switch o {
	case Succeeded:
		a.notePair(true, func(s *shard, e *entry, now time.Duration) {
			// Written only when it changes: most logins of a busy
			// pair then leave its entry's cache line unwritten.
			if ok := int32(now/time.Second) + 1; e.lastOK != ok {
				e.lastOK = ok
				s.touch(e)
			}
			a.settleLease(s, e, o)
		})
		return 0
	case Failed:
		if (a.hashed && !a.refused) || a.hasLeaseWork() || a.flies() {
			a.notePair(false, func(s *shard, e *entry, _ time.Duration) {
				s.touch(e)
				a.land(s, e)
				if a.hashed && !a.refused {
					s.addPassword(e, a.pwHash)
				}
				a.settleLease(s, e, o)
			})
		}
		return a.escalate()
	}
	if a.hasLeaseWork() {
		a.notePair(false, func(s *shard, e *entry, _ time.Duration) { a.settleLease(s, e, o) })
	}
	a.giveBack()
	return 0
}

// notePair updates the attempt's pair entry, if any, making it if need
// be. Reservations held in the pair's shard are given back under the same
// lock when giveBack is set (a success: one lock instead of two).
func (a *Attempt) notePair(giveBack bool, f func(s *shard, e *entry, now time.Duration)) {
	if a.account == "" {
		if giveBack {
			a.giveBack()
		}
		return
	}
	l := a.l
	s := l.shardOf(a.pairID)
	s.mu.Lock()
	e := s.find(a.pairID)
	if giveBack {
		a.giveBackIn(s, e)
	}
	if e == nil {
		e = s.insert(a.pairID, pairKey(a.account, a.ip), KindPair, l.noteEviction)
	}
	f(s, e, a.began)
	s.mu.Unlock()
	if giveBack {
		a.giveBack()
	}
}

// flies reports whether the attempt is counted in a table of logins in
// flight.
func (a *Attempt) flies() bool {
	for _, r := range a.res[:a.nres] {
		if r.fly {
			return true
		}
	}
	return false
}

// land turns the attempt's counts in flight in s into failures in the
// window of e, its pair's entry, at the slots they arrived in: a failed
// attempt stays counted. s.mu is held.
func (a *Attempt) land(s *shard, e *entry) {
	for i := range a.res[:a.nres] {
		if r := &a.res[i]; r.fly && r.s == s {
			s.flyDone(r.id)
			e.win.add(r.slot)
			r.fly = false
		}
	}
}

// giveBackIn returns the reservations held in s, whose lock is held, and
// keeps the others for giveBack. pair is the pair's entry in s, if any:
// its reservation needs no second probe.
func (a *Attempt) giveBackIn(s *shard, pair *entry) {
	n := 0
	for _, r := range a.res[:a.nres] {
		switch {
		case r.s != s:
			a.res[n] = r
			n++
		case pair != nil && !r.fly && r.id == pair.id:
			pair.win.remove(r.slot)
		default:
			r.giveBack()
		}
	}
	a.nres = n
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
	id := l.keys.id(key)
	s := l.shardOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.get(id, key, KindIP, l.noteEviction)
	c := s.coldOf(e)
	now := int32(a.began / time.Second)
	if now-c.lastFail >= int32(penaltyQuiet/time.Second) {
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
	c.lastFail = now
	return level
}

// Dovecot's penalty: the level rises by one per failure up to 4, and 15 s
// without failures forget it.
const (
	maxLevel     = 4
	penaltyQuiet = 15 * time.Second
)

func (l *Limiter) noteEviction() { l.evicted.Add(1) }
