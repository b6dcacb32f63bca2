package engine_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/schemes"
)

// sha512Engine serves user00 … user(n-1) (passwords pw00 …) stored as
// {SHA512-CRYPT} with 1000 rounds, without a cache: every login is a
// verification, and on a CPU with AVX-512 a batchable one.
func sha512Engine(t *testing.T, set engine.Settings, n int) (*engine.Engine, *shedObserver) {
	t.Helper()
	var pf strings.Builder
	for i := range n {
		h, err := schemes.Generate("SHA512-CRYPT", fmt.Appendf(nil, "pw%02d", i), "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&pf, "user%02d:{SHA512-CRYPT}%s::::::\n", i, h)
	}
	return fileEngine(t, set, pf.String())
}

// fileEngine serves the passwd-file lines users with set, without a
// cache, and counts the verifications it sheds.
func fileEngine(t *testing.T, set engine.Settings, users string) (*engine.Engine, *shedObserver) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := passwdfile.New(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(set, []engine.DBSpec{pass(db)}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	obs := &shedObserver{}
	e.SetObserver(obs)
	return e, obs
}

// Logins that pile up behind a busy worker are answered right, each with
// its own answer, when the worker frees: the batches they are verified in
// never mix up or drop one.
func TestBatchedVerifyAnswers(t *testing.T) {
	const n = 21 // more than two batches of schemes.BatchMax
	e, obs := sha512Engine(t, engine.Settings{VerifyWorkers: 1, VerifyWait: time.Hour}, n)
	release := engine.HoldVerifyWorkers(e, 1)
	results := make([]engine.Result, n)
	var wg sync.WaitGroup
	for i := range n {
		pw := fmt.Sprintf("pw%02d", i)
		if i%3 == 0 {
			pw = "wrong"
		}
		// An Info is one request's: each login has its own.
		in := &engine.Info{Service: "imap", Mech: "PLAIN", RemoteIP: "192.0.2.10"}
		wg.Go(func() {
			results[i] = e.VerifyPlain(context.Background(), in, "", fmt.Sprintf("user%02d", i), []byte(pw))
		})
	}
	waitFor(t, "every login to wait for the worker", func() bool { return engine.VerifyWaiting(e) == n })
	release()
	wg.Wait()
	for i, r := range results {
		want := engine.StatusOK
		if i%3 == 0 {
			want = engine.StatusFail
		}
		if r.Status != want {
			t.Errorf("user%02d: %v (%s), want %v", i, r.Status, r.Reason, want)
		}
	}
	if got := obs.reasons(); len(got) != 0 {
		t.Errorf("shed: %q", got)
	}
}

// The queue's bounds hold for batchable verifications as for any: past
// VerifyQueue waiting they are shed at once, and one whose request ends
// while it waits is a temporary failure that is not counted as shed.
func TestBatchedVerifyBounds(t *testing.T) {
	e, obs := sha512Engine(t, engine.Settings{VerifyWorkers: 1, VerifyQueue: 1, VerifyWait: time.Hour}, 2)
	release := engine.HoldVerifyWorkers(e, 1)
	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan engine.Result, 1)
	in := &engine.Info{Service: "imap", Mech: "PLAIN", RemoteIP: "192.0.2.10"}
	go func() { waiting <- e.VerifyPlain(ctx, in, "", "user00", []byte("pw00")) }()
	waitFor(t, "one verification to wait", func() bool { return engine.VerifyWaiting(e) == 1 })
	if r := e.VerifyPlain(context.Background(), info, "", "user01", []byte("pw01")); r.Status != engine.StatusTempFail {
		t.Fatalf("past the queue's length: %v (%s), want a temporary failure", r.Status, r.Reason)
	}
	if got := obs.reasons(); len(got) != 1 || got[0] != engine.ShedQueueFull {
		t.Fatalf("shed reasons %q, want [%s]", got, engine.ShedQueueFull)
	}
	cancel()
	if r := <-waiting; r.Status != engine.StatusTempFail {
		t.Fatalf("abandoned request: %v", r.Status)
	}
	if got := obs.reasons(); len(got) != 1 {
		t.Fatalf("the abandoned request counted as shed: %q", got)
	}
	release()
	if r := e.VerifyPlain(context.Background(), info, "", "user01", []byte("pw01")); r.Status != engine.StatusOK {
		t.Fatalf("after the overload: %v (%s)", r.Status, r.Reason)
	}
}
