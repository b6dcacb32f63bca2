package engine

import (
	"context"
	"errors"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/schemes"
)

// One passdb's step of a request, in three parts: the lookup (the
// passdb's answer, through the cache), the fields (default_fields, the
// backend's fields, override_fields, and what they say about the request),
// and the verdict (the password check). The chain around it is in
// passdb.go.

// passLookup is the lookup part's result: the passdb's answer and where it
// came from, which the verdict's password rules need.
type passLookup struct {
	ans backends.PassAnswer
	// selfChecked: the passdb checked the password itself (auth_bind,
	// PAM); ans.Outcome Found means right, Mismatch wrong.
	selfChecked bool
	// key and entry are the cache key and the cached entry the answer
	// came from; entry is nil when the passdb is not cached.
	key   string
	entry *cache.Entry
	// fromCache: the answer was served by the cache, not by the backend
	// for this request.
	fromCache bool
}

// passFlags is what a passdb's fields said about the request.
type passFlags struct {
	fail, nopassword, noauth bool
	allowNetsOK              bool
}

// runPassdb runs one passdb's step. A password that did not match a cached
// entry which may be out of date gets one more step against the backend
// (docs/protocol.md §5.9).
func (e *Engine) runPassdb(ctx context.Context, r *request, p *passdb, password []byte, check bool) passResult {
	res := e.passdbStep(ctx, r, p, password, check, false)
	if res == pRecheck {
		res = e.passdbStep(ctx, r, p, password, check, true)
	}
	return res
}

// passdbStep is one attempt at a passdb's step; force bypasses a fresh
// cache entry.
func (e *Engine) passdbStep(ctx context.Context, r *request, p *passdb, password []byte, check, force bool) passResult {
	work := r.extra.Clone()
	userdbWork := r.userdbF.Clone()
	r.vc.Passdb = &work
	r.vc.PassdbID = p.id
	applyTemplates(&work, p.DefaultFields, r.vc)

	breq := &backends.Request{User: r.user, Vars: r.vc}
	var lk passLookup
	var err error
	if v, ok := backends.SelfVerifier(p.Passdb); ok && check && !p.Deny {
		lk, err = e.verifyPassdb(ctx, p, breq, v, password)
		if err == nil && !lk.fromCache && lk.ans.Outcome != backends.Unknown && lk.ans.Outcome != backends.NoCredentials {
			// The backend checked the password (a bind, PAM); for a user
			// it does not know, it did no such work.
			r.verifies++
		}
	} else {
		lk, err = e.lookupPassdb(ctx, p, breq, force)
	}
	if err != nil {
		e.log.Error("passdb lookup failed", "passdb", p.label(), "user", r.user, "err", err)
		r.reason = "passdb lookup failed"
		r.failFields = work
		return pInternal
	}
	if res, done := e.answerWithoutFields(ctx, r, p, work, lk, password, check); done {
		return res
	}

	r.hadFound = true
	own := lk.ans.Fields
	if !p.DropDriverFields {
		mergeFields(&work, own)
	}
	r.provided = own
	r.vc.Provider, r.vc.ProviderFields = p.FieldsProvider, &r.provided
	applyTemplates(&work, p.OverrideFields, r.vc)
	r.vc.Provider, r.vc.ProviderFields, r.provided = "", nil, nil
	fl := r.applyPassFields(&work, &userdbWork)
	r.vc.Passdb = &work

	result := e.passVerdict(ctx, r, p, lk, fl, password, check)
	switch {
	case result == pRecheck && !force:
		return pRecheck
	case result == pRecheck:
		result = pMismatch // the backend's own answer did not match either
	case result == pOK && !fl.allowNetsOK:
		r.reason = "remote ip not in allow_nets"
		result = pUnknown
	}
	if result == pOK || result == pNext {
		r.extra = work
		r.userdbF = userdbWork
		if result == pOK && !check {
			r.stored = lk.ans.PassEntry
			r.nopassword = fl.nopassword
		}
	} else {
		r.failFields = work
	}
	return result
}

// answerWithoutFields settles the answers that end the step before the
// passdb's fields apply: an unknown user, a refused account, a passdb that
// cannot hand out credentials, and a user a deny passdb knows. done is
// false when the user was found and the step goes on.
func (e *Engine) answerWithoutFields(ctx context.Context, r *request, p *passdb, work fields.Fields, lk passLookup, password []byte, check bool) (res passResult, done bool) {
	switch lk.ans.Outcome {
	case backends.Disabled, backends.Expired:
		return e.refusal(ctx, r, work, lk, password, check), true
	case backends.NoCredentials:
		e.log.Error("passdb cannot look up credentials", "passdb", p.label(), "user", r.user)
		r.reason = "Configured passdbs don't support credentials lookups"
		r.noCredentials = true
		r.failFields = work
		return pInternal, true
	case backends.Found, backends.Mismatch:
		if !p.Deny {
			return 0, false
		}
		r.reason = "user is denied"
		r.failFields = work
		return pDisabled, true
	}
	if p.Deny {
		return pUnknown, true
	}
	// The request verifies a dummy at its end when nothing else was
	// verified (VerifyPlain): an unknown user costs what a wrong password
	// does.
	r.reason = "unknown user"
	r.failFields = work
	return pUnknown, true
}

// refusal answers a disabled or expired account. The account state is only
// revealed to someone who knows the password: when the passdb gave a hash
// (shadow), it is checked first.
func (e *Engine) refusal(ctx context.Context, r *request, work fields.Fields, lk passLookup, password []byte, check bool) passResult {
	ans := lk.ans
	if check && !lk.selfChecked && ans.HasPassword {
		r.verifies++
		if ok, err := e.verify(ctx, ans.Scheme, ans.Data, password, r.origUser); err == nil && !ok {
			r.reason = "password mismatch"
			r.failFields = work
			return pMismatch
		}
	}
	for _, f := range ans.Fields {
		work.Set(f.Key, f.Value) // e.g. PAM's reason=
	}
	r.failFields = work
	if ans.Outcome == backends.Disabled {
		r.reason = "account disabled"
		return pDisabled
	}
	r.reason = "password expired"
	return pExpired
}

// applyPassFields reads the fields a passdb step produced: user, username
// and domain rename the user (docs/protocol.md §2.6), userdb_* become
// prefetch fields, flags are collected, and the fields the auth server
// consumes are dropped.
func (r *request) applyPassFields(work, userdbWork *fields.Fields) passFlags {
	fl := passFlags{allowNetsOK: true}
	var kept fields.Fields
	for _, f := range *work {
		switch f.Key {
		case "user":
			r.setUser(f.Value)
		case "username":
			r.setUser(replaceLocalPart(r.user, f.Value))
		case "domain":
			r.setUser(replaceDomain(r.user, f.Value))
		case "nodelay":
			r.noDelay = true
			kept = append(kept, f)
		case "fail":
			fl.fail = true
		case "nopassword":
			fl.nopassword = true
		case "noauthenticate":
			fl.noauth = true
		case "allow_nets":
			fl.allowNetsOK = fl.allowNetsOK && allowNets(f.Value, r.info.RemoteIP, !r.info.NotLocal)
		case "allow_real_nets":
			rip := r.info.RealRemoteIP
			if rip == "" {
				rip = r.info.RemoteIP
			}
			fl.allowNetsOK = fl.allowNetsOK && allowNets(f.Value, rip, true)
		case "password", "password_noscheme", "delay_until", "passdb_import":
			// consumed
		default:
			if k, ok := strings.CutPrefix(f.Key, "userdb_"); ok {
				userdbWork.Set(k, f.Value)
				continue
			}
			kept = append(kept, f)
		}
	}
	*work = kept
	return fl
}

// replaceLocalPart is user with the part before '@' replaced by local.
func replaceLocalPart(user, local string) string {
	if i := strings.IndexByte(user, '@'); i >= 0 {
		return local + user[i:]
	}
	return local
}

// replaceDomain is user with the part after '@' replaced (or added).
func replaceDomain(user, domain string) string {
	if i := strings.IndexByte(user, '@'); i >= 0 {
		return user[:i+1] + domain
	}
	return user + "@" + domain
}

// passVerdict decides a found user's step: the fields' flags first, then
// the password check.
func (e *Engine) passVerdict(ctx context.Context, r *request, p *passdb, lk passLookup, fl passFlags, password []byte, check bool) passResult {
	ans := lk.ans
	switch {
	case fl.fail:
		r.reason = "passdb set fail"
		return pUnknown
	case fl.noauth:
		return pNext
	case fl.nopassword:
		if ans.HasPassword && ans.Data != "" {
			e.log.Error("nopassword set but password is non-empty", "passdb", p.label(), "user", r.user)
			r.reason = "nopassword with a password"
			return pInternal
		}
		return pOK
	case !check:
		return pOK
	case lk.selfChecked:
		if ans.Outcome != backends.Found {
			r.reason = "password mismatch"
			return pMismatch
		}
		return pOK
	case !ans.HasPassword:
		r.reason = "passdb returned no password"
		return pMismatch
	}
	return e.verifyStored(ctx, r, p, lk, password)
}

// verifyStored checks password against the stored one, with the cache's
// password rules when the answer came through the cache: a remembered
// fingerprint spares the scheme's cost, and a mismatch against an entry
// that may be out of date asks for a recheck (docs/architecture.md §Cache
// semantics).
func (e *Engine) verifyStored(ctx context.Context, r *request, p *passdb, lk passLookup, password []byte) passResult {
	ans := lk.ans
	var c *cache.Cache
	if lk.entry != nil {
		c = e.cache
	}
	v, err := c.CheckPassword(lk.key, lk.entry, lk.fromCache, password, func() (bool, error) {
		r.verifies++
		ok, err := e.verify(ctx, ans.Scheme, ans.Data, password, r.origUser)
		if err == nil {
			e.noteStored(p, ans.Scheme, ans.Data)
		}
		return ok, err
	})
	switch {
	case err != nil:
		return e.verifyFailed(ctx, r, p, ans.Scheme, err)
	case v == cache.Right:
		return pOK
	case v == cache.Recheck:
		r.reason = "password mismatch"
		return pRecheck
	}
	r.reason = "password mismatch"
	return pMismatch
}

// verifyFailed is verifyStored's answer when the verification could not
// tell (kept apart: errors.As's target would cost an allocation on every
// verification).
func (e *Engine) verifyFailed(ctx context.Context, r *request, p *passdb, scheme string, err error) passResult {
	var over *schemes.OverBudgetError
	switch {
	case errors.Is(err, ErrVerifyShed):
		// Counted and logged (once a second) where it was shed.
		r.reason = reasonShed
	case errors.As(err, &over):
		// The password may be right: "could not tell". The log names the
		// parameter (never the hash) so that the admin can fix the row or
		// raise the limit.
		e.log.Error("stored password hash over the cost budget", "passdb", p.label(), "user", r.user,
			"scheme", over.Scheme, "param", over.Param, "value", over.Value, "limit", over.Limit)
		r.reason = "stored password hash over the cost budget"
	case ctx.Err() != nil:
		// The request ran out of time waiting for a verify slot (or a
		// memory-hard hash's memory): nothing is wrong with the row.
		e.log.Warn("password verification abandoned", "passdb", p.label(), "user", r.user, "err", err)
		r.reason = "request timed out"
	default:
		e.log.Error("invalid password in passdb", "passdb", p.label(), "user", r.user, "scheme", scheme, "err", err)
		r.reason = "invalid stored password"
	}
	return pInternal
}
