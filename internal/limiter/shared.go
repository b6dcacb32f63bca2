package limiter

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Shared is brute-force state kept outside the process, so that several
// authd processes count one set of budgets (internal/redisstate keeps it
// in Redis; docs/scale-out.md). The limiter asks it on every attempt and
// keeps counting on its own as well, so that it can decide alone when the
// store cannot be reached.
//
// Every method is bounded by the store's own deadline. An error means the
// store could not be asked ("could not tell"): the limiter then decides
// with its own counts, never lets the attempt through unchecked.
type Shared interface {
	// Reserve checks the attempt's budgets and counts it in them, as
	// Begin does locally, and answers whether it is refused.
	Reserve(ctx context.Context, q SharedQuery) (SharedVerdict, error)
	// Finish ends an attempt Reserve counted: a success or an undecided
	// attempt gives its reservations back (a success also makes the pair
	// known-good), a failure remembers the password's hash.
	Finish(ctx context.Context, q SharedQuery, v SharedVerdict, o Outcome) error
	// Reset forgets one key, as Limiter.Reset does locally, and tells
	// the other processes to forget it too.
	Reset(ctx context.Context, kind Kind, display string) error
}

// SharedQuery is one attempt as the shared store sees it.
type SharedQuery struct {
	// Account is the account after name processing ("" without one).
	Account string
	// IP is the client's address, IPv4-mapped addresses unmapped; the
	// zero Addr without one.
	IP netip.Addr
	// PasswordHash is the keyed hash of the password tried (HasPassword),
	// under the key every sharing process uses (SetShared).
	PasswordHash uint32
	HasPassword  bool
	// Budgets are the limiter's budgets by Kind, and KnownGoodFor how
	// long a success keeps a pair known-good.
	Budgets      [numKinds]Budget
	KnownGoodFor time.Duration
	// Force counts the attempt whatever the budgets say and refuses
	// nothing: failures counted while the store was away, replayed.
	Force bool
	// KnownGood (Force only) counts the failure in the pair's budget
	// only, as the attempt was counted locally.
	KnownGood bool
	// Lease asks the store to count one more unit of a known-good
	// pair's budget for this process, when the pair's window is at most
	// half full (lease.go); ReturnUnits such units counted at ReturnSlot
	// are given back first.
	Lease       bool
	ReturnUnits int
	ReturnSlot  int64
	// Leased (Finish of a failure only): the attempt used a unit of a
	// lease, whose count moves to the current slot as the failure's; a
	// password the pair failed with before only gives the count back.
	Leased bool
}

// SharedVerdict is the shared store's answer to Reserve.
type SharedVerdict struct {
	Refused bool
	By      Kind // the kind of key that refused it
	// NewBlock: this attempt made the key start refusing (logged once).
	NewBlock bool
	// Repeat: the same wrong password was tried before for this account
	// from this network: not counted.
	Repeat bool
	// KnownGood: the pair logged in before, on any process.
	KnownGood bool
	// Slots is where each kind's key was counted, for Finish to give it
	// back; 0 where it was not counted.
	Slots [numKinds]int64
	// Lease is how many units the store counted for this process besides
	// the attempt, in the pair's slot LeaseSlot (SharedQuery.Lease).
	Lease     int
	LeaseSlot int64
	// Wait: the attempt is a known-good pair's, and the pair's failures
	// and its logins in flight on every process fill its budget. It was
	// counted nowhere; it waits for a login in flight to end and asks
	// again, as it would wait locally (flying.go).
	Wait bool
	// FlySlot is where the store counted a known-good pair's attempt
	// among the pair's logins in flight (0: it did not); Finish takes it
	// out, and a failure lands in the pair's window.
	FlySlot int64
}

// maxDebts bounds the failures remembered for replay while the shared
// store is away; beyond it they are only counted here.
const maxDebts = 4096

// remoteBlock is a refusal another process broadcast.
type remoteBlock struct {
	until time.Time
}

// maxRemoteBlocks bounds the broadcast refusals held; beyond it new ones
// are dropped (the shared store still refuses while it answers).
const maxRemoteBlocks = 100_000

// sharedState is the limiter's side of a shared store.
type sharedState struct {
	// has is set while a store is set: the attempts of a limiter without
	// one (the common case) read it instead of taking mu.
	has    atomic.Bool
	mu     sync.Mutex
	store  Shared
	pwKey  []byte
	debts  []SharedQuery
	replay int   // debts taken by a Reconcile under way, not yet replayed
	lost   int64 // debts dropped beyond maxDebts
	remote map[string]remoteBlock
}

// SetShared makes the limiter count in s as well (nil: no shared store).
// passwordKey keys the hashes of failed passwords the store keeps, so
// that a password repeated on another process is recognised; it must be
// the same on every process (nil: this process's own random key, and a
// repeat is recognised only where it was first seen). It may be called
// while attempts run: a reload swaps the store.
func (l *Limiter) SetShared(s Shared, passwordKey []byte) {
	l.sh.mu.Lock()
	defer l.sh.mu.Unlock()
	l.sh.store = s
	l.sh.has.Store(s != nil)
	l.sh.pwKey = passwordKey
	if l.sh.remote == nil {
		l.sh.remote = map[string]remoteBlock{}
	}
}

func (l *Limiter) sharedStore() Shared {
	if !l.sh.has.Load() {
		return nil
	}
	l.sh.mu.Lock()
	defer l.sh.mu.Unlock()
	return l.sh.store
}

// sharedHash is the password's hash under the shared key: unlike
// passwordHash (a per-process maphash seed, which cannot be shared), it
// must come out the same on every process, and it leaves the process, so
// it is a MAC under the key all processes derive from the shared secret.
// Its cost (≈1 µs) is small beside the store's round trip it goes with.
func (l *Limiter) sharedHash(password []byte) uint32 {
	l.sh.mu.Lock()
	key := l.sh.pwKey
	l.sh.mu.Unlock()
	if key == nil {
		return l.passwordHash(password)
	}
	m := hmac.New(sha256.New, key)
	m.Write(password)
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint32(m.Sum(sum[:0]))
}

// askShared asks the shared store about a, which this process has
// counted already, and lets the store's verdict decide.
func (l *Limiter) askShared(ctx context.Context, sh Shared, a *Attempt, r Request) {
	a.sh = &sharedAttempt{}
	a.sh.q = a.sharedQuery()
	a.sh.q.Lease, a.sh.q.ReturnUnits, a.sh.q.ReturnSlot = r.Account != "", a.ret, a.retSlot
	if r.Password != nil && r.Account != "" {
		a.sh.q.HasPassword, a.sh.q.PasswordHash = true, l.sharedHash(r.Password)
	}
	v, ok, err := l.reserveShared(ctx, sh, a)
	if !ok {
		// Waited in vain for the pair's logins in flight, on this
		// process or others, to end: a temporary failure, counted
		// nowhere (Done gives the local count back).
		a.busy = true
		l.busy.Add(1)
		a.sh.store, a.sh.sv = sh, v
		return
	}
	if err != nil {
		// Alone: this process's counts decide, and so do the refusals
		// the others broadcast while the store answered.
		a.sh.degraded = true
		if !a.refused {
			if k, ok := l.remoteBlocked(a, r.Account); ok {
				a.giveBack()
				a.refused, a.by = true, k
				l.refusals[k].Add(1)
			}
		}
		return
	}
	a.sh.store, a.sh.sv = sh, v
	a.repeat = v.Repeat
	if !v.Refused && v.Lease > 0 {
		a.grant, a.grantSlot = v.Lease, v.LeaseSlot
	}
	switch {
	case v.Refused:
		// Not counted anywhere, as a local refusal is not.
		a.giveBack()
		a.refused, a.by = true, v.By
		l.refusals[v.By].Add(1)
		if v.NewBlock {
			l.blocks[v.By].Add(1)
			l.cfg.Log.Warn("penalty: refusing attempts (shared budget)", "kind", v.By.String(), "key", sharedDisplay(v.By, r.Account, a.ip))
		}
	case a.refused:
		// The shared counts are the whole truth while the store answers;
		// this process's are a part of them, and behind only after the
		// store lost its data.
		a.refused = false
	}
}

// Between two questions to the shared store about a pair whose budget is
// full of logins in flight: the ends of other processes' logins reach the
// store in their batches (a round trip or two), so the pause starts short
// and doubles.
const (
	sharedPauseMin = 5 * time.Millisecond
	sharedPauseMax = 80 * time.Millisecond
)

// reserveShared asks the store about a; while the store answers Wait, the
// attempt pauses and asks again, for at most Config.InFlightWait in all.
// ok is false when it waited in vain (or ctx ended meanwhile).
func (l *Limiter) reserveShared(ctx context.Context, sh Shared, a *Attempt) (v SharedVerdict, ok bool, err error) {
	var since time.Time
	pause := sharedPauseMin
	for {
		v, err = sh.Reserve(ctx, a.sh.q)
		if err != nil || !v.Wait {
			return v, true, err
		}
		// The units given back went with the first question.
		a.sh.q.ReturnUnits, a.sh.q.ReturnSlot = 0, 0
		if since.IsZero() {
			since = time.Now()
			a.noteWait()
		}
		if !a.pause(ctx, since, pause) {
			return v, false, nil
		}
		pause = min(2*pause, sharedPauseMax)
	}
}

// sharedQuery is the attempt as the shared store sees it, before the
// password and the lease's part.
func (a *Attempt) sharedQuery() SharedQuery {
	return SharedQuery{Account: a.account, IP: a.ip, Budgets: a.l.budgets, KnownGoodFor: a.l.cfg.KnownGoodFor}
}

// finishShared ends the attempt in the shared store, or remembers a
// failure counted alone for replay once the store is back.
func (a *Attempt) finishShared(o Outcome) {
	l := a.l
	switch {
	case a.sh == nil:
		return
	case a.sh.store != nil && !a.sh.sv.Refused:
		if o == Failed && !a.sh.q.HasPassword && a.sh.sv.FlySlot == 0 {
			return // the reservation stays as the failure; nothing to note
		}
		// Bounded by the store's own deadline. A store may hold a
		// give-back it could not send (redisstate does, while its
		// breaker is open); one it loses, or a lost password hash, only
		// errs towards refusing.
		_ = a.sh.store.Finish(context.Background(), a.sh.q, a.sh.sv, o)
	case a.sh.degraded && o == Failed && !a.refused && !a.repeat:
		q := a.sh.q
		q.Force, q.KnownGood = true, a.knownGood
		l.sh.mu.Lock()
		if len(l.sh.debts) < maxDebts {
			l.sh.debts = append(l.sh.debts, q)
		} else {
			l.sh.lost++
		}
		l.sh.mu.Unlock()
	}
}

// Reconcile replays into the shared store the failures counted while it
// could not be reached, so that its budgets include them. The shared
// store's owner calls it when the store answers again. It stops at the
// first error (the failures not replayed are kept) or when ctx ends.
func (l *Limiter) Reconcile(ctx context.Context) error {
	l.sh.mu.Lock()
	sh, debts := l.sh.store, l.sh.debts
	if sh == nil {
		l.sh.mu.Unlock()
		return nil
	}
	l.sh.debts = nil
	l.sh.replay += len(debts)
	l.sh.mu.Unlock()
	for i, q := range debts {
		v, err := sh.Reserve(ctx, q)
		if err == nil && q.HasPassword {
			err = sh.Finish(ctx, q, v, Failed)
		}
		l.sh.mu.Lock()
		l.sh.replay--
		l.sh.mu.Unlock()
		if err != nil {
			l.sh.mu.Lock()
			l.sh.replay -= len(debts) - i - 1
			l.sh.debts = append(debts[i:], l.sh.debts...)
			if over := len(l.sh.debts) - maxDebts; over > 0 {
				l.sh.debts = l.sh.debts[over:]
				l.sh.lost += int64(over)
			}
			l.sh.mu.Unlock()
			return err
		}
	}
	return nil
}

// PendingReplay is how many failures wait for Reconcile or are being
// replayed.
func (l *Limiter) PendingReplay() int {
	l.sh.mu.Lock()
	defer l.sh.mu.Unlock()
	return len(l.sh.debts) + l.sh.replay
}

// NoteBlock records that another process found a key over its budget:
// while the shared store cannot be asked, this process refuses the key
// for d (the key's window, at most: its failures slide out by then).
func (l *Limiter) NoteBlock(kind Kind, account string, ip netip.Addr, d time.Duration) {
	key, ok := subjectKey(kind, account, normalize(ip))
	if !ok {
		return
	}
	until := l.now().Add(d)
	l.sh.mu.Lock()
	defer l.sh.mu.Unlock()
	if l.sh.remote == nil {
		l.sh.remote = map[string]remoteBlock{}
	}
	if _, held := l.sh.remote[key]; !held && len(l.sh.remote) >= maxRemoteBlocks {
		l.pruneRemote()
		if len(l.sh.remote) >= maxRemoteBlocks {
			return
		}
	}
	l.sh.remote[key] = remoteBlock{until: until}
}

// pruneRemote drops expired broadcast refusals; l.sh.mu is held.
func (l *Limiter) pruneRemote() {
	now := l.now()
	for k, b := range l.sh.remote {
		if !now.Before(b.until) {
			delete(l.sh.remote, k)
		}
	}
}

// remoteBlocked reports whether one of the keys a counts in was broadcast
// as refusing, and which kind.
func (l *Limiter) remoteBlocked(a *Attempt, account string) (Kind, bool) {
	keys, kinds, n := a.keys(account)
	now := l.now()
	l.sh.mu.Lock()
	defer l.sh.mu.Unlock()
	for i := range n {
		if b, ok := l.sh.remote[keys[i]]; ok {
			if now.Before(b.until) {
				return kinds[i], true
			}
			delete(l.sh.remote, keys[i])
		}
	}
	return 0, false
}

// ResetLocal is Reset without the shared store: another process reset the
// key (its broadcast). It also drops the key's broadcast refusal.
func (l *Limiter) ResetLocal(kind Kind, display string) int {
	if k, ok := parseDisplayed(kind, display); ok {
		l.sh.mu.Lock()
		delete(l.sh.remote, k)
		l.sh.mu.Unlock()
	}
	if kind == KindAccount {
		return l.resetAccount(display)
	}
	return l.resetKey(kind, display)
}

// subjectKey is the internal key of a kind's subject.
func subjectKey(kind Kind, account string, ip netip.Addr) (string, bool) {
	switch kind {
	case KindIP:
		return ipKey(ip), ip.IsValid()
	case KindPrefix:
		return prefixKey(ip), ip.IsValid()
	case KindAccount:
		return accountKey(account), account != ""
	case KindPair:
		return pairKey(account, ip), account != ""
	}
	return "", false
}

// sharedDisplay renders a kind's subject for a log line.
func sharedDisplay(kind Kind, account string, ip netip.Addr) string {
	key, ok := subjectKey(kind, account, ip)
	if !ok {
		return ""
	}
	return displayKey(key)
}
