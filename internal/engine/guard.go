package engine

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/policy"
	"github.com/authd-project/authd/internal/vars"
)

// The brute-force defence, the auth policy server and the auth_verbose
// line around one authentication (docs/architecture.md §Brute force,
// docs/operations.md §7). The protocol layers call FinishAuth once per
// request; the engine itself begins the attempt as soon as the
// authenticating account is known, before any lookup.

// SetLimiter installs the brute-force defence (nil: off). Call it before
// serving. The limiter outlives the engine: a reload keeps counting.
func (e *Engine) SetLimiter(l *limiter.Limiter) { e.limiter = l }

// Policy is an auth policy server (Dovecot's auth_policy_* hook;
// internal/policy's Client is one). The engine asks it before the lookup
// and after a success, as Dovecot's auth-request.c does, and reports every
// finished authentication.
type Policy interface {
	// Check asks whether the request may go on. It answers at once when
	// that stage's check is off; an error means ctx ended first.
	Check(ctx context.Context, stage policy.Stage, req *policy.Request) (policy.Verdict, error)
	// Report tells how an authentication ended; it must not block.
	Report(req *policy.Request, success, policyReject bool)
}

// SetPolicy installs the auth policy server (nil: none). Call it before
// serving.
func (e *Engine) SetPolicy(p Policy) { e.policy = p }

// attempt is an authentication's state between its start and FinishAuth.
type attempt struct {
	// lim is the brute-force defence's count of the attempt, once
	// counted is set.
	lim     limiter.Attempt
	counted bool
	// verbose is auth_verbose for this request: the global setting, or
	// the one of the passdb that decided.
	verbose bool
	// pol is what the policy server is told about the request; nil
	// without a policy server or before the account is known.
	pol *policyState
	// policyReject is the report's policy_reject: whether the last check
	// the server answered said refuse (Dovecot's policy_refusal).
	policyReject bool
}

// policyState is the request as the policy server sees it, kept from the
// start for the checks and the report that follow.
type policyState struct {
	vc vars.Context
	// password is a copy of the password tried; nil when the mechanism
	// sent none. Cleared when the request ends.
	password []byte
	// login is the user a master login logs in as, until it succeeded
	// (Dovecot's requested_login_user).
	login string
}

// startAttempt gives info its attempt state, once: inside the Info, no
// allocation of its own.
func (e *Engine) startAttempt(info *Info) {
	if info.attempt == nil {
		info.att = attempt{verbose: e.set.Verbose}
		info.attempt = &info.att
	}
}

// beginAttempt counts an attempt for r's account (the name whose password
// is tried, after name processing) and asks the policy server, before any
// lookup. login is the raw login name of a master login ("" otherwise).
// ok is false when the attempt ends here: res is then the answer, the
// FAIL of a wrong password for a refusal.
func (e *Engine) beginAttempt(ctx context.Context, r *request, login string, password []byte) (res Result, ok bool) {
	info := r.info
	if info == nil {
		return Result{}, true
	}
	e.startAttempt(info)
	// Asked once per request, as Dovecot's policy_processed makes it.
	ask := e.policy != nil && info.attempt.pol == nil
	if ask {
		// Before the limiter's verdict: a refused attempt is reported
		// too, with its password hash.
		info.attempt.pol = e.newPolicyState(r, login, password)
	}
	if !e.countAttempt(ctx, r, password) {
		if info.attempt.lim.Busy() {
			return busy(r.user, r.origUser), false
		}
		return refused(info, r.user, r.origUser), false
	}
	if ask {
		return e.checkBefore(ctx, r)
	}
	return Result{}, true
}

// countAttempt counts the attempt with the brute-force defence; false when
// it refuses the attempt, or found no turn for it (Busy).
func (e *Engine) countAttempt(ctx context.Context, r *request, password []byte) bool {
	att := r.info.attempt
	if e.limiter == nil || att.counted {
		return true
	}
	att.counted = true
	req := limiter.Request{Account: r.user, Password: password, At: r.info.Arrived, Hint: r.hint}
	if !r.info.NoPenalty {
		// Without an address (a local tool), or from a trusted network
		// (no-penalty), the attempt counts for the account only.
		req.IP = r.info.RemoteAddr
		if !req.IP.IsValid() {
			req.IP, _ = netip.ParseAddr(r.info.RemoteIP)
		}
	}
	e.limiter.Start(ctx, &att.lim, req)
	return !att.lim.Refused() && !att.lim.Busy()
}

// prefetchPair asks the limiter to start loading the entry of the pair
// that r's attempt will likely be counted in: login as typed, seen from the
// client's address. Name processing (realm, translation, format) runs
// meanwhile and usually leaves the name as it is; when it does not, the
// hint is not used and nothing is lost but the load.
func (e *Engine) prefetchPair(r *request, login string) {
	info := r.info
	if e.limiter == nil || info == nil || info.NoPenalty || !info.RemoteAddr.IsValid() {
		return
	}
	if info.attempt != nil && info.attempt.counted {
		return
	}
	r.hint = e.limiter.Prefetch(login, info.RemoteAddr)
}

func (e *Engine) newPolicyState(r *request, login string, password []byte) *policyState {
	st := &policyState{vc: *r.vc, password: bytes.Clone(password)}
	if login != "" {
		st.login = login
		if l, err := e.ProcessName(login, r.info); err == nil {
			st.login = l
		}
		st.vc.LoginUser = st.login
	}
	return st
}

// checkBefore is the policy server's check before the lookup
// (auth_policy_check_before_auth): a refusal fails the request like a
// wrong password; a delay waits, except for no-penalty requests (Dovecot
// skips it for those).
func (e *Engine) checkBefore(ctx context.Context, r *request) (Result, bool) {
	v, err := e.policy.Check(ctx, policy.BeforeAuth, e.policyRequest(r.info, nil))
	if err != nil {
		return Result{Status: StatusTempFail, User: r.user, OrigUser: r.origUser, Reason: err.Error()}, false
	}
	r.info.attempt.notePolicy(v)
	if v.Refuse {
		return policyRefused(Result{User: r.user, OrigUser: r.origUser}, v.Reason), false
	}
	if v.Delay > 0 && !r.info.NoPenalty {
		t := time.NewTimer(v.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return Result{Status: StatusTempFail, User: r.user, OrigUser: r.origUser, Reason: "abandoned during the policy server's delay"}, false
		}
	}
	return Result{}, true
}

func (a *attempt) notePolicy(v policy.Verdict) {
	if v.Answered {
		a.policyReject = v.Refused
	}
}

// policyRefused is the FAIL of a request the policy server refused, with
// its message as the reason the client may show, as Dovecot sends it.
func policyRefused(res Result, msg string) Result {
	out := Result{Status: StatusFail, User: res.User, OrigUser: res.OrigUser, Reason: "refused by the auth policy server"}
	if msg != "" {
		out.Reason += ": " + msg
		out.Fields = fields.Fields{{Key: "reason", Value: msg}}
	}
	if res.MasterUser != "" {
		// Dovecot fails a request whose master user is known as
		// authz_fail (auth_request_handler_reply_failure_finish).
		out.Status, out.MasterUser = StatusAuthzFail, res.MasterUser
	}
	return out
}

// Succeeded makes the last check of a successful authentication: the
// policy server's check after it (auth_policy_check_after_auth), which
// Dovecot makes when a mechanism succeeds. VerifyPlain makes it itself;
// mechanisms that verify a proof against looked-up credentials, and
// ANONYMOUS, call it when they succeed. It returns res, or the failure
// that replaces it (a refusal: FAIL; a request whose client went away:
// a temporary failure). A delay asked for here is not applied, as in
// Dovecot.
func (e *Engine) Succeeded(ctx context.Context, info *Info, res Result) Result {
	if e.policy == nil || info == nil || res.Status != StatusOK {
		return res
	}
	e.startAttempt(info)
	v, err := e.policy.Check(ctx, policy.AfterAuth, e.policyRequest(info, &res))
	if err != nil {
		return Result{Status: StatusTempFail, User: res.User, OrigUser: res.OrigUser, Reason: err.Error()}
	}
	info.attempt.notePolicy(v)
	if v.Refuse {
		return policyRefused(res, v.Reason)
	}
	return res
}

// policyRequest describes the request to the policy server: as it was when
// the account became known, or, with res, as it ended (Dovecot's request
// fields then: the final user; a master login that succeeded is the login
// user's, one that did not still asks for its login user).
func (e *Engine) policyRequest(info *Info, res *Result) *policy.Request {
	var st *policyState
	if info != nil && info.attempt != nil {
		st = info.attempt.pol
	}
	req := &policy.Request{Vars: new(vars.Context), TLS: info != nil && info.Secured == "TLS"}
	if st != nil {
		*req.Vars = st.vc
		req.Password = st.password
		req.Username = st.vc.User
		if st.login != "" {
			req.Username = st.login
		}
	} else {
		*req.Vars = *e.varsContext(info, "")
	}
	if res == nil {
		return req
	}
	vc := req.Vars
	vc.User, vc.MasterUser, vc.Passdb = res.User, res.MasterUser, res.Fields
	if res.OrigUser != "" {
		vc.OrigUser = res.OrigUser
	}
	req.Username = res.User
	if res.MasterUser == "" && st != nil && st.login != "" {
		req.Username = st.login
	} else {
		vc.LoginUser = ""
	}
	return req
}

// endPolicy reports the finished authentication and forgets the password.
func (e *Engine) endPolicy(info *Info, res Result) {
	if e.policy == nil {
		return
	}
	reject := info != nil && info.attempt != nil && info.attempt.policyReject
	e.policy.Report(e.policyRequest(info, &res), res.Status == StatusOK, reject)
	forgetPassword(info)
}

func forgetPassword(info *Info) {
	if info != nil && info.attempt != nil && info.attempt.pol != nil {
		clear(info.attempt.pol.password)
		info.attempt.pol = nil
	}
}

// busy is the answer to an attempt of a known-good pair that waited in
// vain for the pair's attempts in flight to end (internal/limiter,
// flying.go): a temporary failure, so that the client retries rather
// than asking its user for the password again.
func busy(user, orig string) Result {
	return Result{Status: StatusTempFail, User: user, OrigUser: orig,
		Reason: "too many logins of this account from this network in flight"}
}

// refused is the answer to a refused attempt: the FAIL of a wrong
// password, with nothing looked up.
func refused(info *Info, user, orig string) Result {
	by := info.attempt.lim.RefusedBy()
	return Result{Status: StatusFail, User: user, OrigUser: orig, Reason: "refused by the brute-force defence (" + by.String() + " over its budget)"}
}

// noteVerbose records the auth_verbose of the passdb that decided.
func (r *request) noteVerbose(p *passdb) {
	if r.info == nil || r.info.attempt == nil {
		return
	}
	switch p.AuthVerbose {
	case config.VerboseYes:
		r.info.attempt.verbose = true
	case config.VerboseNo:
		r.info.attempt.verbose = false
	}
}

// FinishAuth ends an authentication request whose final answer is res
// (after the mechanism's own checks): it reports the outcome to the
// policy server, if any (command=report), and to the brute-force defence
// (a temporary failure never counts), logs a failure
// (at info level with auth_verbose, as Dovecot's auth_verbose does: one
// line per failed attempt, with the client's address first so that a
// user name cannot forge it), and returns when a failure's reply may be
// sent: a fixed time after the request arrived (Info.Arrived), so the
// reply's timing says nothing about the work done. The delay is
// auth_failure_delay, escalated for an address that keeps failing as
// Dovecot's penalty does, and never more than limit after the arrival.
// A success or a temporary failure is sent at once (zero time), and so is
// a failure whose passdb set nodelay.
func (e *Engine) FinishAuth(info *Info, res Result, limit time.Duration) time.Time {
	e.endPolicy(info, res)
	// Without an attempt (nothing was begun), Done on the nil one does
	// nothing; no attempt is made up for it, which would be an
	// allocation per request.
	verbose, lim := e.set.Verbose, (*limiter.Attempt)(nil)
	if info != nil && info.attempt != nil {
		verbose, lim = info.attempt.verbose, &info.attempt.lim
	}
	switch res.Status {
	case StatusOK:
		lim.Done(limiter.Succeeded)
		e.logAuth(info, res, verbose, slog.LevelDebug)
		return time.Time{}
	case StatusTempFail:
		lim.Done(limiter.Undecided)
		e.logAuth(info, res, verbose, slog.LevelInfo)
		return time.Time{}
	}
	level := lim.Done(limiter.Failed)
	e.logAuth(info, res, verbose, slog.LevelInfo)
	if res.NoDelay {
		return time.Time{}
	}
	arrived := time.Now()
	if info != nil && !info.Arrived.IsZero() {
		arrived = info.Arrived
	}
	delay := limiter.FailureDelay(level, e.set.FailureDelay, max(limit, e.set.FailureDelay))
	if e.limiter == nil {
		delay = e.set.FailureDelay
	}
	return arrived.Add(delay)
}

// logAuth writes the line for a finished authentication: failures at
// level (info) when auth_verbose is on, everything else at debug.
func (e *Engine) logAuth(info *Info, res Result, verbose bool, level slog.Level) {
	if !verbose {
		level = slog.LevelDebug
	}
	if !e.log.Enabled(context.Background(), level) {
		return
	}
	msg := "auth failed"
	switch res.Status {
	case StatusOK:
		msg = "auth succeeded"
	case StatusTempFail:
		msg = "auth temporarily failed"
	}
	var rip, proto, service, mech string
	if info != nil {
		rip, proto, service, mech = info.RemoteIP, info.Protocol, info.Service, info.Mech
	}
	user := res.User
	if user == "" {
		user = res.OrigUser
	}
	e.log.Log(context.Background(), level, msg, "rip", rip, "proto", proto, "service", service, "mech", mech,
		"user", LogName(user), "status", res.Status.String(), "reason", res.Reason)
}

// maxLoggedName is how much of a user name goes into a log line (as
// Dovecot: 64 bytes).
const maxLoggedName = 64

// LogName shortens a client-chosen name for a log line. The log handler
// quotes and escapes it; this bounds it, so a name cannot flood the log.
func LogName(s string) string {
	if len(s) <= maxLoggedName {
		return s
	}
	cut := maxLoggedName
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// AbandonAuth ends a request that got no answer (cancelled, timed out
// waiting for the client, its connection closed): it never counts, and
// the policy server gets no report (there was no reply to report).
func (e *Engine) AbandonAuth(info *Info) {
	if info != nil && info.attempt != nil {
		info.attempt.lim.Done(limiter.Undecided)
		forgetPassword(info)
	}
}
