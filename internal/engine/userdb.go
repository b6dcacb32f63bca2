package engine

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
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

// userChain is the state of a walk of the userdb chain.
type userChain struct {
	user              string
	acc               fields.Fields // the fields so far
	success, internal bool
	found             bool // some userdb found the user (for skip)
}

// lookupUserProcessed is LookupUser for a processed name: the userdb chain
// (docs/protocol.md §5.4), then the uid/gid checks.
func (e *Engine) lookupUserProcessed(ctx context.Context, info *Info, u, orig string, prefetch fields.Fields, afterLogin bool) Result {
	vc := e.varsContext(info, u)
	vc.OrigUser = orig
	if prefetch != nil {
		pf := prefetch
		vc.Passdb = &pf
	}
	ch := &userChain{user: u}
	for _, d := range e.userdbs {
		if (d.Skip == config.SkipFound && ch.found) || (d.Skip == config.SkipNotFound && !ch.found) {
			continue
		}
		if !e.runUserdb(ctx, ch, d, info, vc, prefetch, afterLogin) {
			break
		}
	}
	return e.finishUser(ch, orig)
}

// runUserdb runs one userdb's step and applies its result rule; it
// reports whether the chain goes on.
func (e *Engine) runUserdb(ctx context.Context, ch *userChain, d *userdb, info *Info, vc *vars.Context, prefetch fields.Fields, afterLogin bool) bool {
	work := ch.acc.Clone()
	vc.Userdb = &work
	applyTemplates(&work, d.DefaultFields, vc)
	ans, err := e.userdbAnswer(ctx, d, info, vc, prefetch, afterLogin)
	d.failing.Store(err != nil)
	found := err == nil && ans.Outcome == backends.Found
	var rule config.Rule
	switch {
	case err != nil:
		e.log.Error("userdb lookup failed", "userdb", d.label(), "user", ch.user, "err", err)
		ch.internal = true
		rule = d.ResultInternalfail
	case !found:
		rule = d.ResultFailure
	default:
		ch.found = true
		own := ans.Fields
		if !d.DropDriverFields {
			mergeFields(&work, own)
		}
		vc.Provider, vc.ProviderFields = d.FieldsProvider, &own
		applyTemplates(&work, d.OverrideFields, vc)
		vc.Provider, vc.ProviderFields = "", nil
		ch.acc = work
		ch.user = renameUser(ch.user, &ch.acc)
		vc.User = ch.user
		rule = d.ResultSuccess
	}
	switch rule {
	case config.RuleReturn, config.RuleContinue:
		ch.success = ch.success || found
	case config.RuleReturnOK, config.RuleContinueOK:
		ch.success = true
	case config.RuleReturnFail, config.RuleContinueFail:
		ch.success = false
	}
	return rule.Continues()
}

// userdbAnswer asks one userdb. A userdb that cannot tell whether a user
// exists (static without allow_all_users) is trusted only after a login;
// otherwise the passdbs are asked first, as Dovecot does.
func (e *Engine) userdbAnswer(ctx context.Context, d *userdb, info *Info, vc *vars.Context, prefetch fields.Fields, afterLogin bool) (backends.UserAnswer, error) {
	breq := &backends.Request{User: vc.User, Vars: vc, Prefetch: prefetch}
	if pc, ok := d.Userdb.(backends.PassdbChecker); ok && pc.NeedsPassdbCheck() && !afterLogin {
		switch pr := e.LookupPassdb(ctx, info, vc.User); pr.Status {
		case StatusOK:
		case StatusNotFound, StatusFail, StatusUserDisabled, StatusPassExpired:
			return backends.UserAnswer{Outcome: backends.Unknown}, nil
		default:
			return backends.UserAnswer{}, fmt.Errorf("passdb lookup for the static userdb: %s", pr.Status)
		}
	}
	vc.PassdbID = d.id
	return e.lookupUserdb(ctx, d, breq)
}

// renameUser applies the user, username and domain fields of a userdb
// result to the user name (docs/protocol.md §2.5): the whole name, the
// part before @, the part after. The fields are consumed.
func renameUser(u string, acc *fields.Fields) string {
	if v, ok := acc.Get("user"); ok && v != "" {
		u = v
		acc.Del("user")
	}
	if v, ok := acc.Get("username"); ok && v != "" {
		u = replaceLocalPart(u, v)
		acc.Del("username")
	}
	if v, ok := acc.Get("domain"); ok && v != "" {
		u = replaceDomain(u, v)
		acc.Del("domain")
	}
	return u
}

// finishUser turns the chain's state into a Result: a user found is
// checked for a tempfail field and valid uid/gid.
func (e *Engine) finishUser(ch *userChain, orig string) Result {
	res := Result{User: ch.user, OrigUser: orig, Anonymous: ch.user == e.set.AnonymousUsername}
	switch {
	case ch.success:
	case ch.internal:
		res.Status = StatusTempFail
		return res
	default:
		res.Status = StatusNotFound
		return res
	}
	if ch.acc.Has("tempfail") {
		res.Status = StatusTempFail
		res.Reason, _ = ch.acc.Get("reason")
		if res.Reason != "" {
			// Meant for the client: the master socket's FAIL and gRPC's
			// UNAVAILABLE carry it (docs/protocol.md §2.4.1).
			res.Userdb = fields.Fields{{Key: "reason", Value: res.Reason}}
		}
		return res
	}
	out, err := resolveIDs(ch.acc)
	if err != nil {
		e.log.Error("userdb returned an invalid uid/gid", "user", ch.user, "err", err)
		res.Status, res.Reason = StatusTempFail, err.Error()
		return res
	}
	if err := e.checkIDRange(out); err != nil {
		// Dovecot's mail processes refuse such users; refusing here
		// says why, in one place.
		e.log.Error("userdb result outside the valid uid/gid range", "user", ch.user, "err", err)
		res.Status, res.Reason = StatusTempFail, err.Error()
		return res
	}
	res.Status = StatusOK
	res.Userdb = out
	return res
}

func (d *userdb) label() string {
	if d.Name != "" {
		return d.Name
	}
	return d.Driver
}

// resolveIDs turns uid/gid names into numbers (docs/protocol.md §2.5); an
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
