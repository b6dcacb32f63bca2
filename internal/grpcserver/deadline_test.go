package grpcserver_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/grpcserver"
)

// shortCall authenticates with a 100 ms deadline and returns the answer's
// code and how long it took.
func shortCall(c authdv1.AuthServiceClient, user, pass string) (authdv1.AuthResult, codes.Code, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: user, Password: []byte(pass)})
	return resp.GetResult(), status.Code(err), time.Since(start)
}

// minCut is the least time before an answer at the cut of a 100 ms
// deadline (cut 50 ms after arrival), with room for the header's rounding.
const minCut = 40 * time.Millisecond

// TestShortDeadline: with auth_failure_delay 1 s and a client deadline of
// 100 ms, a wrong password and an unknown user get the same status at the
// same moment (the cut, fixed by the deadline), and a right password
// still succeeds, at that moment too rather than at once.
func TestShortDeadline(t *testing.T) {
	eng := newEngineSet(t, testUsers, engine.Settings{FailureDelay: time.Second})
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(eng, nil, 15*time.Second), grpcserver.Options{})
	c := dial(t, srv, nil)
	if err := authOK(t, c); err != nil { // connect first: dialling is no part of the timing
		t.Fatal(err)
	}
	for _, u := range []struct{ user, pass string }{{"alice@example.com", "wrong"}, {"nobody@example.com", "secret"}} {
		res, code, took := shortCall(c, u.user, u.pass)
		if code != codes.DeadlineExceeded || res != authdv1.AuthResult_AUTH_RESULT_UNSPECIFIED {
			t.Errorf("%s: %v %v, want DEADLINE_EXCEEDED", u.user, res, code)
		}
		if took < minCut {
			t.Errorf("%s: answered after %v, before the cut", u.user, took)
		}
	}
	waitFor(t, "both failures answered at the cut", func() bool { return srv.Stats().AnsweredAtCut == 2 })

	// The right password: OK, at the cut. (A machine too loaded to answer
	// within 50 ms of the cut makes the client's own timer win; that is
	// the client's deadline, not authd's answer, so try again.)
	var errs []string
	for try := 0; try < 3; try++ {
		res, code, took := shortCall(c, "alice@example.com", "secret")
		if code == codes.OK && res == authdv1.AuthResult_AUTH_RESULT_OK {
			if took < minCut {
				t.Errorf("success answered after %v, before the cut: its timing would differ from a failure's", took)
			}
			errs = nil
			break
		}
		errs = append(errs, res.String()+" "+code.String())
	}
	if errs != nil {
		t.Fatalf("right password with a 100 ms deadline: %v", errs)
	}
	// A deadline longer than the delay: a success comes back at once, a
	// failure after the delay (TestFailureDelay).
	if n := srv.Stats().AnsweredAtCut; n < 3 {
		t.Errorf("AnsweredAtCut %d, want the success counted too", n)
	}
}

// slowEngine is a fakeEngine with an auth_failure_delay, whose verify of
// "slow" blocks until release is closed: a hash slower than the client's
// deadline.
type slowEngine struct {
	*fakeEngine
	delay time.Duration
}

func (e slowEngine) Settings() engine.Settings { return engine.Settings{FailureDelay: e.delay} }

// TestShortDeadlineSlowEngine: the answer leaves at the cut even while the
// engine is still at work, so a slow hash (a known user) looks exactly
// like a user without one; the engine finishes afterwards and the attempt
// is still reported. Temporary failures are not held.
func TestShortDeadlineSlowEngine(t *testing.T) {
	release := make(chan struct{})
	var slowDone, finished atomic.Int64
	fe := &fakeEngine{
		verify: func(ctx context.Context, _ *engine.Info, _, authcid string) engine.Result {
			switch authcid {
			case "slow":
				<-release
				slowDone.Add(1)
			case "down":
				return engine.Result{Status: engine.StatusTempFail}
			}
			return engine.Result{Status: engine.StatusFail, User: authcid}
		},
		finish: func(info *engine.Info, res engine.Result) time.Time {
			finished.Add(1)
			if res.Status != engine.StatusFail {
				return time.Time{}
			}
			return info.Arrived.Add(time.Second)
		},
	}
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(slowEngine{fe, time.Second}, nil, 15*time.Second), grpcserver.Options{})
	c := dial(t, srv, nil)
	for _, user := range []string{"slow", "fast"} {
		if _, code, _ := shortCall(c, user, "p"); code != codes.DeadlineExceeded {
			t.Errorf("%s: %v, want DEADLINE_EXCEEDED", user, code)
		}
	}
	waitFor(t, "both answered at the cut", func() bool { return srv.Stats().AnsweredAtCut == 2 })
	if slowDone.Load() != 0 {
		t.Fatal("the slow verify finished before the test let it")
	}
	if _, code, _ := shortCall(c, "down", "p"); code != codes.Unavailable {
		t.Errorf("temporary failure: %v, want UNAVAILABLE", code)
	}

	// Shutdown waits for the engine work still running...
	sctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(sctx); err == nil {
		t.Error("Shutdown returned while a request's engine work was still running")
	}
	// ...which ends, and reports the attempt.
	close(release)
	waitFor(t, "the slow attempt to finish", func() bool { return finished.Load() == 3 })
}

// TestEscalatedDelayPastDeadline: a failure whose delay (escalated by the
// brute-force defence) ends after the client's deadline is answered at
// the cut with the same DEADLINE_EXCEEDED, not held for nothing.
func TestEscalatedDelayPastDeadline(t *testing.T) {
	fe := statusEngine(engine.StatusFail)
	fe.finish = func(info *engine.Info, _ engine.Result) time.Time { return info.Arrived.Add(time.Minute) }
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(fe, nil, 15*time.Minute), grpcserver.Options{})
	c := dial(t, srv, nil)
	if _, code, took := shortCall(c, "u", "p"); code != codes.DeadlineExceeded || took < minCut {
		t.Errorf("%v after %v, want DEADLINE_EXCEEDED at the cut", code, took)
	}
	waitFor(t, "the answer at the cut", func() bool { return srv.Stats().AnsweredAtCut == 1 && srv.DelayedFailures() == 0 })
}
