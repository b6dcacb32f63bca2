package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// memo remembers the collectors a label tuple resolved to. Resolving one
// through a vector (WithLabelValues) hashes the values and takes the
// vector's read lock, and the label sets take theirs: a few locks per
// login whose cache line the cores pass back and forth, ≈4 % of a cached
// PLAIN login's CPU in profiles. A memo's map is read without a lock and
// replaced whole on the rare miss; it holds at most memoMax tuples, past
// which tuples are resolved each time (they are bounded by the closed
// label sets anyway).
type memo[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex
}

const memoMax = 512

func (c *memo[K, V]) get(k K, resolve func(K) V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	v := resolve(k)
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil && len(*old) >= memoMax {
		return v
	}
	n := make(map[K]V, 1+lenOf(old))
	if old != nil {
		for key, val := range *old {
			n[key] = val
		}
	}
	n[k] = v
	c.m.Store(&n)
	return v
}

func lenOf[K comparable, V any](m *map[K]V) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// countTime is a counter and a duration histogram resolved together.
type countTime struct {
	count prometheus.Counter
	time  prometheus.Observer
}
