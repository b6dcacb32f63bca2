package engine_test

import (
	"bytes"
	"context"

	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/schemes"
)

// shedObserver records shed verifications; requests run concurrently.
type shedObserver struct {
	countingObserver
	mu   sync.Mutex
	shed []string
}

func (o *shedObserver) Verify(string, time.Duration)               {}
func (o *shedObserver) PassdbLookup(string, string, time.Duration) {}
func (o *shedObserver) VerifyShed(reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.shed = append(o.shed, reason)
}

func (o *shedObserver) reasons() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.shed...)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// queueEngine serves alice@x (password alicepw, bcrypt) from a passwd-file
// whose path has %d, so that its answers are cached.
func queueEngine(t *testing.T, set engine.Settings) (*engine.Engine, *shedObserver, *lockedBuffer) {
	t.Helper()
	hash, err := schemes.Generate("BLF-CRYPT", []byte("alicepw"), "", 4)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x", "users"), []byte("alice@x:{BLF-CRYPT}"+hash+"::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := passwdfile.New(dir+"/%d/users", nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	e, err := engine.New(set, []engine.DBSpec{pass(db)}, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	e.SetCache(cache.New(cache.Options{MaxBytes: 1 << 20, TTL: time.Hour, NegativeTTL: time.Hour, Fingerprint: true}))
	obs := &shedObserver{}
	e.SetObserver(obs)
	return e, obs, &logs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Past VerifyQueue waiting verifications, a login is shed at once: a
// temporary failure for a known user and an unknown one alike, counted,
// logged at most once a second, and never remembered as an answer.
func TestVerifyQueueLength(t *testing.T) {
	e, obs, logs := queueEngine(t, engine.Settings{VerifyWorkers: 1, VerifyQueue: 1, VerifyWait: time.Hour})
	ctx := context.Background()
	// Teach the passdb its hash shape, so the dummy of an unknown user
	// is a bcrypt hash that queues like a real one.
	if r := e.VerifyPlain(ctx, info, "", "alice@x", []byte("alicepw")); r.Status != engine.StatusOK {
		t.Fatalf("alice before the overload: %v", r.Status)
	}
	release := engine.HoldVerifyWorkers(e, 1)
	waiting := make(chan engine.Result, 1)
	// A wrong password: a right one would match the cache's fingerprint
	// without a verification.
	go func() { waiting <- e.VerifyPlain(ctx, info, "", "alice@x", []byte("wrong2")) }()
	waitFor(t, "one verification to wait", func() bool { return engine.VerifyWaiting(e) == 1 })

	const sheds = 20
	for i := range sheds {
		user, pw := "alice@x", "wrong"
		if i%2 == 1 {
			user, pw = "nosuch@x", "whatever"
		}
		r := e.VerifyPlain(ctx, info, "", user, []byte(pw))
		if r.Status != engine.StatusTempFail {
			t.Fatalf("%s past the queue's length: %v (%s), want a temporary failure", user, r.Status, r.Reason)
		}
	}
	if got := obs.reasons(); len(got) != sheds || got[0] != engine.ShedQueueFull {
		t.Fatalf("shed reasons %q, want %d × %s", got, sheds, engine.ShedQueueFull)
	}
	if n := strings.Count(logs.String(), "password verification shed"); n < 1 || n > 2 {
		t.Errorf("%d shed log lines for %d sheds in a burst, want one (two if a second passed)", n, sheds)
	}
	release()
	if r := <-waiting; r.Status != engine.StatusFail {
		t.Fatalf("the waiting login: %v, want its answer (a wrong password) once a worker is free", r.Status)
	}
	// Nothing of the shed attempts was remembered.
	if r := e.VerifyPlain(ctx, info, "", "alice@x", []byte("wrong")); r.Status != engine.StatusFail {
		t.Fatalf("wrong password after the overload: %v", r.Status)
	}
	if r := e.VerifyPlain(ctx, info, "", "alice@x", []byte("alicepw")); r.Status != engine.StatusOK {
		t.Fatalf("right password after the overload: %v", r.Status)
	}
}

// A verification that waits longer than VerifyWait is shed; one whose
// own request ends while it waits is not counted as shed.
func TestVerifyQueueWait(t *testing.T) {
	e, obs, _ := queueEngine(t, engine.Settings{VerifyWorkers: 1, VerifyWait: 20 * time.Millisecond})
	release := engine.HoldVerifyWorkers(e, 1)
	r := e.VerifyPlain(context.Background(), info, "", "alice@x", []byte("alicepw"))
	if r.Status != engine.StatusTempFail {
		t.Fatalf("right password with no worker free: %v, want a temporary failure", r.Status)
	}
	if got := obs.reasons(); len(got) != 1 || got[0] != engine.ShedWait {
		t.Fatalf("shed reasons %q, want [%s]", got, engine.ShedWait)
	}

	e2, obs2, _ := queueEngine(t, engine.Settings{VerifyWorkers: 1, VerifyWait: time.Hour})
	release2 := engine.HoldVerifyWorkers(e2, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan engine.Result, 1)
	go func() { done <- e2.VerifyPlain(ctx, info, "", "alice@x", []byte("alicepw")) }()
	waitFor(t, "the verification to wait", func() bool { return engine.VerifyWaiting(e2) == 1 })
	cancel()
	if r := <-done; r.Status != engine.StatusTempFail {
		t.Fatalf("abandoned request: %v", r.Status)
	}
	if got := obs2.reasons(); len(got) != 0 {
		t.Fatalf("an abandoned request counted as shed: %q", got)
	}
	release()
	release2()
	if r := e.VerifyPlain(context.Background(), info, "", "alice@x", []byte("alicepw")); r.Status != engine.StatusOK {
		t.Fatalf("after the wait: %v", r.Status)
	}
}
