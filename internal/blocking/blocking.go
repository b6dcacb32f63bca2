// Package blocking lets code that is about to wait tell whoever owns the
// goroutine. The Dovecot client socket answers a light login on the
// connection's own reader (docs/architecture.md §The request pipeline):
// handing every request to another goroutine costs a wake-up and a context
// switch. Such a caller puts a Hook in the request's context, and code
// that starts a wait the context does not see (a backend lookup, a costly
// hash, a wait on a channel without the context) calls Announce first, so
// that the caller can hand its other duties on. A wait on ctx.Done needs
// no announcement: the caller's context sees it.
package blocking

import "context"

// Hook is told that the request's goroutine is about to wait or work for
// long. It must be cheap and safe to call more than once, from any
// goroutine.
type Hook interface{ WillBlock() }

// Key is the context key under which a caller's Hook is found.
type Key struct{}

// Announce tells ctx's Hook, if any, that the request is about to wait or
// work for long.
func Announce(ctx context.Context) {
	if h, ok := ctx.Value(Key{}).(Hook); ok {
		h.WillBlock()
	}
}
