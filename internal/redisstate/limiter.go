package redisstate

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/yield"
)

// limiterEvents is what the other processes' announcements ask of the
// local limiter.
type limiterEvents interface {
	NoteBlock(kind limiter.Kind, account string, ip netip.Addr, d time.Duration)
	ResetLocal(kind limiter.Kind, display string) int
}

// The brute-force budgets in Redis mirror the limiter's own windows
// (internal/limiter/window.go): a window of twelve slots per key, each a
// hash field "s<slot number>" counting the failures of that slot, the
// slot number taken from Redis's clock (TIME), so that every process
// agrees whatever its own clock says. A pair's hash also holds "ok" (the
// last success, ms) and "pw" (the hashes of its last failed passwords);
// "b" marks a key that refuses, so that the first refusal is announced
// once. One script checks and counts every key of an attempt in one
// round trip; in a Cluster, where an account's keys and a network's keys
// live in different slots, two.

// reserveScript checks and counts attempts: one, or a batch of the
// attempts of concurrent logins (reserveLoop), one script call for all.
// ARGV[1] is the number of attempts; each then has a header (its number
// of keys n; flags: F force, count and refuse nothing, R the password is
// a known repeat, K known-good; the password hash or ""; known_good_for
// in ms; the events channel; the announcement's tail: origin, address,
// account; the lease: 1 when the process asks for a unit, the number of
// expired units it gives back and their slot) and four values per key
// (kind, slot ms, budget, ttl ms), its keys being the next n of KEYS.
// Each attempt's answer is {refusing kind or "", new block 0/1, known-good
// 0/1, repeat 0/1, "kind:slot,..." counted, units leased, wait 0/1, the
// in-flight bucket counted or 0, the slot of the units leased or 0}.
//
// A known-good pair's attempt is counted apart from the pair's failures,
// in a bucket "f<minute>" of logins in flight: refused only when the
// failures (and the units leased, which stand for attempts not made yet)
// fill the budget, told to wait (counted nowhere) when the logins in
// flight fill the rest, as the local limiter does (internal/limiter/
// flying.go). A login in flight counts for two to three minutes at the
// most (the current bucket and the two before), so that a host that died
// with logins in flight holds up nobody for long. A unit of a known-good pair's budget
// (internal/limiter/lease.go) is leased only while the pair's window
// is at most half full.
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- The minute's bucket of a known-good pair's logins in flight.
local flyb = math.floor(now / 60000)
-- One HGETALL per key: its window's slots, and for the pair its
-- known-good time, failed password hashes and logins in flight. Slots
-- that slid out go, and so do buckets older than the two before flyb.
local function load(key, slot)
  local h = redis.call('HGETALL', key)
  local n, fly, f = 0, 0, {}
  for j = 1, #h, 2 do
    local name = h[j]
    local c = string.sub(name, 1, 1)
    if c == 's' then
      local s = tonumber(string.sub(name, 2))
      if s and s > slot - 12 then n = n + tonumber(h[j + 1]) else redis.call('HDEL', key, name) end
    elseif c == 'f' then
      local b = tonumber(string.sub(name, 2))
      if b and b > flyb - 3 then fly = fly + tonumber(h[j + 1]) else redis.call('HDEL', key, name) end
    else
      f[name] = h[j + 1]
    end
  end
  return n, f, fly
end
local function one(ko, nk, ao)
  local flags, pw, kgfor = ARGV[ao], ARGV[ao + 1], tonumber(ARGV[ao + 2])
  local channel, tail = ARGV[ao + 3], ARGV[ao + 4]
  local want, ret, retslot = ARGV[ao + 5] == '1', tonumber(ARGV[ao + 6]), ARGV[ao + 7]
  local force = string.find(flags, 'F', 1, true) ~= nil
  local rep = string.find(flags, 'R', 1, true) ~= nil
  local kg = string.find(flags, 'K', 1, true) ~= nil
  local spec, pair = {}, nil
  for i = 1, nk do
    local p = ao + 4 + 4 * i
    local k = ARGV[p]
    spec[i] = {key = KEYS[ko + i - 1], k = k, sl = tonumber(ARGV[p + 1]), b = tonumber(ARGV[p + 2]), ttl = tonumber(ARGV[p + 3])}
    if k == 'g' then pair = i end
  end
  if pair and ret > 0 then
    local f = 's' .. retslot
    local c = tonumber(redis.call('HGET', spec[pair].key, f) or '0')
    if c > 0 then redis.call('HINCRBY', spec[pair].key, f, -math.min(c, ret)) end
  end
  local pairN, pairF, pairFly = 0, {}, 0
  if pair then pairN, pairF, pairFly = load(spec[pair].key, math.floor(now / spec[pair].sl)) end
  if pair and not force then
    local ok = tonumber(pairF['ok'] or '0')
    kg = ok > 0 and now - ok < kgfor
  end
  if pair and pw ~= '' and not rep then
    rep = string.find(',' .. (pairF['pw'] or '') .. ',', ',' .. pw .. ',', 1, true) ~= nil
  end
  local counted, by, newblock, wait, flying, leased, leaseslot = {}, '', 0, 0, 0, 0, 0
  for i, s in ipairs(spec) do
    if (s.k == 'g') == kg then
      local slot = math.floor(now / s.sl)
      local n, f
      if i == pair then n, f = pairN, pairF else n, f = load(s.key, slot) end
      if not force and s.b > 0 and n >= s.b then
        by = s.k
        if not f['b'] then
          redis.call('HSET', s.key, 'b', '1')
          newblock = 1
          redis.call('PUBLISH', channel, 'block\t' .. s.k .. '\t' .. (s.sl * 12) .. '\t' .. tail)
        end
        break
      end
      if not force and f['b'] then redis.call('HDEL', s.key, 'b') end
      if not rep and i == pair and not force then
        if s.b > 0 and n + pairFly >= s.b then
          wait = 1
          break
        end
        redis.call('HINCRBY', s.key, 'f' .. flyb, 1)
        redis.call('PEXPIRE', s.key, s.ttl)
        flying = flyb
        if want and s.b > 0 and 2 * (pairN + pairFly + 2) <= s.b then
          redis.call('HINCRBY', s.key, 's' .. slot, 1)
          leased, leaseslot = 1, slot
        end
      elseif not rep then
        redis.call('HINCRBY', s.key, 's' .. slot, 1)
        redis.call('PEXPIRE', s.key, s.ttl)
        counted[#counted + 1] = {s.key, s.k, slot}
      end
    end
  end
  local out = {}
  if by ~= '' then
    for _, c in ipairs(counted) do redis.call('HINCRBY', c[1], 's' .. c[3], -1) end
  else
    for _, c in ipairs(counted) do out[#out + 1] = c[2] .. ':' .. c[3] end
  end
  return {by, newblock, kg and 1 or 0, rep and 1 or 0, table.concat(out, ','), leased, wait, flying, leaseslot}
end
local res, a, k = {}, 2, 1
for n = 1, tonumber(ARGV[1]) do
  local nk = tonumber(ARGV[a])
  res[n] = one(k, nk, a + 1)
  a, k = a + 9 + 4 * nk, k + nk
end
return res
`)

// finishScript ends attempts: one or many (a batch, see finishLoop).
// ARGV[1] is the number of attempts; each then has a header of six
// values (the outcome: S success, U undecided, F failure; the password
// hash or ""; the pair's ttl in ms; its number of keys n; the pair's slot
// length in ms; the bucket its login in flight was counted in, or 0) and
// two values per key (kind, slot; slot 0: not counted), its keys being the
// next n of KEYS (the pair index is kind x). A login in flight leaves its
// bucket whatever the outcome; a failure then lands in the pair's window,
// in the current slot. Outcome L
// is the failure of an attempt that used a leased unit (counted at the
// pair's slot): the unit's count is taken off that slot and the failure,
// unless its password failed there before, counted in the current one.
var finishScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local a, k = 2, 1
for _ = 1, tonumber(ARGV[1]) do
  local o, pw, pttl, n, psl, fly = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), ARGV[a + 5]
  a = a + 6
  local pair, idx, pslot
  for i = 0, n - 1 do
    local kind, slot = ARGV[a + 2 * i], ARGV[a + 2 * i + 1]
    local key = KEYS[k + i]
    if kind == 'g' then pair, pslot = key, slot elseif kind == 'x' then idx = key end
    if o ~= 'F' and o ~= 'L' and slot ~= '0' then
      local f = 's' .. slot
      if tonumber(redis.call('HGET', key, f) or '0') > 0 then redis.call('HINCRBY', key, f, -1) end
    end
  end
  a, k = a + 2 * n, k + n
  local touch = false
  if pair and fly ~= '0' then
    local f = 'f' .. fly
    if tonumber(redis.call('HGET', pair, f) or '0') > 0 then redis.call('HINCRBY', pair, f, -1) end
    if o == 'F' then
      redis.call('HINCRBY', pair, 's' .. math.floor(now / psl), 1)
      touch = true
    end
  end
  if pair and o == 'S' then
    redis.call('HSET', pair, 'ok', now)
    touch = true
  elseif pair and (o == 'F' or o == 'L') then
    local list, seen = '', false
    if pw ~= '' then
      list = redis.call('HGET', pair, 'pw') or ''
      seen = string.find(',' .. list .. ',', ',' .. pw .. ',', 1, true) ~= nil
    end
    if o == 'L' then
      -- The unit's count leaves its grant's slot; the failure, unless a
      -- repeat, is counted now, so that it stays a whole window.
      if pslot ~= '0' then
        local f = 's' .. pslot
        if tonumber(redis.call('HGET', pair, f) or '0') > 0 then redis.call('HINCRBY', pair, f, -1) end
      end
      if not seen then
        redis.call('HINCRBY', pair, 's' .. math.floor(now / psl), 1)
        touch = true
      end
    end
    if pw ~= '' and not seen then
      local items = {}
      for x in string.gmatch(list, '[^,]+') do items[#items + 1] = x end
      items[#items + 1] = pw
      while #items > 8 do table.remove(items, 1) end
      redis.call('HSET', pair, 'pw', table.concat(items, ','))
      touch = true
    end
  end
  if touch then
    redis.call('PEXPIRE', pair, pttl)
    if idx then
      redis.call('SADD', idx, pair)
      redis.call('PEXPIRE', idx, pttl)
    end
  end
end
return 1
`)

// resetScript deletes KEYS; with a second key (an account's pair index),
// every pair it lists too. Then it announces the reset (ARGV[1] the
// channel, ARGV[2] the message).
var resetScript = redis.NewScript(`
if #KEYS == 2 then
  for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', k) end
end
for i = 1, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
`)

// limiterStore is the Client as a limiter.Shared.
type limiterStore struct{ c *Client }

// Limiter returns the client as the limiter's shared store.
func (c *Client) Limiter() limiter.Shared { return limiterStore{c} }

// PasswordKey is the key failed passwords are hashed under for the shared
// store: derived from Options.Secret, nil without one.
func (c *Client) PasswordKey() []byte {
	if len(c.o.Secret) == 0 {
		return nil
	}
	return derive(c.o.Secret, "authd limiter password hash")
}

// derive is a key for one purpose from the shared secret.
func derive(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// kindLetter is a kind's letter in the scripts.
var kindLetter = map[limiter.Kind]string{limiter.KindIP: "i", limiter.KindPrefix: "p", limiter.KindAccount: "a", limiter.KindPair: "g"}

func letterKind(s string) (limiter.Kind, bool) {
	for k, l := range kindLetter {
		if l == s {
			return k, true
		}
	}
	return 0, false
}

// slotKey is one key of an attempt.
type slotKey struct {
	kind limiter.Kind
	key  string
}

// groups are the attempt's keys in the order they are checked, split in
// script calls: one in a single server, in a Cluster the account's keys
// (pair, account) and the network's (address, network).
func (s limiterStore) groups(q limiter.SharedQuery) [][]slotKey {
	var acct, net []slotKey
	if q.Account != "" {
		acct = []slotKey{{limiter.KindPair, s.c.keys.pair(q.Account, q.IP)}, {limiter.KindAccount, s.c.keys.account(q.Account)}}
	}
	if q.IP.IsValid() {
		net = []slotKey{{limiter.KindIP, s.c.keys.address(q.IP)}, {limiter.KindPrefix, s.c.keys.network(q.IP)}}
	}
	if !s.c.cluster {
		all := append(append([]slotKey{}, acct[:min(len(acct), 1)]...), net...)
		if len(acct) > 1 {
			all = append(all, acct[1])
		}
		return [][]slotKey{all}
	}
	var out [][]slotKey
	for _, g := range [][]slotKey{acct, net} {
		if len(g) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// Reserve implements limiter.Shared.
func (s limiterStore) Reserve(ctx context.Context, q limiter.SharedQuery) (limiter.SharedVerdict, error) {
	var v limiter.SharedVerdict
	groups := s.groups(q)
	var done [][]slotKey
	for i, g := range groups {
		if i > 0 && v.KnownGood {
			break // a known-good pair counts in its own budget only
		}
		gv, err := s.reserve(ctx, q, g, v.Repeat, v.KnownGood)
		if err != nil {
			s.giveBack(ctx, q, v, done)
			return limiter.SharedVerdict{}, err
		}
		v = mergeVerdict(v, gv, i == 0)
		if v.Refused || v.Wait {
			s.giveBack(ctx, q, v, done)
			for k := range v.Slots {
				v.Slots[k] = 0
			}
			return v, nil
		}
		done = append(done, g)
	}
	return v, nil
}

func mergeVerdict(v, g limiter.SharedVerdict, first bool) limiter.SharedVerdict {
	if first {
		v.KnownGood = g.KnownGood
	}
	v.Repeat = v.Repeat || g.Repeat
	v.Refused, v.By, v.NewBlock, v.Wait = g.Refused, g.By, g.NewBlock, g.Wait
	v.Lease += g.Lease
	if g.FlySlot != 0 {
		v.FlySlot = g.FlySlot
	}
	if g.LeaseSlot != 0 {
		v.LeaseSlot = g.LeaseSlot
	}
	for k, sl := range g.Slots {
		if sl != 0 {
			v.Slots[k] = sl
		}
	}
	return v
}

// giveBack undoes the reservations of the groups already counted when a
// later group refused or failed.
func (s limiterStore) giveBack(ctx context.Context, q limiter.SharedQuery, v limiter.SharedVerdict, done [][]slotKey) {
	for _, g := range done {
		_ = s.finish(ctx, q, v, limiter.Undecided, g)
	}
}

// reserveItem is one attempt's check in one group of keys.
type reserveItem struct {
	keys []string
	args []any // the attempt's header and specs (see reserveScript)
	done chan reserveResult
}

type reserveResult struct {
	res []any
	err error
}

// reserve runs the reserve script on one group of keys: batched with
// other logins' on a single server, alone in a Cluster (where the
// attempts of a batch would live in different slots).
func (s limiterStore) reserve(ctx context.Context, q limiter.SharedQuery, g []slotKey, repeat, knownGood bool) (limiter.SharedVerdict, error) {
	flags := ""
	if q.Force {
		flags += "F"
		if q.KnownGood {
			flags += "K"
		}
	}
	if repeat {
		flags += "R"
	}
	if knownGood {
		flags += "K"
	}
	it := reserveItem{keys: make([]string, len(g))}
	tail := s.c.origin + "\t" + ipText(q.IP) + "\t" + q.Account
	want := "0"
	if q.Lease {
		want = "1"
	}
	it.args = []any{len(g), flags, pwText(q), q.KnownGoodFor.Milliseconds(), s.c.keys.events(), tail,
		want, q.ReturnUnits, q.ReturnSlot}
	for i, k := range g {
		it.keys[i] = k.key
		b := q.Budgets[k.kind]
		ttl := b.Window
		if k.kind == limiter.KindPair {
			ttl += q.KnownGoodFor
		}
		it.args = append(it.args, kindLetter[k.kind], max(b.Window.Milliseconds()/12, 1), b.Failures, ttl.Milliseconds())
	}
	var res []any
	var err error
	if s.c.cluster {
		err = s.c.call(ctx, opReserve, s.c.o.CallTimeout, func(ctx context.Context) error {
			all, err := reserveScript.Run(ctx, s.c.rdb, it.keys, append([]any{1}, it.args...)...).Slice()
			if err == nil && len(all) == 1 {
				res, _ = all[0].([]any)
			}
			return err
		})
	} else {
		res, err = s.c.reserveBatched(ctx, it)
	}
	if err != nil {
		return limiter.SharedVerdict{}, err
	}
	return parseReserve(res)
}

// reserveBatched hands it to reserveLoop and waits for its answer, at most
// the call deadline (and a little): a login never waits longer for Redis,
// even behind a batch already stuck on a hung server, whose own call
// opens the breaker.
func (c *Client) reserveBatched(ctx context.Context, it reserveItem) ([]any, error) {
	if c.down.Load() {
		c.stats.skipped.get(opReserve).Add(1)
		return nil, fmt.Errorf("%s: %w", opReserve, ErrUnavailable)
	}
	it.done = make(chan reserveResult, 1)
	wait := time.NewTimer(c.o.CallTimeout + 5*time.Millisecond)
	defer wait.Stop()
	select {
	case c.reserveQ <- it:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		return nil, fmt.Errorf("%s: %w: queue full", opReserve, ErrUnavailable)
	}
	select {
	case r := <-it.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		err := fmt.Errorf("%s: no answer in time", opReserve)
		c.trip(opReserve, err)
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
}

// maxReserveBatch bounds one batch of reservations.
const maxReserveBatch = 128

// reserveLoop runs the queued reservations, as many as are waiting, in
// one script call, until ctx ends. Redis runs scripts one after the other
// anyway: the reservations that arrive while a batch runs make the next.
func (c *Client) reserveLoop(ctx context.Context) {
	batch := make([]reserveItem, 0, maxReserveBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-c.reserveQ:
			batch = append(batch[:0], it)
		}
		// One yield: the logins that are about to ask join this batch
		// instead of each starting one of their own (when any waits to
		// run: package yield).
		yield.Others()
	fill:
		for len(batch) < maxReserveBatch {
			select {
			case it := <-c.reserveQ:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		var keys []string
		args := []any{len(batch)}
		for _, it := range batch {
			keys = append(keys, it.keys...)
			args = append(args, it.args...)
		}
		var all []any
		err := c.call(ctx, opReserve, c.o.CallTimeout, func(ctx context.Context) error {
			var err error
			all, err = reserveScript.Run(ctx, c.rdb, keys, args...).Slice()
			return err
		})
		if err == nil && len(all) != len(batch) {
			err = fmt.Errorf("redis: reserve script answered %d of %d attempts", len(all), len(batch))
		}
		for i, it := range batch {
			r := reserveResult{err: err}
			if err == nil {
				r.res, _ = all[i].([]any)
			}
			it.done <- r
		}
	}
}

// parseReserve reads the reserve script's answer.
func parseReserve(res []any) (limiter.SharedVerdict, error) {
	var v limiter.SharedVerdict
	if len(res) != 9 {
		return v, fmt.Errorf("redis: reserve script answered %d values", len(res))
	}
	by, _ := res[0].(string)
	if by != "" {
		k, ok := letterKind(by)
		if !ok {
			return v, fmt.Errorf("redis: reserve script: unknown kind %q", by)
		}
		v.Refused, v.By = true, k
	}
	v.NewBlock = res[1] == int64(1)
	v.KnownGood = res[2] == int64(1)
	v.Repeat = res[3] == int64(1)
	if res[5] == int64(1) {
		v.Lease = 1
		v.LeaseSlot, _ = res[8].(int64)
	}
	v.Wait = res[6] == int64(1)
	v.FlySlot, _ = res[7].(int64)
	counted, _ := res[4].(string)
	for _, c := range strings.Split(counted, ",") {
		l, n, ok := strings.Cut(c, ":")
		if !ok {
			continue
		}
		k, kok := letterKind(l)
		slot, err := strconv.ParseInt(n, 10, 64)
		if kok && err == nil {
			v.Slots[k] = slot
		}
	}
	return v, nil
}

// Finish implements limiter.Shared. The work is queued and sent in
// batches by finishLoop: nothing of it decides the login being answered,
// and one call for many logins costs Redis and authd a fraction of one
// call each. A give-back so delayed (by one batch's round trip) can only
// make a concurrent attempt see one failure too many, never one too few.
func (s limiterStore) Finish(ctx context.Context, q limiter.SharedQuery, v limiter.SharedVerdict, o limiter.Outcome) error {
	if !s.c.Up() {
		// Not sent: a give-back is held until Redis answers again.
		for _, g := range s.groups(q) {
			if it, ok := s.finishItem(q, v, o, g); ok {
				s.c.held.hold([]finishItem{it})
			}
		}
		return fmt.Errorf("%s: %w: %w", opFinish, ErrUnavailable, errNotSent)
	}
	var first error
	for _, g := range s.groups(q) {
		it, ok := s.finishItem(q, v, o, g)
		if !ok {
			continue
		}
		s.c.finishPending.Add(1)
		select {
		case s.c.finishQ <- it:
		default:
			s.c.finishPending.Add(-1)
			// The queue is full: Redis is slower than the logins; this
			// caller waits for its own call.
			if err := s.c.sendFinishesOrHold(ctx, []finishItem{it}); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// finishItem is one attempt's end in one group of keys.
type finishItem struct {
	keys []string
	args []any // outcome, password hash, pair ttl, len(keys), then one spec per key
}

// finishItem builds the finish of one group; false when there is nothing
// to do there.
func (s limiterStore) finishItem(q limiter.SharedQuery, v limiter.SharedVerdict, o limiter.Outcome, g []slotKey) (finishItem, bool) {
	out := map[limiter.Outcome]string{limiter.Succeeded: "S", limiter.Failed: "F", limiter.Undecided: "U"}[o]
	if q.Leased && o == limiter.Failed {
		out = "L"
	}
	var it finishItem
	var specs []any
	work := false
	for _, k := range g {
		it.keys = append(it.keys, k.key)
		specs = append(specs, kindLetter[k.kind], strconv.FormatInt(v.Slots[k.kind], 10))
		if k.kind == limiter.KindPair {
			it.keys = append(it.keys, s.c.keys.pairIndex(q.Account))
			specs = append(specs, "x", "0")
			work = work || o == limiter.Succeeded || v.FlySlot != 0 || (o == limiter.Failed && (q.HasPassword || q.Leased))
		}
		work = work || (o != limiter.Failed && v.Slots[k.kind] != 0)
	}
	pairTTL := q.Budgets[limiter.KindPair].Window + q.KnownGoodFor
	pairSlot := max(q.Budgets[limiter.KindPair].Window.Milliseconds()/12, 1)
	it.args = append([]any{out, pwText(q), pairTTL.Milliseconds(), len(it.keys), pairSlot, strconv.FormatInt(v.FlySlot, 10)}, specs...)
	return it, work
}

// finish ends one group at once (a give-back after a refusal).
func (s limiterStore) finish(ctx context.Context, q limiter.SharedQuery, v limiter.SharedVerdict, o limiter.Outcome, g []slotKey) error {
	it, ok := s.finishItem(q, v, o, g)
	if !ok {
		return nil
	}
	return s.c.sendFinishes(ctx, []finishItem{it})
}

// maxFinishBatch bounds one batch of finishes.
const maxFinishBatch = 128

// finishLoop sends the queued finishes, as many as are waiting in one
// call, until ctx ends (what is still queued then is dropped: give-backs
// and password hashes, whose loss only errs towards refusing).
func (c *Client) finishLoop(ctx context.Context) {
	batch := make([]finishItem, 0, maxFinishBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-c.finishQ:
			batch = append(batch[:0], it)
		}
	fill:
		for len(batch) < maxFinishBatch {
			select {
			case it := <-c.finishQ:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		_ = c.sendFinishesOrHold(ctx, batch)
		c.finishPending.Add(-int64(len(batch)))
	}
}

// sendFinishes runs the finish script on items: one call with every item
// on a single server; in a Cluster, where items live in different slots,
// one call per item, pipelined.
func (c *Client) sendFinishes(ctx context.Context, items []finishItem) error {
	return c.call(ctx, opFinish, c.o.CallTimeout, func(ctx context.Context) error {
		if !c.cluster {
			var keys []string
			args := []any{len(items)}
			for _, it := range items {
				keys = append(keys, it.keys...)
				args = append(args, it.args...)
			}
			return finishScript.Run(ctx, c.rdb, keys, args...).Err()
		}
		if len(items) == 1 {
			return finishScript.Run(ctx, c.rdb, items[0].keys, append([]any{1}, items[0].args...)...).Err()
		}
		if err := finishScript.Load(ctx, c.rdb).Err(); err != nil {
			return err
		}
		pipe := c.rdb.Pipeline()
		for _, it := range items {
			finishScript.EvalSha(ctx, pipe, it.keys, append([]any{1}, it.args...)...)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
}

// Reset implements limiter.Shared: the key goes, and every process is
// told to forget it.
func (s limiterStore) Reset(ctx context.Context, kind limiter.Kind, display string) error {
	var keys []string
	switch kind {
	case limiter.KindIP, limiter.KindPrefix:
		ip, ok := parseAddr(display)
		if !ok {
			return nil
		}
		keys = []string{s.c.keys.address(ip)}
		if kind == limiter.KindPrefix {
			keys = []string{s.c.keys.network(ip)}
		}
	case limiter.KindAccount:
		account := display
		if u, err := strconv.Unquote(display); err == nil {
			account = u
		}
		if account == "" {
			return nil
		}
		keys = []string{s.c.keys.account(account), s.c.keys.pairIndex(account)}
	default:
		return nil
	}
	msg := "reset\t" + kindLetter[kind] + "\t" + s.c.origin + "\t" + display
	return s.c.call(ctx, opReset, 4*s.c.o.CallTimeout, func(ctx context.Context) error {
		return resetScript.Run(ctx, s.c.rdb, keys, s.c.keys.events(), msg).Err()
	})
}

// parseAddr reads an address or a network as `authd penalty` shows them.
func parseAddr(s string) (netip.Addr, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), true
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

func pwText(q limiter.SharedQuery) string {
	if !q.HasPassword {
		return ""
	}
	return strconv.FormatUint(uint64(q.PasswordHash), 16)
}

func ipText(ip netip.Addr) string {
	if !ip.IsValid() {
		return "-"
	}
	return ip.String()
}

// onEvent applies one announcement from the events channel.
func (c *Client) onEvent(payload string, l limiterEvents) {
	f := strings.SplitN(payload, "\t", 6)
	switch {
	case len(f) == 6 && f[0] == "block":
		kind, ok := letterKind(f[1])
		ms, err := strconv.ParseInt(f[2], 10, 64)
		if !ok || err != nil {
			c.stats.dropped.Add(1)
			return
		}
		ip, _ := netip.ParseAddr(f[4])
		l.NoteBlock(kind, f[5], ip, time.Duration(ms)*time.Millisecond)
	case len(f) >= 4 && f[0] == "reset":
		kind, ok := letterKind(f[1])
		if !ok {
			c.stats.dropped.Add(1)
			return
		}
		if f[2] != c.origin {
			l.ResetLocal(kind, strings.Join(f[3:], "\t"))
		}
	default:
		c.stats.dropped.Add(1)
	}
}
