package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/schemes"
)

// scramEngine serves plain@x with a stored plaintext and scram@x with
// stored SCRAM-SHA-256 credentials, on one verify worker.
func scramEngine(t *testing.T) (*engine.Engine, *shedObserver) {
	t.Helper()
	stored, err := schemes.Generate("SCRAM-SHA-256", []byte("secret"), "scram@x", 0)
	if err != nil {
		t.Fatal(err)
	}
	return fileEngine(t, engine.Settings{VerifyWorkers: 1, VerifyQueue: 1, VerifyWait: 50 * time.Millisecond},
		fmt.Sprintf("plain@x:{PLAIN}secret::::::\nscram@x:{SCRAM-SHA-256}%s::::::\n", stored))
}

// SCRAM keys derived from a stored plaintext are costly work: announced
// to package procs, and matched by a derivation for a user who has no
// password when the site's passwords are plaintexts (not when they are
// stored as SCRAM credentials, which cost a decode).
func TestSCRAMDerivationCost(t *testing.T) {
	calls, restore := engine.CountCostlyWork()
	defer restore()
	e, _ := scramEngine(t)
	ctx := context.Background()
	steps := []struct {
		user        string
		want        engine.Status
		derivations int64
	}{
		{"scram@x", engine.StatusOK, 0},
		{"nosuch@x", engine.StatusFail, 0}, // stored SCRAM: nothing to match
		{"plain@x", engine.StatusOK, 1},
		{"nosuch@x", engine.StatusFail, 1}, // matches plain@x's derivation
		{"scram@x", engine.StatusOK, 0},
		{"nosuch@x", engine.StatusFail, 0},
	}
	for i, s := range steps {
		before := calls()
		r, cred := e.LookupCredentials(ctx, scramInfo(), "", s.user, "SCRAM-SHA-256", "")
		if r.Status != s.want || (s.want == engine.StatusOK) != (cred != nil) {
			t.Fatalf("step %d, %s: %v (%s), credentials %q", i, s.user, r.Status, r.Reason, cred)
		}
		if got := calls() - before; got != s.derivations {
			t.Errorf("step %d, %s: %d costly derivations, want %d", i, s.user, got, s.derivations)
		}
	}
}

// The derivation waits for a verify worker within the pool's bounds: shed,
// a known user's lookup and an unknown user's are the same temporary
// failure.
func TestSCRAMDerivationOnVerifyPool(t *testing.T) {
	e, obs := scramEngine(t)
	ctx := context.Background()
	if r, _ := e.LookupCredentials(ctx, scramInfo(), "", "plain@x", "SCRAM-SHA-256", ""); r.Status != engine.StatusOK {
		t.Fatalf("plain@x: %v (%s)", r.Status, r.Reason)
	}
	release := engine.HoldVerifyWorkers(e, 1)
	for _, user := range []string{"plain@x", "nosuch@x"} {
		r, cred := e.LookupCredentials(ctx, scramInfo(), "", user, "SCRAM-SHA-256", "")
		if r.Status != engine.StatusTempFail || cred != nil {
			t.Errorf("%s with every worker busy: %v (%s), want a temporary failure", user, r.Status, r.Reason)
		}
	}
	if got := obs.reasons(); len(got) != 2 || got[0] != engine.ShedWait {
		t.Errorf("shed reasons %q, want two of %s", got, engine.ShedWait)
	}
	release()
	if r, _ := e.LookupCredentials(ctx, scramInfo(), "", "plain@x", "SCRAM-SHA-256", ""); r.Status != engine.StatusOK {
		t.Errorf("plain@x after the workers freed: %v (%s)", r.Status, r.Reason)
	}
}

// scramInfo is a new request's: an Info carries its attempt's state.
func scramInfo() *engine.Info {
	return &engine.Info{Service: "imap", Mech: "SCRAM-SHA-256", RemoteIP: "192.0.2.10"}
}
