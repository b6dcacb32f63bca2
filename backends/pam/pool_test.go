package pam

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The pool is pure Go, so these run in both builds, with -race in CI.

func TestPoolRuns(t *testing.T) {
	p := newPool(4, 3) // replace each worker after 3 jobs
	defer p.close()
	var n atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.run(context.Background(), func() { n.Add(1) }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n.Load() != 50 {
		t.Fatalf("%d jobs ran, want 50", n.Load())
	}
}

// TestPoolBusy: with every worker stuck in a slow job, a request waits
// only as long as its context, and the stuck job still completes.
func TestPoolBusy(t *testing.T) {
	p := newPool(1, 0)
	defer p.close()
	release := make(chan struct{})
	started := make(chan struct{})
	slowDone := make(chan error, 1)
	go func() {
		slowDone <- p.run(context.Background(), func() { close(started); <-release })
	}()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ran := false
	err := p.run(ctx, func() { ran = true })
	if !errors.Is(err, context.DeadlineExceeded) || ran {
		t.Fatalf("queued request: err=%v ran=%v, want DeadlineExceeded and not run", err, ran)
	}
	close(release)
	if err := <-slowDone; err != nil {
		t.Fatalf("slow job: %v", err)
	}
	if err := p.run(context.Background(), func() { ran = true }); err != nil || !ran {
		t.Fatalf("after the slow job: err=%v ran=%v", err, ran)
	}
}

// TestPoolCancelRunning: a request whose context ends while its job runs
// returns at once; the job runs to its end (a PAM transaction must reach
// pam_end) and the worker is then free again.
func TestPoolCancelRunning(t *testing.T) {
	p := newPool(1, 0)
	defer p.close()
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	finished := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- p.run(ctx, func() {
			cancel()
			<-release
			close(finished)
		})
	}()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want Canceled", err)
	}
	close(release)
	<-finished
	if err := p.run(context.Background(), func() {}); err != nil {
		t.Fatal(err)
	}
}

// TestPoolClose: close waits for the running job, refuses new ones and
// leaves no goroutine behind (docs/architecture.md, house rule 9), replaced workers
// included.
func TestPoolClose(t *testing.T) {
	before := runtime.NumGoroutine()
	p := newPool(3, 1)
	for range 10 {
		if err := p.run(context.Background(), func() {}); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	started := make(chan struct{})
	var finished atomic.Bool
	go func() {
		_ = p.run(context.Background(), func() { close(started); <-release; finished.Store(true) })
	}()
	<-started
	closed := make(chan struct{})
	go func() { p.close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("close returned while a job was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closed
	if !finished.Load() {
		t.Fatal("running job did not finish")
	}
	if err := p.run(context.Background(), func() { t.Error("ran after close") }); !errors.Is(err, errClosed) {
		t.Fatalf("after close: %v", err)
	}
	p.close() // twice is fine
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
