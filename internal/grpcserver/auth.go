package grpcserver

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/engine"
)

// When an Authenticate answer leaves.
//
// A failure is answered auth_failure_delay after the request arrived
// (docs/protocol.md §1.7), the same time for a wrong password and an
// unknown user, so that neither its timing nor the backend's work tells
// them apart. A success is answered at once.
//
// A gRPC client may set a deadline shorter than that delay, and the
// server cannot stop the client's own timer: it sees DEADLINE_EXCEEDED
// at its deadline for every failure, while a success comes back at
// once. Two ways out were rejected:
//
//   - Answering failures with FAILED just before the deadline shortens
//     the delay to whatever the client asks, and worse, opens a user
//     enumeration oracle: an unknown user is answered at that moment,
//     but a known user whose hash (bcrypt, argon2) takes longer than the
//     client's deadline is answered later or not at all.
//   - Ignoring the client's cancellation while holding the failure
//     changes nothing the client sees: its own timer still fires.
//
// So when the client's deadline ends before a failure's delay would
// (short mode, decided at arrival from the deadline alone, never from
// the outcome), every answer of the request leaves at one moment fixed
// by the deadline, the cut, shortly before it: a success as OK, a
// failure that would have been delayed, or an engine still at work, as
// DEADLINE_EXCEEDED with one fixed message. A wrong password, an unknown
// user and a slow hash then look exactly alike, in status and in time;
// a right password still succeeds (at the cut rather than at once). A
// temporary failure is no answer about the password and leaves at once,
// as it always does. The engine's work goes on after a cut in a worker
// the Server owns, so the attempt is still counted and logged.
//
// The same cut bounds a failure whose delay the brute-force defence
// escalated past the client's deadline; that case is decided after the
// engine (the escalation is known only then), so there a success does
// come back at once. It only happens to an address or account that
// keeps failing, which the defence soon refuses outright, whatever the
// password.

// errHeld is the answer at the cut: no definite answer could be given
// before the client's deadline.
var errHeld = status.Error(codes.DeadlineExceeded,
	"no answer before the deadline: failed authentications are answered only after auth_failure_delay")

// authOutcome is what the engine said about one Authenticate.
type authOutcome struct {
	res     engine.Result
	userdb  *engine.Result
	release time.Time // when a failure's answer may leave; zero: at once
	ctxErr  error     // the engine's context had ended (deadline, cancel)
}

func (o authOutcome) status() engine.Status { return finalResult(o.res, o.userdb).Status }

// reply is the answer the outcome gives, whatever its timing.
func (o authOutcome) reply() (*authdv1.AuthenticateResponse, error) {
	st := o.status()
	if st != engine.StatusTempFail {
		return authResponse(o.res, o.userdb, st), nil
	}
	if o.ctxErr != nil {
		// The client's deadline (or ours) ended the request.
		return nil, status.FromContextError(o.ctxErr).Err()
	}
	return nil, status.Error(codes.Unavailable, tempFailMessage(o.res.Fields))
}

// cutFor is the moment an answer must leave to reach a client with
// deadline dl in time: a quarter of its time before, at least 50 ms and
// at most 500 ms (the way back), never more than half.
func cutFor(arrived, dl time.Time) time.Time {
	rem := dl.Sub(arrived)
	slack := min(max(rem/4, 50*time.Millisecond), 500*time.Millisecond, rem/2)
	return dl.Add(-slack)
}

func (v *service) Authenticate(ctx context.Context, req *authdv1.AuthenticateRequest) (*authdv1.AuthenticateResponse, error) {
	start := time.Now()
	if err := checkAuthRequest(req); err != nil {
		return nil, err
	}
	// The engine sees a PLAIN login: passdbs restricted with
	// `mechanisms =` treat it exactly as an AUTH PLAIN on a socket.
	info, err := v.s.requestInfo(ctx, req.GetInfo(), "PLAIN")
	if err != nil {
		return nil, err
	}
	info.Protocol, info.Arrived = "grpc", start
	b, err := v.s.acquire()
	if err != nil {
		return nil, err
	}
	var cut time.Time
	if dl, ok := ctx.Deadline(); ok {
		cut = cutFor(start, dl)
		if b.failureDelay > 0 && cut.Before(start.Add(b.failureDelay)) && v.s.delay.enter() {
			defer v.s.delay.leave()
			return v.authenticateShort(ctx, b, info, req, start, cut)
		}
	}
	// The engine part holds the backend; the failure delay below does not,
	// so a reload need not wait for delayed answers.
	out := v.runHeld(ctx, b, info, req, start)
	if out.status() == engine.StatusTempFail || out.release.IsZero() {
		return out.reply()
	}
	due := roundUp(out.release)
	late := !cut.IsZero() && due.After(cut)
	if late {
		due = cut
	}
	end, err := v.s.delay.wait(ctx, due)
	switch {
	case err != nil:
		return nil, err
	case late && end == waitedFull:
		v.s.cutAnswers.Add(1)
		return nil, errHeld
	}
	return out.reply()
}

// runHeld runs the engine part on b and releases b, also when the engine
// panics (the recovery interceptor answers INTERNAL; a leaked hold would
// make the backend's Drain wait for ever).
func (v *service) runHeld(ctx context.Context, b *Backend, info *engine.Info, req *authdv1.AuthenticateRequest, start time.Time) authOutcome {
	defer b.release()
	rctx, cancel := context.WithTimeout(ctx, v.s.requestTimeout())
	defer cancel()
	return v.run(rctx, b, info, req, start)
}

// run is the engine part: the passdb (and userdb) steps, then FinishAuth
// (the brute-force defence, the log, the failure's release time).
func (v *service) run(ctx context.Context, b *Backend, info *engine.Info, req *authdv1.AuthenticateRequest, start time.Time) authOutcome {
	defer func() {
		if p := recover(); p != nil {
			// The attempt ends uncounted, and gives back what the
			// brute-force defence holds for it (a known-good login in
			// flight is held until it ends); the recovery above answers.
			b.eng.AbandonAuth(info)
			panic(p)
		}
	}()
	res, userdb := b.authenticate(ctx, info, req)
	final := finalResult(res, userdb)
	out := authOutcome{res: res, userdb: userdb, release: b.eng.FinishAuth(info, final, b.maxDelay), ctxErr: ctx.Err()}
	if obs := v.s.opts.Observer; obs != nil {
		obs.AuthRequest("grpc", "PLAIN", final.Status, time.Since(start))
	}
	return out
}

// authenticateShort answers a request whose client's deadline ends before
// a failure's delay: everything at the cut (see the top of this file).
// The engine runs in a worker that takes over b; the caller holds a place
// in the delay queue.
func (v *service) authenticateShort(ctx context.Context, b *Backend, info *engine.Info, req *authdv1.AuthenticateRequest, start, cut time.Time) (*authdv1.AuthenticateResponse, error) {
	done := make(chan authOutcome, 1)
	// The worker outlives the RPC's context: the engine's work ends when
	// the client's deadline or request_timeout does, not at the cut.
	dl := start.Add(v.s.requestTimeout())
	if cdl, ok := ctx.Deadline(); ok && cdl.Before(dl) {
		dl = cdl
	}
	wctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), dl)
	started := v.s.goWorker(func() {
		defer cancel()
		defer b.release()
		defer v.s.recovered(authdv1.AuthService_Authenticate_FullMethodName, new(error))
		done <- v.run(wctx, b, info, req, start)
	})
	if !started {
		cancel()
		b.release()
		return nil, status.Error(codes.Unavailable, "shutting down")
	}
	timer := time.NewTimer(time.Until(cut))
	defer timer.Stop()
	var out *authOutcome
	for {
		select {
		case o := <-done:
			if o.status() == engine.StatusTempFail {
				return o.reply()
			}
			out, done = &o, nil
		case <-timer.C:
			v.s.cutAnswers.Add(1)
			if out != nil && !out.release.After(cut) {
				return out.reply() // a success, or a failure its passdb said not to delay
			}
			return nil, errHeld
		case <-v.s.delay.released:
			if out != nil {
				return out.reply()
			}
			return nil, status.Error(codes.Unavailable, "shutting down")
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
}
