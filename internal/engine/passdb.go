package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/vars"
	"github.com/authd-project/authd/schemes"
)

// passResult is one passdb's verdict.
type passResult int

const (
	pOK passResult = iota
	pUnknown
	pMismatch
	pInternal
	pDisabled
	pExpired
	pNext    // noauthenticate: fields only
	pRecheck // a cached password did not match: ask the backend again
)

// request is the state of one request as it walks the chains.
type request struct {
	info       *Info
	origUser   string
	user       string
	masterUser string
	vc         *vars.Context // &vars, in the pool's requests
	vars       vars.Context
	extra      fields.Fields // passdb extra fields kept from successful passdbs
	failFields fields.Fields // the last failed passdb's fields, for FAIL replies
	userdbF    fields.Fields // userdb_* prefetch fields
	verified   bool          // a passdb already verified the password ("skip_password_check")
	verifies   int           // password verifications done (equal-cost failures)
	success    bool
	internal   bool
	noDelay    bool
	hadNext    bool
	hadFound   bool
	masterPass bool       // a master passdb asked for the login user to be looked up
	final      passResult // pDisabled / pExpired end the chain at once
	reason     string
	// stored is the password of the passdb that succeeded in a lookup
	// without a password check, for credential lookups.
	stored     backends.PassEntry
	nopassword bool
	// noCredentials: a passdb could only verify, not look up (PAM).
	noCredentials bool
	// provided holds a passdb's own fields while its override_fields
	// read them (vc.ProviderFields points here: no allocation of its own).
	provided fields.Fields
	// hint is the limiter's pair ID worked out while the name was
	// processed (prefetchPair).
	hint limiter.PairHint
}

// requests recycles the state of requests that ended with nothing left
// holding it (done): a login allocated about 1 KB here, 40 % of its
// bytes, and each collection costs the logins running through it
// (docs/architecture.md §The request pipeline, step 6).
var requests = sync.Pool{New: func() any { return new(request) }}

// newRequest readies a request for info, from the pool.
func newRequest(info *Info, origUser string) *request {
	r := requests.Get().(*request)
	r.info, r.origUser = info, origUser
	r.vc = &r.vars
	fillVars(r.vc, info)
	r.vc.OrigUser = origUser
	return r
}

// done gives r back to the pool when its context has not ended. Every
// wait that could leave work running with r behind (a cache lookup
// still in flight, a backend call on its own goroutine) is given up only
// when ctx ends, so an unended ctx means that nothing holds r or r.vc any
// longer. The reset drops r's slices rather than reusing them: a Result
// may share their arrays.
func (r *request) done(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	*r = request{}
	requests.Put(r)
}

func (r *request) setUser(u string) {
	r.user = u
	r.vc.User = u
}

// VerifyPlain authenticates authcid (optionally as authzid) with a
// plaintext password: the path of PLAIN, LOGIN and every mechanism that
// ends in a password check.
func (e *Engine) VerifyPlain(ctx context.Context, info *Info, authzid, authcid string, password []byte) Result {
	if res, ok := e.checkLengths(info, authzid, authcid, password); !ok {
		return res
	}
	loginName, masterName := e.splitLogin(info, authzid, authcid)
	r := newRequest(info, origName(authcid, masterName))
	defer r.done(ctx)
	if masterName == "" {
		e.prefetchPair(r, loginName)
	}
	// %w is needed by some passdb templates; it lives only in this
	// request's memory and is never logged.
	r.vc.Password = string(password)
	if masterName == "" {
		u, err := e.processName(loginName, r.vc)
		if err != nil {
			// Dovecot names the user as typed in such a FAIL.
			return e.failEqually(ctx, r, walkAuth, password, Result{Status: StatusFail, OrigUser: authcid, Reason: err.Error()})
		}
		r.setUser(u)
		if res, ok := e.beginAttempt(ctx, r, "", password); !ok {
			return res
		}
		e.runPassdbs(ctx, r, walkAuth, password)
		res := e.finishPass(r)
		if res.Status != StatusOK && res.Status != StatusTempFail {
			res = e.failEqually(ctx, r, walkAuth, password, res)
		}
		return e.Succeeded(ctx, info, withProxyPass(res, password))
	}

	// Master-user login (docs/protocol.md §5.3): the master authenticates with
	// its own password against master passdbs, then becomes the login user.
	mu, err := e.ProcessName(masterName, info)
	if err != nil {
		return e.failEqually(ctx, r, walkMasterAuth, password, Result{Status: StatusFail, OrigUser: r.origUser, Reason: err.Error()})
	}
	r.setUser(mu)
	if res, ok := e.beginAttempt(ctx, r, loginName, password); !ok {
		return res
	}
	if !e.hasMasterPassdbs() {
		r.reason = "master login without master passdbs"
		return e.failEqually(ctx, r, walkMasterAuth, password, Result{Status: StatusFail, User: mu, OrigUser: r.origUser, Reason: r.reason})
	}
	e.runPassdbs(ctx, r, walkMasterAuth, password)
	if !r.success && !r.masterPass {
		res := e.finishPass(r)
		if res.Status != StatusTempFail {
			res = e.failEqually(ctx, r, walkMasterAuth, password, res)
		}
		return res
	}
	if res, ok := e.becomeLoginUser(ctx, r, info, loginName, mu); !ok {
		return res
	}
	return e.Succeeded(ctx, info, withProxyPass(e.finishPass(r), password))
}

// becomeLoginUser ends a master login whose master authenticated: the
// request becomes the login user's (a login_user field from the master's
// passdb wins), and with pass=yes the normal passdbs must know that user,
// asked without a password check (docs/protocol.md §5.3). ok is false with
// the failure to answer.
func (e *Engine) becomeLoginUser(ctx context.Context, r *request, info *Info, loginName, mu string) (res Result, ok bool) {
	lu, err := e.ProcessName(loginName, info)
	if err != nil {
		return Result{Status: StatusAuthzFail, User: mu, OrigUser: r.origUser, Reason: err.Error()}, false
	}
	if v, ok := r.extra.Get("login_user"); ok && v != "" {
		lu = v
	}
	r.masterUser = mu
	r.vc.MasterUser = mu
	r.vc.LoginUser = lu
	r.setUser(lu)
	if !r.masterPass {
		return Result{}, true
	}
	r.success, r.internal, r.verified = false, false, true
	r.failFields = nil
	e.runPassdbs(ctx, r, walkLookup, nil)
	if !r.success {
		res := e.finishPass(r)
		if res.Status == StatusFail {
			res.Status = StatusAuthzFail
		}
		return res, false
	}
	return Result{}, true
}

// origName is the name Dovecot keeps as the original user name
// (%{orig_user}, original_user=): the authentication id, or in a master
// login the master's name as sent, without "login*" before the separator
// (auth_request_set_username splits it off first).
func origName(authcid, masterName string) string {
	if masterName != "" {
		return masterName
	}
	return authcid
}

// withProxyPass keeps the typed password for a proxy reply.
func withProxyPass(res Result, password []byte) Result {
	if res.Status == StatusOK && (res.Fields.Has("proxy") || res.Fields.Has("proxy_maybe")) && !res.Fields.Has("pass") {
		res.ProxyPassword = string(password)
	}
	return res
}

// splitLogin decides who authenticates and as whom (docs/protocol.md §5.3):
// "login*master" with the separator, or an authorization id that differs
// from the authentication id after name processing (so alice with authzid
// alice@example.com under a default realm is no master login).
func (e *Engine) splitLogin(info *Info, authzid, authcid string) (login, master string) {
	if e.set.UsernameFromCert && info != nil && info.CertUsername != "" {
		authcid = info.CertUsername
	}
	if l, m, ok := e.splitMaster(authcid); ok {
		return l, m
	}
	if authzid == "" || authzid == authcid {
		return authcid, ""
	}
	a, err1 := e.ProcessName(authzid, info)
	c, err2 := e.ProcessName(authcid, info)
	if err1 == nil && err2 == nil && a == c {
		return authcid, ""
	}
	return authzid, authcid
}

func (e *Engine) hasMasterPassdbs() bool {
	for _, p := range e.passdbs {
		if p.Master {
			return true
		}
	}
	return false
}

// LookupCredentials looks up authcid (optionally as authzid) and returns
// the credentials the mechanism needs in the wanted scheme (CRAM-MD5,
// DIGEST-MD5, SCRAM-SHA-1, SCRAM-SHA-256, PLAIN), derived from the stored
// password as docs/protocol.md §4.1 says. credUser is the name the
// credentials are derived for when that is not authcid ("" means authcid):
// DIGEST-MD5 hashes user:realm:password with the name the client sent,
// not the processed one. A stored scheme that cannot produce them is a
// plain failure, logged ("Requested CRAM-MD5 scheme, but we have only
// SHA512-CRYPT"). The mechanism then checks the client's proof.
func (e *Engine) LookupCredentials(ctx context.Context, info *Info, authzid, authcid, wanted, credUser string) (Result, []byte) {
	if credUser == "" {
		credUser = authcid
	}
	if res, ok := e.checkNames(info, authzid, authcid, credUser); !ok {
		return res, nil
	}
	loginName, masterName := e.splitLogin(info, authzid, authcid)
	r := newRequest(info, origName(authcid, masterName))
	defer r.done(ctx)
	first := loginName
	if masterName != "" {
		first = masterName
	}
	u, err := e.ProcessName(first, info)
	if err != nil {
		return e.failCredentials(ctx, wanted, credUser, Result{Status: StatusFail, OrigUser: r.origUser, Reason: err.Error()}), nil
	}
	r.setUser(u)
	login := ""
	if masterName != "" {
		login = loginName
	}
	if res, ok := e.beginAttempt(ctx, r, login, nil); !ok {
		return res, nil
	}
	if masterName != "" && !e.hasMasterPassdbs() {
		return Result{Status: StatusFail, User: u, OrigUser: r.origUser, Reason: "master login without master passdbs"}, nil
	}
	w := walkLookup
	if masterName != "" {
		w = walkMasterLookup
	}
	e.runPassdbs(ctx, r, w, nil)
	if masterName != "" && r.masterPass {
		r.success = true // the master was found; its proof comes later
	}
	res := e.finishPass(r)
	if res.Status != StatusOK {
		return e.failCredentials(ctx, wanted, credUser, res), nil
	}
	stored, nopassword := r.stored, r.nopassword
	if masterName != "" {
		// The master's credentials check the proof; the login user must
		// pass the same checks as in a PLAIN master login.
		if res, ok := e.becomeLoginUser(ctx, r, info, loginName, u); !ok {
			return res, nil
		}
		res = e.finishPass(r)
	}
	if nopassword || !stored.HasPassword {
		res.Status, res.Reason = StatusFail, "no stored password for a credentials lookup"
		return e.failCredentials(ctx, wanted, credUser, res), nil
	}
	cred, err := e.credentials(ctx, stored.Scheme, stored.Data, wanted, credUser)
	if err != nil {
		switch {
		case errors.Is(err, schemes.ErrSchemeUnavailable):
			e.log.Info("credentials unavailable", "user", r.user, "wanted", wanted, "stored", stored.Scheme)
			res.Status, res.Reason = StatusFail, fmt.Sprintf("requested %s scheme, but we have only %s", wanted, stored.Scheme)
			return e.failCredentials(ctx, wanted, credUser, res), nil
		case errors.Is(err, ErrVerifyShed):
			res.Status, res.Reason, res.Fields = StatusTempFail, reasonShed, nil
			return res, nil
		case ctx.Err() != nil:
			e.log.Warn("credentials derivation abandoned", "user", r.user, "wanted", wanted, "err", err)
			res.Status, res.Reason, res.Fields = StatusTempFail, "request timed out", nil
			return res, nil
		}
		e.log.Error("invalid password in passdb", "user", r.user, "scheme", stored.Scheme, "err", err)
		res.Status, res.Reason = StatusTempFail, "invalid stored password"
		return res, nil
	}
	return res, cred
}

// LookupPassdb runs the passdb chain without checking a password: the
// master protocol's PASS (doveadm auth lookup) and credential lookups.
func (e *Engine) LookupPassdb(ctx context.Context, info *Info, name string) Result {
	r := newRequest(info, name)
	defer r.done(ctx)
	login := name
	if l, _, ok := e.splitMaster(name); ok {
		login = l
	}
	u, err := e.ProcessName(login, info)
	if err != nil {
		return Result{Status: StatusNotFound, Reason: err.Error()}
	}
	r.setUser(u)
	e.runPassdbs(ctx, r, walkLookup, nil)
	res := e.finishPass(r)
	if res.Status == StatusTempFail && r.noCredentials && !r.hadFound {
		res.Reason = r.reason
		res.Fields = fields.Fields{{Key: "reason", Value: r.reason}}
		return res
	}
	if res.Status == StatusFail && !r.hadFound {
		res.Status = StatusNotFound
	}
	return res
}

// walk says which passdbs a walk of the chain asks, and whether it checks
// a password.
type walk uint8

const (
	walkAuth         walk = iota // the normal passdbs, checking the password
	walkMasterAuth               // the master passdbs, checking the master's password
	walkLookup                   // the normal passdbs, no password check
	walkMasterLookup             // the master passdbs, no password check
)

func (w walk) masters() bool { return w == walkMasterAuth || w == walkMasterLookup }
func (w walk) check() bool   { return w == walkAuth || w == walkMasterAuth }

// runPassdbs walks the passdb chain (docs/protocol.md §5.4).
func (e *Engine) runPassdbs(ctx context.Context, r *request, w walk, password []byte) {
	masters, check := w.masters(), w.check()
	for _, p := range e.passdbs {
		if p.Master != masters {
			continue
		}
		if e.skipPassdb(r, p) {
			continue
		}
		res := e.runPassdb(ctx, r, p, password, check && !r.verified)
		r.noteVerbose(p)
		if res == pDisabled || res == pExpired {
			r.success = false
			r.final = res
			return
		}
		if p.Deny && res == pInternal {
			// A deny list that cannot be read cannot say the user is not
			// on it: the login is a temporary failure whatever the rules
			// (continuing would let a denied user in while it is down).
			r.success = false
			r.internal = true
			return
		}
		var rule config.Rule
		switch res {
		case pOK:
			rule = p.ResultSuccess
			if masters && p.Pass {
				r.masterPass = true
			}
		case pInternal:
			rule = p.ResultInternalfail
			r.internal = true
		case pNext:
			rule = config.RuleContinue
			r.hadNext = true
		default:
			rule = p.ResultFailure
		}
		cont := false
		switch rule {
		case config.RuleReturn:
		case config.RuleReturnOK:
			r.success = true
		case config.RuleReturnFail:
			r.success = false
		case config.RuleContinue:
			cont = true
			if res == pOK {
				r.verified = true
			}
		case config.RuleContinueOK:
			cont = true
			r.success = true
			r.verified = true
		case config.RuleContinueFail:
			cont = true
			r.success = false
		}
		if masters && res == pOK && cont {
			// A master passdb whose success rule continues (pass=yes is
			// kept as result_success=continue) means "look the login user
			// up in the normal passdbs": the walk goes on there, not in
			// the next master passdb (docs/protocol.md §5.3).
			r.masterPass = true
			return
		}
		if !cont {
			return
		}
	}
}

func (e *Engine) skipPassdb(r *request, p *passdb) bool {
	switch p.Skip {
	case config.SkipAuthenticated:
		if r.verified {
			return true
		}
	case config.SkipUnauthenticated:
		if !r.verified {
			return true
		}
	}
	if len(p.Mechanisms) > 0 {
		mech := strings.ToUpper(r.info.Mech)
		if mech == "" {
			mech = "NONE"
		}
		found := false
		for _, m := range p.Mechanisms {
			if m == mech {
				found = true
				break
			}
		}
		if !found {
			return true
		}
	}
	if len(p.UsernameFilter) > 0 && !usernameFilterMatch(p.UsernameFilter, r.user) {
		return true
	}
	return false
}

// usernameFilterMatch applies a username_filter: the name must match one
// positive glob (if any are given) and no negated one.
func usernameFilterMatch(filter []string, user string) bool {
	positive, matched := false, false
	for _, f := range filter {
		if neg, ok := strings.CutPrefix(f, "!"); ok {
			if wildcardMatch(neg, user) {
				return false
			}
			continue
		}
		positive = true
		if wildcardMatch(f, user) {
			matched = true
		}
	}
	return !positive || matched
}

func (p *passdb) label() string {
	if p.Name != "" {
		return p.Name
	}
	return p.Driver
}

// allowNets checks rip against an allow_nets list. "local" matches a
// request without a remote IP (a unix-socket client) when local allows it.
func allowNets(list, rip string, local bool) bool {
	addr, err := netip.ParseAddr(rip)
	hasIP := err == nil && rip != ""
	for _, item := range strings.FieldsFunc(list, func(c rune) bool { return c == ',' || c == ' ' }) {
		if item == "local" {
			if !hasIP && local {
				return true
			}
			continue
		}
		if !hasIP {
			continue
		}
		if strings.Contains(item, "/") {
			if pfx, err := netip.ParsePrefix(item); err == nil && pfx.Contains(addr.Unmap()) {
				return true
			}
			continue
		}
		if a, err := netip.ParseAddr(item); err == nil && a.Unmap() == addr.Unmap() {
			return true
		}
	}
	return false
}

// finishPass turns the chain state into a Result.
func (e *Engine) finishPass(r *request) Result {
	res := Result{User: r.user, OrigUser: r.origUser, MasterUser: r.masterUser, NoDelay: r.noDelay, Reason: r.reason}
	switch {
	case r.final == pDisabled:
		res.Status = StatusUserDisabled
		res.Fields = visible(r.failFields, true)
	case r.final == pExpired:
		res.Status = StatusPassExpired
		res.Fields = visible(r.failFields, true)
	case r.success:
		res.Status = StatusOK
		res.Fields = visible(r.extra, false)
		res.Userdb = r.userdbF
		res.Reason = ""
	case r.internal:
		res.Status = StatusTempFail
		res.Fields = visible(r.failFields, true)
	case r.hadNext && !r.success:
		// A chain that ends in a fields-only passdb cannot authenticate.
		res.Status = StatusTempFail
		res.Reason = "chain ended in a noauthenticate passdb"
	default:
		res.Status = StatusFail
		res.Fields = visible(r.failFields, true)
	}
	if res.User == e.set.AnonymousUsername {
		res.Anonymous = true
	}
	return res
}

// visible drops hidden fields; on failure nologin goes too (docs/protocol.md §1.5).
func visible(fs fields.Fields, failure bool) fields.Fields {
	var out fields.Fields
	for _, f := range fs {
		if hiddenPassdbField(f.Key) || (failure && f.Key == "nologin") {
			continue
		}
		out = append(out, f)
	}
	return out
}
