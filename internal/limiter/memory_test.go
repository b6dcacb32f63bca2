package limiter

import (
	"fmt"
	"net/netip"
	"runtime"
	"runtime/debug"
	"testing"
)

// The memory bound of the issue: 1,000,000 tracked keys cost at most
// 200 MB, and past max_keys the least recently used keys go first
// (docs/operations.md §7). Measured as the cache's TestMemoryPerEntry
// measures: HeapAlloc after a full GC, before and after.
const (
	memKeys  = 1_000_000
	memBound = 200 << 20
)

// attackAttempt is attempt i of a credential-stuffing attack, each from
// an IPv6 /48 of its own at an account of its own: four new keys per
// attempt (the address, its network, the account, the pair), the
// account and pair keys with realistic names, and a failed password
// remembered in every pair.
func attackAttempt(l *Limiter, i int) {
	a := l.Begin(Request{
		Account:  fmt.Sprintf("user%07d@example.com", i),
		IP:       attemptIP(i),
		Password: []byte("guess"),
	})
	a.Done(Failed)
}

// attemptIP is 2001:XXXX:XXXX::1, in a /48 of its own for each i.
func attemptIP(i int) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0x20, 0x01
	b[2], b[3], b[4], b[5] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	b[15] = 1
	return netip.AddrFrom16(b)
}

// tracked reports whether the limiter holds key.
func (l *Limiter) tracked(key string) bool {
	id := l.keys.id(key)
	s := l.shardOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index(id) >= 0
}

// heapNow is HeapAlloc after a full GC.
func heapNow() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func TestMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("1M keys: skipped with -short")
	}
	if raceEnabled {
		t.Skip("the race detector changes allocation; make test runs this without -race")
	}
	heap0 := heapNow()
	l := New(Config{MaxKeys: memKeys})
	// A quarter more keys than max_keys: every shard is full, and the
	// limiter has evicted exactly one old key for each key past the
	// bound, the oldest first.
	const perAttempt = 4
	const attempts = memKeys / perAttempt * 5 / 4
	for i := range attempts {
		attackAttempt(l, i)
	}
	heap1 := heapNow()
	st := l.Stats()
	if st.Keys != memKeys || st.Evicted != attempts*perAttempt-memKeys {
		t.Errorf("after %d attempts: %d keys, %d evicted; want %d keys, %d evicted",
			attempts, st.Keys, st.Evicted, memKeys, attempts*perAttempt-memKeys)
	}
	oldest, newest := ipKey(attemptIP(0)), ipKey(attemptIP(attempts-1))
	if l.tracked(oldest) || !l.tracked(newest) {
		t.Errorf("oldest address tracked %v, newest tracked %v: want false, true", l.tracked(oldest), l.tracked(newest))
	}
	used := heap1 - heap0
	t.Logf("%d keys: %.1f MB on the heap, %.0f B per key", st.Keys, float64(used)/(1<<20), float64(used)/float64(st.Keys))
	if used > memBound {
		t.Errorf("%d keys take %.1f MB, more than %d MB", st.Keys, float64(used)/(1<<20), memBound>>20)
	}
	runtime.KeepAlive(l)
}
