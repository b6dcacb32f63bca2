// Package ratelog writes a log line at most once a second and says how
// many it held back. Whatever a client can trigger at will (a protocol
// error, a refused connection, an overloaded verify queue) and whatever
// repeats in a tight loop (EMFILE on accept) is logged through one, so
// that neither a hostile client nor an outage can flood the log.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter lets one line through per second. The zero value is ready to
// use and safe for concurrent use; each kind of event gets its own, so
// that one kind cannot hide another.
type Limiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
	// now is time.Now; tests replace it.
	now func() time.Time
}

// Allow reports whether a line may be written now, and how many were held
// back since the last one.
func (r *Limiter) Allow() (suppressed int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.now != nil {
		now = r.now()
	}
	if !r.last.IsZero() && now.Sub(r.last) < time.Second {
		r.suppressed++
		return 0, false
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return n, true
}

// Log writes msg at level unless a line went out less than a second ago;
// the line carries suppressed=N when N lines were held back before it.
func (r *Limiter) Log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	n, ok := r.Allow()
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	l.Log(context.Background(), level, msg, args...)
}
