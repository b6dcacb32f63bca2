package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestDoCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newClock()
		c := testCache(t, clk, Options{})
		const n = 50
		var calls atomic.Int32
		release := make(chan struct{})
		fn := func(ctx context.Context) (Entry, error) {
			calls.Add(1)
			<-release
			return pos("h", "uid=1"), nil
		}
		var wg sync.WaitGroup
		results := make([]Entry, n)
		shared := make([]bool, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { results[i], errs[i], shared[i] = c.Do(t.Context(), "P1\tu", time.Minute, fn) })
		}
		// Every caller is now blocked: one in fn, the others waiting for
		// its answer.
		synctest.Wait()
		close(release)
		wg.Wait()
		if got := calls.Load(); got != 1 {
			t.Errorf("fn called %d times", got)
		}
		for i := range n {
			if errs[i] != nil || results[i].Data != "h" || !shared[i] {
				t.Errorf("caller %d: %+v %v shared=%v", i, results[i], errs[i], shared[i])
			}
		}
		// The answer was stored.
		if e, fresh, found := c.Lookup("P1\tu"); !found || !fresh || e.Data != "h" {
			t.Errorf("not cached: %v %v %v", e, fresh, found)
		}
		// A later call is a new call; a lone call is not shared.
		_, _, sh := c.Do(t.Context(), "P1\tu", time.Minute, func(context.Context) (Entry, error) { return pos("x"), nil })
		if sh || calls.Load() != 1 {
			t.Errorf("lone call: shared=%v", sh)
		}
		if e, _, _ := c.Lookup("P1\tu"); e.Data != "x" {
			t.Errorf("second answer not stored: %q", e.Data)
		}
	})
}

func TestDoCancelledCallerDoesNotFailOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newClock()
		c := testCache(t, clk, Options{})
		var calls atomic.Int32
		var fnCtxErr error
		fn := func(ctx context.Context) (Entry, error) {
			calls.Add(1)
			select {
			case <-time.After(time.Second): // the backend answers after 1s
				return pos("h"), nil
			case <-ctx.Done():
				fnCtxErr = ctx.Err()
				return Entry{}, ctx.Err()
			}
		}
		impatient, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		var errImpatient, errPatient error
		var got Entry
		// The impatient caller starts the call, so fn runs with a context
		// derived from its ctx: cancelling it must not reach fn.
		wg.Go(func() { _, errImpatient, _ = c.Do(impatient, "P1\tu", time.Minute, fn) })
		synctest.Wait()
		wg.Go(func() { got, errPatient, _ = c.Do(t.Context(), "P1\tu", time.Minute, fn) })
		synctest.Wait()
		cancel()
		synctest.Wait()
		if !errors.Is(errImpatient, context.Canceled) {
			t.Errorf("cancelled caller: err = %v", errImpatient)
		}
		wg.Wait()
		if errPatient != nil || got.Data != "h" {
			t.Errorf("other caller: %+v %v", got, errPatient)
		}
		if fnCtxErr != nil || calls.Load() != 1 {
			t.Errorf("fn saw %v, %d calls", fnCtxErr, calls.Load())
		}
	})
}

func TestDoTimeoutAndValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newClock()
		c := testCache(t, clk, Options{})
		type ctxKey struct{}
		var sawValue any
		var sawDeadline time.Duration
		start := time.Now()
		fn := func(ctx context.Context) (Entry, error) {
			sawValue = ctx.Value(ctxKey{})
			d, _ := ctx.Deadline()
			sawDeadline = d.Sub(start)
			<-ctx.Done() // a backend that hangs
			return Entry{}, ctx.Err()
		}
		// All callers gave up long ago; the call still ends at its own
		// timeout, and its error is not cached.
		ctx, cancel := context.WithTimeout(context.WithValue(t.Context(), ctxKey{}, "v"), time.Millisecond)
		defer cancel()
		_, err, _ := c.Do(ctx, "P1\tu", 5*time.Second, fn)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("caller err = %v", err)
		}
		synctest.Wait() // the shared call is still blocked in fn
		time.Sleep(5 * time.Second)
		synctest.Wait() // now it has returned: synctest would report a leaked goroutine otherwise
		if sawValue != "v" || sawDeadline != 5*time.Second {
			t.Errorf("fn saw value %v, deadline +%v", sawValue, sawDeadline)
		}
		if _, _, found := c.Lookup("P1\tu"); found {
			t.Error("an error was cached")
		}
	})
}

func TestDoErrorsAndPanics(t *testing.T) {
	clk := newClock()
	c := testCache(t, clk, Options{NegativeTTL: time.Hour})
	boom := errors.New("ldap down")
	c.Store("P1\tu", pos("stale"))
	clk.Advance(2 * time.Hour)
	_, err, _ := c.Do(t.Context(), "P1\tu", time.Second, func(context.Context) (Entry, error) { return Entry{}, boom })
	if !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
	// The failure left the stale entry alone, for the caller to fall back on.
	if e, fresh, found := c.Lookup("P1\tu"); !found || fresh || e.Data != "stale" {
		t.Errorf("stale entry: %v %v %v", e, fresh, found)
	}
	_, err, _ = c.Do(t.Context(), "P1\tp", time.Second, func(context.Context) (Entry, error) { panic("bug") })
	if !errors.Is(err, ErrPanic) {
		t.Errorf("panic: err = %v", err)
	}
	// A negative answer is an answer: stored.
	e, err, _ := c.Do(t.Context(), "P1\tn", time.Second, func(context.Context) (Entry, error) {
		return Entry{Negative: true, Data: "junk"}, nil
	})
	if err != nil || !e.Negative || e.Data != "" {
		t.Errorf("negative: %+v %v", e, err)
	}
	if e, _, found := c.Lookup("P1\tn"); !found || !e.Negative {
		t.Error("negative answer not cached")
	}
}

func TestDoFlushDuringCall(t *testing.T) {
	clk := newClock()
	c := testCache(t, clk, Options{})
	_, _, _ = c.Do(t.Context(), "P1\talice", time.Second, func(context.Context) (Entry, error) {
		// The password changes and CACHE-FLUSH arrives while the backend
		// is still answering with the old one.
		c.Flush([]string{"alice"})
		return pos("old"), nil
	})
	if _, _, found := c.Lookup("P1\talice"); found {
		t.Error("an answer fetched before a flush was stored after it")
	}
}

func TestDoNilCache(t *testing.T) {
	var c *Cache
	calls := 0
	for range 2 {
		e, err, shared := c.Do(t.Context(), "P1\tu", time.Second, func(ctx context.Context) (Entry, error) {
			calls++
			if _, ok := ctx.Deadline(); !ok {
				t.Error("no deadline")
			}
			return pos("h"), nil
		})
		if err != nil || e.Data != "h" || shared {
			t.Errorf("%+v %v %v", e, err, shared)
		}
	}
	if calls != 2 {
		t.Errorf("%d calls", calls)
	}
}
