package engine

import "context"

// A protocol layer may run a request on a goroutine that should not wait:
// the Dovecot client socket answers a login on the connection's own reader
// when it can, because handing every request to another goroutine costs a
// wake-up and a context switch (docs/architecture.md §The request
// pipeline). Such a caller puts a BlockHook in the request's context;
// the engine calls it once before the first thing that may wait (a
// backend's lookup, a password hash that costs more than a comparison) so
// that the caller can hand its other duties on first. Anything that waits
// on the context (ctx.Done) tells the caller too, through the context
// itself: the hook is for the waits that do not.

// BlockHook is told that the request's goroutine is about to wait or work
// for long. It must be cheap and safe to call more than once.
type BlockHook interface{ WillBlock() }

// BlockHookKey is the context key under which a caller's BlockHook is
// found.
type BlockHookKey struct{}

// willBlock tells ctx's BlockHook, if any, that the request is about to
// wait or work for long.
func willBlock(ctx context.Context) {
	if h, ok := ctx.Value(BlockHookKey{}).(BlockHook); ok {
		h.WillBlock()
	}
}

// memoryLookups is implemented by passdb and userdb drivers that answer
// from memory (passwd-file, static): looking up in them never waits, so
// the caller's goroutine need not be freed first.
type memoryLookups interface{ LooksUpInMemory() bool }

// inMemory reports whether db answers from memory.
func inMemory(db any) bool {
	m, ok := db.(memoryLookups)
	return ok && m.LooksUpInMemory()
}
