package grpcserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/fields"
)

// Engine is what the gRPC service needs from the request pipeline.
// *engine.Engine implements it.
type Engine interface {
	VerifyPlain(ctx context.Context, info *engine.Info, authzid, authcid string, password []byte) engine.Result
	LookupPassdb(ctx context.Context, info *engine.Info, name string) engine.Result
	LookupUser(ctx context.Context, info *engine.Info, name string, prefetch fields.Fields) engine.Result
	LookupUserFinal(ctx context.Context, info *engine.Info, user, orig string, prefetch fields.Fields) engine.Result
	ListUsers(ctx context.Context, mask string, fn func(user string) bool) error
	// FinishAuth ends an authentication (the brute-force defence, the
	// log) and says when a failure's answer may leave.
	FinishAuth(info *engine.Info, res engine.Result, limit time.Duration) time.Time
	// AbandonAuth ends an authentication that got no answer (its step
	// panicked): it never counts.
	AbandonAuth(info *engine.Info)
}

var _ Engine = (*engine.Engine)(nil)

// CacheFlusher flushes the auth cache: everything, or the entries of
// users. A nil *cache.Cache is a valid CacheFlusher that flushes nothing.
type CacheFlusher interface {
	Flush(users []string) int
}

// Backend is what one configuration gives the gRPC service: its engine,
// its cache and the longest a failure's answer may be delayed. It counts
// the requests using it so that the daemon can close the engine only
// after they finished.
type Backend struct {
	eng      Engine
	cache    CacheFlusher
	maxDelay time.Duration
	// failureDelay is auth_failure_delay: a client whose deadline ends
	// before it gets every answer at one moment (auth.go).
	failureDelay time.Duration

	mu     sync.Mutex
	active int
	closed bool
	idle   chan struct{} // closed once closed && active == 0
}

// settingsReader is how NewBackend learns auth_failure_delay;
// *engine.Engine has it. An engine without it (a test's fake) delays
// nothing, so it has no delay to learn.
type settingsReader interface{ Settings() engine.Settings }

// NewBackend wraps one configuration's engine. cache may be nil (no
// cache). maxDelay bounds a failure's delay after the request arrived
// (the engine applies auth_failure_delay and its escalation).
func NewBackend(eng Engine, cache CacheFlusher, maxDelay time.Duration) *Backend {
	b := &Backend{eng: eng, cache: cache, maxDelay: maxDelay, idle: make(chan struct{})}
	if sr, ok := eng.(settingsReader); ok {
		b.failureDelay = sr.Settings().FailureDelay
	}
	return b
}

// acquire registers a request; false once Drain was called.
func (b *Backend) acquire() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.active++
	return true
}

func (b *Backend) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.active--
	if b.closed && b.active == 0 {
		close(b.idle)
	}
}

// Drain refuses new requests on b (they move to the Server's current
// Backend) and waits until the running ones are done with the engine, or
// ctx ends. Its signature fits the daemon's per-instance shutdown list.
func (b *Backend) Drain(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		if b.active == 0 {
			close(b.idle)
		}
	}
	n := b.active
	b.mu.Unlock()
	select {
	case <-b.idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("grpc: %d requests still using the old engine: %w", n, ctx.Err())
	}
}
