package engine

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
)

// LookupUser runs the userdb chain for name (master USER, LDA/LMTP, the
// userdb step of a login). prefetch carries userdb_* fields a passdb
// returned; it may be nil.
func (e *Engine) LookupUser(ctx context.Context, info *Info, name string, prefetch fields.Fields) Result {
	u, err := e.ProcessName(name, info)
	if err != nil {
		return Result{Status: StatusNotFound, OrigUser: name, Reason: err.Error()}
	}
	return e.lookupUserProcessed(ctx, info, u, name, prefetch, false)
}

// LookupUserFinal is LookupUser for the user of a finished login, whose
// name already went through name processing (master REQUEST).
func (e *Engine) LookupUserFinal(ctx context.Context, info *Info, user, orig string, prefetch fields.Fields) Result {
	return e.lookupUserProcessed(ctx, info, user, orig, prefetch, true)
}

// passdbChecker is a userdb that cannot tell whether a user exists (a
// static userdb without allow_all_users=yes): outside a login, the passdbs
// are asked first, as Dovecot does.
type passdbChecker interface {
	NeedsPassdbCheck() bool
}

// ErrNoIterate means no userdb can list users.
var ErrNoIterate = errors.New("no userdb supports listing users")

// ListUsers calls fn for every user of every userdb that can list users,
// in userdb order, keeping those that match mask (a glob with * and ?,
// compared case-insensitively like Dovecot 2.4 does server-side).
func (e *Engine) ListUsers(ctx context.Context, mask string, fn func(user string) bool) error {
	any := false
	mask = strings.ToLower(mask)
	for _, d := range e.userdbs {
		it, ok := d.Userdb.(backends.Iterator)
		if !ok {
			continue
		}
		any = true
		stop := false
		err := it.IterateUsers(ctx, func(u string) bool {
			if mask != "" && mask != "*" {
				if !wildcardMatch(mask, strings.ToLower(u)) {
					return true
				}
			}
			if !fn(u) {
				stop = true
				return false
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("userdb %s: %w", d.label(), err)
		}
		if stop {
			return nil
		}
	}
	if !any {
		return ErrNoIterate
	}
	return nil
}

// lookupUserProcessed is LookupUser for a processed name.
func (e *Engine) lookupUserProcessed(ctx context.Context, info *Info, u, orig string, prefetch fields.Fields, afterLogin bool) Result {
	vc := e.varsContext(info, u)
	vc.OrigUser = orig
	var acc fields.Fields
	success, internal, found := false, false, false
	reason := ""
	var pf fields.Fields
	if prefetch != nil {
		pf = prefetch
		vc.Passdb = &pf
	}
	for _, d := range e.userdbs {
		switch d.Skip {
		case "found":
			if found {
				continue
			}
		case "notfound":
			if !found {
				continue
			}
		}
		work := acc.Clone()
		vc.Userdb = &work
		applyTemplates(&work, d.DefaultFields, vc)
		var got fields.Fields
		var ok bool
		var err error
		start := time.Now()
		if pc, isPC := d.Userdb.(passdbChecker); isPC && pc.NeedsPassdbCheck() && !afterLogin {
			pr := e.LookupPassdb(ctx, info, u)
			switch pr.Status {
			case StatusOK:
				got, ok, err = d.Userdb.LookupUser(ctx, &backends.Request{User: u, Vars: vc, Prefetch: prefetch})
			case StatusNotFound, StatusFail, StatusUserDisabled, StatusPassExpired:
				ok = false
			default:
				err = fmt.Errorf("passdb lookup for the static userdb: %s", pr.Status)
			}
		} else if d.cacheKey != nil && e.cache != nil {
			vc.PassdbID = d.id
			got, ok, err = e.cachedUser(ctx, d, &backends.Request{User: u, Vars: vc, Prefetch: prefetch})
		} else {
			got, ok, err = d.Userdb.LookupUser(ctx, &backends.Request{User: u, Vars: vc, Prefetch: prefetch})
		}
		e.obs.UserdbLookup(d.Driver, lookupResult(ok, err), time.Since(start))
		d.failing.Store(err != nil)
		var rule Rule
		switch {
		case err != nil:
			e.log.Error("userdb lookup failed", "userdb", d.label(), "user", u, "err", err)
			internal = true
			reason = ""
			rule = d.ResultInternalfail
		case !ok:
			rule = d.ResultFailure
		default:
			found = true
			mergeFields(&work, got)
			applyTemplates(&work, d.OverrideFields, vc)
			acc = work
			rule = d.ResultSuccess
			// user, username and domain rename the user (protocol.md
			// §2.5): the whole name, the part before @, the part after.
			if v, ok := acc.Get("user"); ok && v != "" {
				u = v
				acc.Del("user")
			}
			if v, ok := acc.Get("username"); ok && v != "" {
				if i := strings.IndexByte(u, '@'); i >= 0 {
					u = v + u[i:]
				} else {
					u = v
				}
				acc.Del("username")
			}
			if v, ok := acc.Get("domain"); ok && v != "" {
				if i := strings.IndexByte(u, '@'); i >= 0 {
					u = u[:i+1] + v
				} else {
					u = u + "@" + v
				}
				acc.Del("domain")
			}
			vc.User = u
		}
		cont := false
		switch rule {
		case RuleReturn:
			if ok && err == nil {
				success = true
			}
		case RuleReturnOK:
			success = true
		case RuleReturnFail:
			success = false
		case RuleContinue:
			cont = true
			if ok && err == nil {
				success = true
			}
		case RuleContinueOK:
			cont = true
			success = true
		case RuleContinueFail:
			cont = true
			success = false
		}
		if !cont {
			break
		}
	}
	res := Result{User: u, OrigUser: orig}
	if u == e.set.AnonymousUsername {
		res.Anonymous = true
	}
	if success {
		if v, ok := acc.Get("tempfail"); ok {
			_ = v
			res.Status = StatusTempFail
			res.Reason, _ = acc.Get("reason")
			return res
		}
		out, err := resolveIDs(acc)
		if err != nil {
			e.log.Error("userdb returned an invalid uid/gid", "user", u, "err", err)
			res.Status = StatusTempFail
			res.Reason = err.Error()
			return res
		}
		if err := e.checkIDRange(out); err != nil {
			// Dovecot's mail processes refuse such users; refusing here
			// says why, in one place.
			e.log.Error("userdb result outside the valid uid/gid range", "user", u, "err", err)
			res.Status = StatusTempFail
			res.Reason = err.Error()
			return res
		}
		res.Status = StatusOK
		res.Userdb = out
		return res
	}
	if internal {
		res.Status = StatusTempFail
		res.Reason = reason
		return res
	}
	res.Status = StatusNotFound
	return res
}

func (d *userdb) label() string {
	if d.Name != "" {
		return d.Name
	}
	return d.Driver
}

// resolveIDs turns uid/gid names into numbers (protocol.md §2.5); an
// unknown name is an error, which the caller reports as a temporary failure.
func resolveIDs(fs fields.Fields) (fields.Fields, error) {
	out := fs.Clone()
	for i := range out {
		switch out[i].Key {
		case "uid":
			n, err := lookupUID(out[i].Value)
			if err != nil {
				return nil, err
			}
			out[i].Value = n
		case "gid":
			n, err := lookupGID(out[i].Value)
			if err != nil {
				return nil, err
			}
			out[i].Value = n
		}
	}
	return out, nil
}

func lookupUID(v string) (string, error) {
	if _, err := strconv.ParseUint(v, 10, 32); err == nil {
		return v, nil
	}
	if v == "" || strings.ContainsAny(v, " \t:") {
		return "", &idError{"uid", v}
	}
	u, err := user.Lookup(v)
	if err != nil {
		return "", &idError{"uid", v}
	}
	return u.Uid, nil
}

func lookupGID(v string) (string, error) {
	if _, err := strconv.ParseUint(v, 10, 32); err == nil {
		return v, nil
	}
	if v == "" || strings.ContainsAny(v, " \t:") {
		return "", &idError{"gid", v}
	}
	g, err := user.LookupGroup(v)
	if err != nil {
		return "", &idError{"gid", v}
	}
	return g.Gid, nil
}

// checkIDRange applies first_valid_uid/last_valid_uid and the gid pair.
func (e *Engine) checkIDRange(fs fields.Fields) error {
	check := func(key string, first, last uint32) error {
		v, ok := fs.Get(key)
		if !ok {
			return nil
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return &idError{key, v}
		}
		if uint32(n) < first || (last != 0 && uint32(n) > last) {
			return fmt.Errorf("%s %d is outside the valid range (first_valid_%s=%d, last_valid_%s=%d)", key, n, key, first, key, last)
		}
		return nil
	}
	if err := check("uid", e.set.FirstValidUID, e.set.LastValidUID); err != nil {
		return err
	}
	return check("gid", e.set.FirstValidGID, e.set.LastValidGID)
}

type idError struct{ kind, v string }

func (e *idError) Error() string { return "invalid " + e.kind + " " + strconv.Quote(e.v) }

// wildcardMatch matches s against a mask where * is any run and ? any one
// byte; nothing else is special (Dovecot's wildcard_match).
func wildcardMatch(mask, s string) bool {
	mi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case mi < len(mask) && (mask[mi] == '?' || mask[mi] == s[si]):
			mi++
			si++
		case mi < len(mask) && mask[mi] == '*':
			star, mark = mi, si
			mi++
		case star >= 0:
			mi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for mi < len(mask) && mask[mi] == '*' {
		mi++
	}
	return mi == len(mask)
}
