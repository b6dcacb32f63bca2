package engine

import "context"

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
