package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/fields"
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
	vc         *vars.Context
	extra      fields.Fields // passdb extra fields kept from successful passdbs
	failFields fields.Fields // the last failed passdb's fields, for FAIL replies
	userdbF    fields.Fields // userdb_* prefetch fields
	verified   bool          // a passdb already verified the password ("skip_password_check")
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
}

func (r *request) setUser(u string) {
	r.user = u
	r.vc.User = u
}

// VerifyPlain authenticates authcid (optionally as authzid) with a
// plaintext password: the path of PLAIN, LOGIN and every mechanism that
// ends in a password check.
func (e *Engine) VerifyPlain(ctx context.Context, info *Info, authzid, authcid string, password []byte) Result {
	loginName, masterName := e.splitLogin(info, authzid, authcid)
	r := &request{info: info, origUser: authcid}
	r.vc = e.varsContext(info, "")
	r.vc.OrigUser = authcid
	// %w is needed by some passdb templates; it lives only in this
	// request's memory and is never logged.
	r.vc.Password = string(password)
	if masterName == "" {
		u, err := e.processName(loginName, r.vc)
		if err != nil {
			// Dovecot names the user as typed in such a FAIL.
			return Result{Status: StatusFail, OrigUser: authcid, Reason: err.Error()}
		}
		r.setUser(u)
		e.runPassdbs(ctx, r, password, true, false)
		return withProxyPass(e.finishPass(r), password)
	}

	// Master-user login (protocol.md §5.3): the master authenticates with
	// its own password against master passdbs, then becomes the login user.
	mu, err := e.ProcessName(masterName, info)
	if err != nil {
		return Result{Status: StatusFail, OrigUser: authcid, Reason: err.Error()}
	}
	r.setUser(mu)
	if !e.hasMasterPassdbs() {
		r.reason = "master login without master passdbs"
		return Result{Status: StatusFail, User: mu, OrigUser: authcid, Reason: r.reason}
	}
	e.runPassdbs(ctx, r, password, true, true)
	if !r.success {
		return e.finishPass(r)
	}
	lu, err := e.ProcessName(loginName, info)
	if err != nil {
		return Result{Status: StatusAuthzFail, User: mu, OrigUser: authcid, Reason: err.Error()}
	}
	if v, ok := r.extra.Get("login_user"); ok && v != "" {
		lu = v
	}
	r.masterUser = mu
	r.vc.MasterUser = mu
	r.vc.LoginUser = lu
	r.setUser(lu)
	if r.masterPass {
		// pass=yes: the normal passdbs must know the login user; they are
		// asked without a password check.
		r.success, r.internal, r.verified = false, false, true
		r.failFields = nil
		e.runPassdbs(ctx, r, nil, false, false)
		if !r.success {
			res := e.finishPass(r)
			if res.Status == StatusFail {
				res.Status = StatusAuthzFail
			}
			return res
		}
	}
	return withProxyPass(e.finishPass(r), password)
}

// withProxyPass keeps the typed password for a proxy reply.
func withProxyPass(res Result, password []byte) Result {
	if res.Status == StatusOK && (res.Fields.Has("proxy") || res.Fields.Has("proxy_maybe")) && !res.Fields.Has("pass") {
		res.ProxyPassword = string(password)
	}
	return res
}

// splitLogin decides who authenticates and as whom (protocol.md §5.3):
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
// password as protocol.md §4.1 says. A stored scheme that cannot produce
// them is a plain failure, logged ("Requested CRAM-MD5 scheme, but we have
// only SHA512-CRYPT"). The mechanism then checks the client's proof and
// reports the result with Finish.
func (e *Engine) LookupCredentials(ctx context.Context, info *Info, authzid, authcid, wanted string) (Result, []byte) {
	return e.LookupCredentialsFor(ctx, info, authzid, authcid, wanted, authcid)
}

// LookupCredentialsFor is LookupCredentials where credUser is the name the
// credentials are derived for (DIGEST-MD5 hashes user:realm:password with
// the name the client sent, not the processed one).
func (e *Engine) LookupCredentialsFor(ctx context.Context, info *Info, authzid, authcid, wanted, credUser string) (Result, []byte) {
	loginName, masterName := e.splitLogin(info, authzid, authcid)
	r := &request{info: info, origUser: authcid}
	r.vc = e.varsContext(info, "")
	r.vc.OrigUser = authcid
	first := loginName
	if masterName != "" {
		first = masterName
	}
	u, err := e.ProcessName(first, info)
	if err != nil {
		return Result{Status: StatusFail, OrigUser: authcid, Reason: err.Error()}, nil
	}
	r.setUser(u)
	if masterName != "" && !e.hasMasterPassdbs() {
		return Result{Status: StatusFail, User: u, OrigUser: authcid, Reason: "master login without master passdbs"}, nil
	}
	e.runPassdbs(ctx, r, nil, false, masterName != "")
	res := e.finishPass(r)
	if res.Status != StatusOK {
		return res, nil
	}
	if r.nopassword || !r.stored.HasPassword {
		res.Status, res.Reason = StatusFail, "no stored password for a credentials lookup"
		return res, nil
	}
	cred, err := schemes.Credentials(r.stored.Scheme, r.stored.Data, wanted, credUser)
	if err != nil {
		if errors.Is(err, schemes.ErrSchemeUnavailable) {
			e.log.Info("credentials unavailable", "user", r.user, "wanted", wanted, "stored", r.stored.Scheme)
			res.Status, res.Reason = StatusFail, fmt.Sprintf("requested %s scheme, but we have only %s", wanted, r.stored.Scheme)
			return res, nil
		}
		e.log.Error("invalid password in passdb", "user", r.user, "scheme", r.stored.Scheme, "err", err)
		res.Status, res.Reason = StatusTempFail, "invalid stored password"
		return res, nil
	}
	if masterName != "" {
		lu, err := e.ProcessName(loginName, info)
		if err != nil {
			return Result{Status: StatusAuthzFail, User: u, OrigUser: authcid, Reason: err.Error()}, nil
		}
		res.MasterUser = u
		res.User = lu
	}
	return res, cred
}

// LookupPassdb runs the passdb chain without checking a password: the
// master protocol's PASS (doveadm auth lookup) and credential lookups.
func (e *Engine) LookupPassdb(ctx context.Context, info *Info, name string) Result {
	r := &request{info: info, origUser: name}
	r.vc = e.varsContext(info, "")
	r.vc.OrigUser = name
	login := name
	if l, _, ok := e.splitMaster(name); ok {
		login = l
	}
	u, err := e.ProcessName(login, info)
	if err != nil {
		return Result{Status: StatusNotFound, Reason: err.Error()}
	}
	r.setUser(u)
	e.runPassdbs(ctx, r, nil, false, false)
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

// runPassdbs walks the passdb chain (protocol.md §5.4). masters selects
// the master passdbs instead of the normal ones.
func (e *Engine) runPassdbs(ctx context.Context, r *request, password []byte, check bool, masters bool) {
	for _, p := range e.passdbs {
		if p.Master != masters {
			continue
		}
		if e.skipPassdb(r, p) {
			continue
		}
		res := e.runPassdb(ctx, r, p, password, check && !r.verified)
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
		var rule Rule
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
			rule = RuleContinue
			r.hadNext = true
		default:
			rule = p.ResultFailure
		}
		cont := false
		switch rule {
		case RuleReturn:
		case RuleReturnOK:
			r.success = true
		case RuleReturnFail:
			r.success = false
		case RuleContinue:
			cont = true
			if res == pOK {
				r.verified = true
			}
		case RuleContinueOK:
			cont = true
			r.success = true
			r.verified = true
		case RuleContinueFail:
			cont = true
			r.success = false
		}
		if masters && res == pOK && cont {
			// A master passdb whose success rule continues means "look the
			// login user up in the normal passdbs too" (§5.3).
			r.masterPass = true
		}
		if !cont {
			return
		}
	}
}

func (e *Engine) skipPassdb(r *request, p *passdb) bool {
	switch p.Skip {
	case "authenticated":
		if r.verified {
			return true
		}
	case "unauthenticated":
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

// runPassdb asks one passdb and interprets its fields.
func (e *Engine) runPassdb(ctx context.Context, r *request, p *passdb, password []byte, check bool) passResult {
	res := e.runPassdbOnce(ctx, r, p, password, check, false)
	if res == pRecheck {
		// A cached entry did not match, but its last check succeeded (or
		// it is old): the password may have changed, ask the backend.
		res = e.runPassdbOnce(ctx, r, p, password, check, true)
	}
	return res
}

func (e *Engine) runPassdbOnce(ctx context.Context, r *request, p *passdb, password []byte, check, force bool) passResult {
	work := r.extra.Clone()
	userdbWork := r.userdbF.Clone()
	r.vc.Passdb = &work
	r.vc.PassdbID = p.id
	applyTemplates(&work, p.DefaultFields, r.vc)
	start := time.Now()
	breq := &backends.Request{User: r.user, Vars: r.vc}
	var entry backends.PassEntry
	var found, verified, selfChecked bool
	var err error
	var cacheKey string
	var centry *cache.Entry
	var fromCache bool
	cached := p.cacheKey != nil && e.cache != nil
	if v, ok := selfVerifier(p.Passdb); ok && check && !p.Deny {
		// The passdb checks the password itself (auth_bind, PAM).
		selfChecked = true
		if cached {
			entry, found, verified, err = e.cachedVerify(ctx, p, breq, v, password)
		} else {
			entry, found, verified, err = v.VerifyPass(ctx, breq, password)
			e.obs.PassdbLookup(p.Driver, lookupResult(found, err), time.Since(start))
		}
		cached = false
	} else if cached {
		entry, found, err, cacheKey, centry, fromCache = e.cachedPass(ctx, p, breq, force)
	} else {
		entry, found, err = p.Passdb.LookupPass(ctx, breq)
		e.obs.PassdbLookup(p.Driver, lookupResult(found, err), time.Since(start))
	}
	if err != nil && !definiteRefusal(err) && ctx.Err() == nil {
		p.failing.Store(true)
	} else if err == nil && !fromCache {
		p.failing.Store(false)
	}
	if errors.Is(err, backends.ErrUserDisabled) || errors.Is(err, backends.ErrPassExpired) {
		// The account state is only revealed to someone who knows the
		// password: check it first when the passdb gave a hash (shadow).
		if found && check && !selfChecked && entry.HasPassword {
			if ok, verr := e.verify(ctx, entry.Scheme, entry.Data, password, r.origUser); verr == nil && !ok {
				r.reason = "password mismatch"
				r.failFields = work
				return pMismatch
			}
		}
		for _, f := range entry.Fields {
			work.Set(f.Key, f.Value) // e.g. PAM's reason=
		}
		r.failFields = work
		if errors.Is(err, backends.ErrUserDisabled) {
			r.reason = "account disabled"
			return pDisabled
		}
		r.reason = "password expired"
		return pExpired
	}
	switch {
	case errors.Is(err, backends.ErrNoCredentials):
		r.reason = "Configured passdbs don't support credentials lookups"
		r.noCredentials = true
	}
	if err != nil {
		e.log.Error("passdb lookup failed", "passdb", p.label(), "user", r.user, "err", err)
		r.reason = "passdb lookup failed"
		r.failFields = work
		return pInternal
	}
	if !found {
		if p.Deny {
			return pUnknown
		}
		if check && len(password) > 0 && !selfChecked {
			// A passdb that checks passwords itself (PAM) has spent its
			// own time already.
			e.verifyDummy(ctx, p, password)
		}
		r.reason = "unknown user"
		r.failFields = work
		return pUnknown
	}
	if p.Deny {
		r.reason = "user is denied"
		r.failFields = work
		return pDisabled
	}
	r.hadFound = true
	mergeFields(&work, entry.Fields)
	applyTemplates(&work, p.OverrideFields, r.vc)

	fail, nopassword, noauth := false, false, false
	allowOK := true
	var kept fields.Fields
	for _, f := range work {
		switch {
		case f.Key == "user":
			r.setUser(f.Value)
		case f.Key == "username":
			if i := strings.IndexByte(r.user, '@'); i >= 0 {
				r.setUser(f.Value + r.user[i:])
			} else {
				r.setUser(f.Value)
			}
		case f.Key == "domain":
			if i := strings.IndexByte(r.user, '@'); i >= 0 {
				r.setUser(r.user[:i+1] + f.Value)
			} else {
				r.setUser(r.user + "@" + f.Value)
			}
		case f.Key == "nodelay":
			r.noDelay = true
			kept = append(kept, f)
		case f.Key == "fail":
			fail = true
		case f.Key == "nopassword":
			nopassword = true
		case f.Key == "noauthenticate":
			noauth = true
		case f.Key == "allow_nets":
			if !allowNets(f.Value, r.info.RemoteIP) {
				allowOK = false
			}
		case f.Key == "allow_real_nets":
			rip := r.info.RealRemoteIP
			if rip == "" {
				rip = r.info.RemoteIP
			}
			if !allowNets(f.Value, rip) {
				allowOK = false
			}
		case strings.HasPrefix(f.Key, "userdb_"):
			userdbWork.Set(strings.TrimPrefix(f.Key, "userdb_"), f.Value)
		case f.Key == "password", f.Key == "password_noscheme", f.Key == "delay_until", f.Key == "passdb_import":
			// consumed
		default:
			kept = append(kept, f)
		}
	}
	work = kept
	r.vc.Passdb = &work
	if entry.HasPassword {
		p.noteScheme(entry.Scheme)
	}

	result := pOK
	switch {
	case fail:
		r.reason = "passdb set fail"
		result = pUnknown
	case noauth:
		result = pNext
	case nopassword:
		if entry.HasPassword && entry.Data != "" {
			e.log.Error("nopassword set but password is non-empty", "passdb", p.label(), "user", r.user)
			r.reason = "nopassword with a password"
			result = pInternal
		}
	case !check:
	case selfChecked:
		if !verified {
			r.reason = "password mismatch"
			result = pMismatch
		}
	case !entry.HasPassword:
		r.reason = "passdb returned no password"
		result = pMismatch
	case cached && centry != nil && e.cache.PasswordMatches(cacheKey, centry, password):
		// The same password verified against this very entry before: the
		// keyed fingerprint saves the scheme's cost (design.md).
		e.cache.MarkResult(cacheKey, centry, true)
	default:
		ok, err := e.verify(ctx, entry.Scheme, entry.Data, password, r.origUser)
		if cached && centry != nil && err == nil {
			if !ok && fromCache && e.cache.RecheckAfterMismatch(cacheKey, centry) {
				return pRecheck
			}
			e.cache.MarkResult(cacheKey, centry, ok)
			if ok {
				e.cache.RememberPassword(cacheKey, centry, password)
			}
		}
		switch {
		case err != nil:
			e.log.Error("invalid password in passdb", "passdb", p.label(), "user", r.user, "scheme", entry.Scheme, "err", err)
			r.reason = "invalid stored password"
			result = pInternal
		case !ok:
			r.reason = "password mismatch"
			result = pMismatch
		}
	}
	if result == pOK && !allowOK {
		r.reason = "remote ip not in allow_nets"
		result = pUnknown
	}
	if result == pOK || result == pNext {
		r.extra = work
		r.userdbF = userdbWork
		if result == pOK && !check {
			r.stored = entry
			r.nopassword = nopassword
		}
	} else {
		r.failFields = work
	}
	return result
}

// selfVerifier returns db as a Verifier when it checks passwords itself
// in its current configuration.
func selfVerifier(db backends.Passdb) (backends.Verifier, bool) {
	v, ok := db.(backends.Verifier)
	if !ok {
		return nil, false
	}
	if ab, ok := db.(backends.AuthBinder); ok && !ab.AuthBind() {
		return nil, false
	}
	return v, true
}

func (p *passdb) label() string {
	if p.Name != "" {
		return p.Name
	}
	return p.Driver
}

// allowNets checks rip against an allow_nets list. "local" matches a
// request without a remote IP (a unix-socket client).
func allowNets(list, rip string) bool {
	addr, err := netip.ParseAddr(rip)
	hasIP := err == nil && rip != ""
	for _, item := range strings.FieldsFunc(list, func(c rune) bool { return c == ',' || c == ' ' }) {
		if item == "local" {
			if !hasIP {
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

// visible drops hidden fields; on failure nologin goes too (§1.5).
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
