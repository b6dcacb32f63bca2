package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// ErrPanic wraps the error Do returns when fn panicked. The panic is
// recovered because the shared call runs on its own goroutine, where an
// unrecovered panic would end the whole daemon (docs/architecture.md, house rule 2);
// the engine treats it as any other "could not tell".
var ErrPanic = errors.New("cache: backend lookup panicked")

// Do coalesces backend lookups: while one call of fn for key is under way,
// further Do calls for key wait for its answer instead of starting their
// own (shared reports that the answer went to more than one caller). A
// successful answer is stored in the cache, as Store would, unless a
// Flush started while fn ran; an error is returned to every waiting caller
// and never stored. The returned Entry is shared and read-only.
//
// fn runs on a context that keeps the values of the ctx of the caller that
// started it (for logging and tracing) but not its cancellation, bounded
// by timeout (none if timeout <= 0; fn must then bound itself). Each
// caller waits on its own ctx: a caller that gives up gets ctx.Err() and
// the others keep waiting; the call itself runs on until it answers or
// times out, and its answer is still cached. That goroutine belongs to the
// call: the timeout is what bounds it.
//
// Do does not look in the cache first: the caller does (Lookup), and may
// come here precisely to bypass a cached entry (RecheckAfterMismatch).
//
// On a nil (disabled) cache Do calls fn directly on ctx, bounded by
// timeout, and stores nothing.
func (c *Cache) Do(ctx context.Context, key string, timeout time.Duration, fn func(ctx context.Context) (Entry, error)) (e Entry, err error, shared bool) {
	if c == nil {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		e, err := call(ctx, fn)
		return e, err, false
	}
	return c.do(ctx, key, timeout, fn, nil)
}

// do is Do; with sv, the answer is also saved to the shared store, and
// the L1 entry remembers the generation it was fetched under.
func (c *Cache) do(ctx context.Context, key string, timeout time.Duration, fn func(ctx context.Context) (Entry, error), sv *sharedSave) (e Entry, err error, shared bool) {
	ch := c.flight.DoChan(key, func() (any, error) {
		fctx := context.WithoutCancel(ctx)
		if timeout > 0 {
			var cancel context.CancelFunc
			fctx, cancel = context.WithTimeout(fctx, timeout)
			defer cancel()
		}
		// Read before fn runs: a Flush after this point may have been
		// meant to remove what fn is about to return.
		gen := c.flushGen.Load()
		e, err := call(fctx, fn)
		if err != nil {
			return nil, err
		}
		if e.Refusal == 0 {
			o := storeOpts{flushGen: gen, checkGen: true}
			if sv != nil && sv.known {
				o.mark = markOf(sv.gen)
			}
			c.store(key, &e, o)
			if sv != nil {
				c.save(fctx, key, sv, &e)
			}
		}
		return &e, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Entry{}, r.Err, r.Shared
		}
		return *r.Val.(*Entry), nil, r.Shared
	case <-ctx.Done():
		return Entry{}, ctx.Err(), false
	}
}

// call runs fn, turning a panic into an error.
func call(ctx context.Context, fn func(context.Context) (Entry, error)) (e Entry, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrPanic, r, debug.Stack())
		}
	}()
	return fn(ctx)
}
