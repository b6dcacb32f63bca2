package engine

import (
	"context"
	"errors"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
)

// The auth cache (design.md §Cache semantics, protocol.md §5.9). The
// engine caches what a backend answered (the stored password and fields,
// or "unknown user"), never a temporary failure, and applies
// default_fields, override_fields, allow_nets … to every request after
// the cache, since those depend on the request.

// backendTimeout bounds one shared backend lookup (singleflight): callers
// wait on their own contexts, so one impatient client cannot fail the
// others, and a stuck backend cannot hold the shared call forever.
const backendTimeout = 30 * time.Second

// passCacheKeyer and userCacheKeyer are drivers whose lookups depend on
// request variables (a query, a filter, a templated path): their cache
// keys come from those variables.
type passCacheKeyer interface{ PassCacheKey() *vars.Template }
type userCacheKeyer interface{ UserCacheKey() *vars.Template }

// stringCacheKeyer is PAM's cache_key= setting.
type stringCacheKeyer interface{ CacheKey() string }

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
	switch d := db.(type) {
	case passCacheKeyer:
		if !userdb {
			t = d.PassCacheKey()
		}
	}
	if u, ok := db.(userCacheKeyer); ok && userdb {
		t = u.UserCacheKey()
	}
	if t == nil {
		if s, ok := db.(stringCacheKeyer); ok && !userdb && s.CacheKey() != "" {
			if p, err := vars.Parse(s.CacheKey()); err == nil {
				t = p
			}
		}
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

func toCacheEntry(pe backends.PassEntry, found bool) cache.Entry {
	if !found {
		return cache.Entry{Negative: true}
	}
	return cache.Entry{HasPassword: pe.HasPassword, Scheme: pe.Scheme, Data: pe.Data, Fields: pe.Fields}
}

func fromCacheEntry(ce *cache.Entry) (backends.PassEntry, bool) {
	if ce.Negative {
		return backends.PassEntry{}, false
	}
	// Cached entries are shared and read-only: the request gets a copy of
	// the fields it may change.
	return backends.PassEntry{HasPassword: ce.HasPassword, Scheme: ce.Scheme, Data: ce.Data, Fields: ce.Fields.Clone()}, true
}

// cachedPass is a passdb lookup through the cache. force skips a fresh
// entry (the password may have changed). It returns the cache key and the
// entry the answer came from (for the password bookkeeping), fromCache
// when a fresh entry answered without the backend.
func (e *Engine) cachedPass(ctx context.Context, p *passdb, breq *backends.Request, force bool) (entry backends.PassEntry, found bool, err error, key string, ce *cache.Entry, fromCache bool) {
	key = p.cacheKey.ExpandCacheKey(breq.Vars, false)
	old, fresh, cfound := e.cache.Lookup(key)
	if cfound && fresh && !force {
		entry, found = fromCacheEntry(old)
		return entry, found, nil, key, old, true
	}
	start := time.Now()
	ne, derr, _ := e.cache.Do(ctx, key, backendTimeout, func(ctx context.Context) (cache.Entry, error) {
		pe, ok, err := p.Passdb.LookupPass(ctx, breq)
		if err != nil {
			return cache.Entry{}, err
		}
		return toCacheEntry(pe, ok), nil
	})
	e.obs.PassdbLookup(p.Driver, lookupResult(!ne.Negative, derr), time.Since(start))
	if derr != nil {
		if ctx.Err() == nil && !definiteRefusal(derr) {
			p.failing.Store(true)
		}
		if cfound && !definiteRefusal(derr) {
			// The backend could not tell: the last known answer is better
			// than a temporary failure (design.md).
			e.cache.NoteStale()
			e.log.Warn("passdb failed; answering from an expired cache entry", "passdb", p.label(), "err", derr)
			entry, found = fromCacheEntry(old)
			return entry, found, nil, key, old, true
		}
		return backends.PassEntry{}, false, derr, key, nil, false
	}
	entry, found = fromCacheEntry(&ne)
	return entry, found, nil, key, &ne, false
}

// cachedUser is a userdb lookup through the cache.
func (e *Engine) cachedUser(ctx context.Context, d *userdb, breq *backends.Request) (fields.Fields, bool, error) {
	key := d.cacheKey.ExpandCacheKey(breq.Vars, true)
	old, fresh, cfound := e.cache.Lookup(key)
	if cfound && fresh {
		if old.Negative {
			return nil, false, nil
		}
		return old.Fields.Clone(), true, nil
	}
	ne, err, _ := e.cache.Do(ctx, key, backendTimeout, func(ctx context.Context) (cache.Entry, error) {
		fs, ok, err := d.Userdb.LookupUser(ctx, breq)
		if err != nil {
			return cache.Entry{}, err
		}
		if !ok {
			return cache.Entry{Negative: true}, nil
		}
		return cache.Entry{Fields: fs}, nil
	})
	if err != nil {
		if cfound {
			e.cache.NoteStale()
			e.log.Warn("userdb failed; answering from an expired cache entry", "userdb", d.label(), "err", err)
			if old.Negative {
				return nil, false, nil
			}
			return old.Fields.Clone(), true, nil
		}
		return nil, false, err
	}
	if ne.Negative {
		return nil, false, nil
	}
	return ne.Fields.Clone(), true, nil
}

// cachedVerify runs a passdb that checks passwords itself (LDAP auth_bind,
// PAM) through the cache. It has no hash to keep, so the entry holds the
// fields and the keyed fingerprint of the password that last verified: a
// repeat login with it skips the bind. (Dovecot keeps an unsalted SHA1 of
// the password for the same purpose, realservers.md §4.5.) Like Dovecot's,
// an entry lets an old password in until it expires or is flushed.
func (e *Engine) cachedVerify(ctx context.Context, p *passdb, breq *backends.Request, v backends.Verifier, password []byte) (backends.PassEntry, bool, bool, error) {
	key := p.cacheKey.ExpandCacheKey(breq.Vars, false)
	old, fresh, cfound := e.cache.Lookup(key)
	if cfound && fresh {
		if old.Negative {
			return backends.PassEntry{}, false, false, nil
		}
		if e.cache.PasswordMatches(key, old, password) {
			e.cache.MarkResult(key, old, true)
			pe, _ := fromCacheEntry(old)
			return pe, true, true, nil
		}
	}
	start := time.Now()
	pe, found, ok, err := v.VerifyPass(ctx, breq, password)
	e.obs.PassdbLookup(p.Driver, lookupResult(found, err), time.Since(start))
	if err != nil {
		if ctx.Err() == nil && !definiteRefusal(err) {
			p.failing.Store(true)
		}
		if definiteRefusal(err) {
			// The account is disabled or expired now: that is an answer,
			// and the fingerprint of the password that used to work must
			// not let it in during a later outage.
			e.cache.ForgetPassword(key)
			return pe, found, ok, err
		}
		if cfound && !old.Negative && e.cache.PasswordMatches(key, old, password) {
			// The server could not tell; this password verified before.
			e.cache.NoteStale()
			pe, _ := fromCacheEntry(old)
			return pe, true, true, nil
		}
		return pe, found, ok, err
	}
	ce := toCacheEntry(backends.PassEntry{Fields: pe.Fields}, found)
	e.cache.Store(key, ce)
	if found {
		e.cache.MarkResult(key, &ce, ok)
		if ok {
			e.cache.RememberPassword(key, &ce, password)
		}
	}
	return pe, found, ok, nil
}

// definiteRefusal reports errors that are the backend's answer about the
// account (disabled, expired, or no credentials to give), not a failure to
// answer: an expired cache entry must not stand in for them.
func definiteRefusal(err error) bool {
	return errors.Is(err, backends.ErrUserDisabled) || errors.Is(err, backends.ErrPassExpired) || errors.Is(err, backends.ErrNoCredentials)
}
