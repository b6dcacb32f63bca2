package dovecot

import (
	"sync"
	"time"
)

// workers runs request steps on long-lived goroutines. A fresh goroutine
// per request starts on a small stack and grows it on every request that
// walks the engine (a profile showed 16 % of a PLAIN request's CPU in
// stack growth); a worker keeps its grown stack. The pool is elastic:
// when no worker is idle a new one starts, so a slow backend never makes
// requests wait for each other; idle workers exit after a while.
type workers struct {
	work chan func()
	idle time.Duration

	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

func newWorkers(idle time.Duration) *workers {
	return &workers{work: make(chan func()), idle: idle}
}

// run executes f on an idle worker or a new one.
func (w *workers) run(f func()) {
	select {
	case w.work <- f:
		return
	default:
	}
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		// After stop, requests still finishing run on their own goroutine.
		go f()
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	go w.loop(f)
}

func (w *workers) loop(f func()) {
	defer w.wg.Done()
	// The idle timer is not reset per request (a timer update per login
	// showed in profiles): a worker that served nothing during a whole
	// period exits, so an idle one goes after one to two periods.
	t := time.NewTicker(w.idle)
	defer t.Stop()
	served := false
	for {
		if f != nil {
			f()
			f, served = nil, true
		}
		select {
		case g, ok := <-w.work:
			if !ok {
				return
			}
			f = g
		case <-t.C:
			if !served {
				return
			}
			served = false
		}
	}
}

// stop ends idle workers and waits for the busy ones to finish.
func (w *workers) stop() {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		close(w.work)
	}
	w.mu.Unlock()
	w.wg.Wait()
}
