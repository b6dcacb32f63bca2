package engine

import (
	"context"
	"sync/atomic"
)

// HoldVerifyWorkers takes n verify workers, as n long verifications
// would, until the returned function gives them back.
func HoldVerifyWorkers(e *Engine, n int) (release func()) {
	if err := e.verifies.sem.Acquire(context.Background(), int64(n)); err != nil {
		panic(err)
	}
	return func() { e.verifies.sem.Release(int64(n)) }
}

// VerifyWaiting is the number of verifications waiting for a worker.
func VerifyWaiting(e *Engine) int { return int(e.verifies.waiting.Load()) }

// CountCostlyWork counts what the engine tells package procs of costly
// work until the returned function puts the real hook back.
func CountCostlyWork() (calls func() int64, restore func()) {
	var n atomic.Int64
	old := costlyWork
	costlyWork = func() { n.Add(1) }
	return n.Load, func() { costlyWork = old }
}
