package engine

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/limiter"
)

// The brute-force defence and the auth_verbose line around one
// authentication (docs/architecture.md §Brute force). The protocol layers
// call FinishAuth once per request; the engine itself begins the attempt
// as soon as the authenticating account is known, before any lookup.

// SetLimiter installs the brute-force defence (nil: off). Call it before
// serving. The limiter outlives the engine: a reload keeps counting.
func (e *Engine) SetLimiter(l *limiter.Limiter) { e.limiter = l }

// attempt is an authentication's state between its start and FinishAuth.
type attempt struct {
	lim *limiter.Attempt
	// verbose is auth_verbose for this request: the global setting, or
	// the one of the passdb that decided.
	verbose bool
}

// beginAttempt counts an attempt for account (the name whose password is
// tried, after name processing) before any work. It is false when the
// attempt is refused: the caller answers like a wrong password without a
// lookup.
func (e *Engine) beginAttempt(info *Info, account string, password []byte) bool {
	if info == nil {
		return true
	}
	if info.attempt == nil {
		info.attempt = &attempt{verbose: e.set.Verbose}
	}
	if e.limiter == nil || info.attempt.lim != nil {
		return true
	}
	req := limiter.Request{Account: account, Password: password}
	if !info.NoPenalty {
		// Without an address (a local tool), or from a trusted network
		// (no-penalty), the attempt counts for the account only.
		req.IP, _ = netip.ParseAddr(info.RemoteIP)
	}
	info.attempt.lim = e.limiter.Begin(req)
	return !info.attempt.lim.Refused()
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
// brute-force defence (a temporary failure never counts), logs a failure
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
	att := &attempt{verbose: e.set.Verbose}
	if info != nil && info.attempt != nil {
		att = info.attempt
	}
	switch res.Status {
	case StatusOK:
		att.lim.Done(limiter.Succeeded)
		e.logAuth(info, res, att.verbose, slog.LevelDebug)
		return time.Time{}
	case StatusTempFail:
		att.lim.Done(limiter.Undecided)
		e.logAuth(info, res, att.verbose, slog.LevelInfo)
		return time.Time{}
	}
	level := att.lim.Done(limiter.Failed)
	e.logAuth(info, res, att.verbose, slog.LevelInfo)
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
// waiting for the client, its connection closed): it never counts.
func (e *Engine) AbandonAuth(info *Info) {
	if info != nil && info.attempt != nil {
		info.attempt.lim.Done(limiter.Undecided)
	}
}
