package engine

import (
	"context"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/blocking"
	"github.com/authd-project/authd/internal/mono"
	"github.com/authd-project/authd/internal/vars"
)

// The auth cache (docs/architecture.md §Cache semantics, docs/protocol.md
// §5.9). The engine caches what a backend answered (the stored password
// and fields, or "unknown user"), never a temporary failure nor a refusal,
// and applies default_fields, override_fields, allow_nets … to every
// request after the cache, since those depend on the request. The rules
// themselves (freshness, stale use, fingerprints, rechecks) live in
// package cache: Get, CheckPassword and CheckRemote.

// backendTimeout bounds one shared backend lookup (singleflight): callers
// wait on their own contexts, so one impatient client cannot fail the
// others, and a stuck backend cannot hold the shared call forever.
const backendTimeout = 30 * time.Second

// SetCache installs the auth cache (nil: no cache). Call before serving.
func (e *Engine) SetCache(c *cache.Cache) { e.cache = c }

// Cache returns the installed cache, for CACHE-FLUSH, metrics and gRPC.
func (e *Engine) Cache() *cache.Cache { return e.cache }

// FlushCache removes every entry (users empty) or those of users, and
// reports how many went. It answers CACHE-FLUSH and doveadm auth cache
// flush; a disabled cache flushes 0.
func (e *Engine) FlushCache(users []string) int { return e.cache.Flush(users) }

// cacheKeyFor decides whether a driver's answers may be cached and with
// which key template. Drivers that read memory (passwd-file with a fixed
// path, static) are not cached, as in Dovecot; a key template that would
// put a password into the key is refused.
func (e *Engine) cacheKeyFor(db any, userdb bool) *vars.Template {
	var t *vars.Template
	if k, ok := db.(backends.PassCacheKeyer); ok && !userdb {
		t = k.PassCacheKey()
	}
	if k, ok := db.(backends.UserCacheKeyer); ok && userdb {
		t = k.UserCacheKey()
	}
	if t == nil || t.String() == "" {
		return nil
	}
	if cache.SecretInKey(t.String()) {
		e.log.Warn("not caching a backend whose cache key would contain the password", "key", t.String())
		return nil
	}
	return t
}

// toCacheEntry turns a passdb answer into what the cache keeps: found and
// unknown are stored; a refusal travels through Do to the waiting callers
// and is never stored.
func toCacheEntry(ans backends.PassAnswer) cache.Entry {
	switch ans.Outcome {
	case backends.Unknown:
		return cache.Entry{Negative: true}
	case backends.Found, backends.Mismatch:
		return cache.Entry{HasPassword: ans.HasPassword, Scheme: ans.Scheme, Data: ans.Data, Fields: ans.Fields}
	}
	return cache.Entry{Refusal: uint8(ans.Outcome), HasPassword: ans.HasPassword, Scheme: ans.Scheme, Data: ans.Data, Fields: ans.Fields}
}

// fromCacheEntry is the passdb answer a cache entry stands for. Cached
// entries are shared and read-only: the request gets a copy of the fields
// it may change.
func fromCacheEntry(ce *cache.Entry) backends.PassAnswer {
	switch {
	case ce.Negative:
		return backends.PassAnswer{Outcome: backends.Unknown}
	case ce.Refusal != 0:
		return backends.PassAnswer{Outcome: backends.Outcome(ce.Refusal), PassEntry: backends.PassEntry{
			HasPassword: ce.HasPassword, Scheme: ce.Scheme, Data: ce.Data, Fields: ce.Fields.Clone()}}
	}
	return backends.PassAnswer{Outcome: backends.Found, PassEntry: backends.PassEntry{
		HasPassword: ce.HasPassword, Scheme: ce.Scheme, Data: ce.Data, Fields: ce.Fields.Clone()}}
}

// lookupPassdb asks one passdb for r's user, through the cache when the
// passdb is cached. force skips a fresh cache entry (the password may have
// changed). The lookup's provenance goes with the answer, for the
// password rules of the verdict step.
func (e *Engine) lookupPassdb(ctx context.Context, p *passdb, breq *backends.Request, force bool) (passLookup, error) {
	if p.cacheKey == nil || e.cache == nil {
		ans, err := e.observePassdb(ctx, p, breq)
		p.noteAnswer(ctx, err, false)
		return passLookup{ans: ans}, err
	}
	key := p.cacheKey.ExpandCacheKey(breq.Vars, false)
	a, err := e.cache.Get(ctx, key, force, backendTimeout, func(ctx context.Context) (cache.Entry, error) {
		ans, err := e.observePassdb(ctx, p, breq)
		if err != nil {
			return cache.Entry{}, err
		}
		return toCacheEntry(ans), nil
	})
	switch {
	case err != nil:
		p.noteAnswer(ctx, err, false)
		return passLookup{}, err
	case a.Source == cache.Stale:
		p.noteAnswer(ctx, a.BackendErr, false)
		e.log.Warn("passdb failed; answering from an expired cache entry", "passdb", p.label(), "err", a.BackendErr)
	default:
		p.noteAnswer(ctx, nil, a.Source == cache.Fresh)
	}
	return passLookup{ans: fromCacheEntry(a.Entry), key: key, entry: a.Entry, fromCache: a.Source != cache.FromBackend}, nil
}

// observePassdb is one passdb backend lookup, counted for metrics.
func (e *Engine) observePassdb(ctx context.Context, p *passdb, breq *backends.Request) (backends.PassAnswer, error) {
	if !p.memory {
		blocking.Announce(ctx)
	}
	start := mono.Now()
	ans, err := p.Passdb.LookupPass(ctx, breq)
	e.obs.PassdbLookup(p.Driver, lookupResult(ans.Outcome, err), mono.Since(start))
	return ans, err
}

// verifyPassdb checks password through a passdb that verifies passwords
// itself (LDAP auth_bind, PAM), with the cache's rules when it is cached:
// no hash to keep, but the fields and the keyed fingerprint of the
// password that last verified. (Dovecot keeps an unsalted SHA1 of the
// password for the same purpose, docs/testing.md §4.5.)
func (e *Engine) verifyPassdb(ctx context.Context, p *passdb, breq *backends.Request, v backends.Verifier, password []byte) (passLookup, error) {
	check := func() (cache.RemoteCheck, error) {
		blocking.Announce(ctx)
		start := mono.Now()
		ans, err := v.VerifyPass(ctx, breq, password)
		e.obs.PassdbLookup(p.Driver, lookupResult(ans.Outcome, err), mono.Since(start))
		if err != nil {
			return cache.RemoteCheck{}, err
		}
		return cache.RemoteCheck{Entry: toCacheEntry(ans), Right: ans.Outcome == backends.Found}, nil
	}
	var c *cache.Cache
	key := ""
	if p.cacheKey != nil {
		c, key = e.cache, p.cacheKey.ExpandCacheKey(breq.Vars, false)
	}
	rc, fromCache, err := c.CheckRemote(ctx, key, password, check)
	p.noteAnswer(ctx, err, fromCache)
	if err != nil {
		return passLookup{}, err
	}
	ans := fromCacheEntry(&rc.Entry)
	if ans.Outcome == backends.Found && !rc.Right {
		ans.Outcome = backends.Mismatch
	}
	return passLookup{ans: ans, selfChecked: true, fromCache: fromCache}, nil
}

// lookupUserdb asks one userdb, through the cache when it is cached.
func (e *Engine) lookupUserdb(ctx context.Context, d *userdb, breq *backends.Request) (backends.UserAnswer, error) {
	fetch := func(ctx context.Context) (backends.UserAnswer, error) {
		if !d.memory {
			blocking.Announce(ctx)
		}
		start := mono.Now()
		ans, err := d.Userdb.LookupUser(ctx, breq)
		e.obs.UserdbLookup(d.Driver, lookupResult(ans.Outcome, err), mono.Since(start))
		return ans, err
	}
	if d.cacheKey == nil || e.cache == nil {
		return fetch(ctx)
	}
	key := d.cacheKey.ExpandCacheKey(breq.Vars, true)
	a, err := e.cache.Get(ctx, key, false, backendTimeout, func(ctx context.Context) (cache.Entry, error) {
		ans, err := fetch(ctx)
		if err != nil {
			return cache.Entry{}, err
		}
		if ans.Outcome != backends.Found {
			return cache.Entry{Negative: true}, nil
		}
		return cache.Entry{Fields: ans.Fields}, nil
	})
	if err != nil {
		return backends.UserAnswer{}, err
	}
	if a.Source == cache.Stale {
		e.log.Warn("userdb failed; answering from an expired cache entry", "userdb", d.label(), "err", a.BackendErr)
	}
	if a.Entry.Negative {
		return backends.UserAnswer{Outcome: backends.Unknown}, nil
	}
	return backends.UserAnswer{Outcome: backends.Found, Fields: a.Entry.Fields.Clone()}, nil
}
