package limiter

import (
	"sync"
	"unsafe"
)

// Where the shards' tables live.
//
// A known-good login reads its pair's entry, and with many users both the
// entry's cache line and its page's address translation have left the
// CPU's caches since the user's last login. The engine asks for the line
// ahead of time (Prefetch), while it processes the user name; but on
// 4 KB pages the prefetch itself waits for the page-table walk, and so
// saves nothing (measured: docs/performance.md, "Brute-force defence",
// sessions 11 and 12). Tables backed by 2 MB pages need no walk, and the
// prefetch then overlaps the name processing as meant.
//
// The kernel backs only whole, aligned 2 MB ranges with a huge page, and
// a shard's table is smaller than that until it holds some 30,000 keys,
// so the tables of a limiter's shards are cut from shared chunks of
// hugeChunk bytes, each aligned to a huge page and advised as such
// (advise). A table of fewer than smallTable entries (a small site, a
// test) is an ordinary allocation: no chunk is made for it. The memory
// stays the Go heap's, without pointers: the collector frees a chunk
// once no table lives in it, and the race detector sees every access.

const (
	hugePage   = 2 << 20
	hugeChunk  = 2 * hugePage
	entrySize  = int(unsafe.Sizeof(entry{}))
	smallTable = 1024 // entries: 64 KB
)

// tableArena hands out the entry tables of a limiter's shards.
type tableArena struct {
	mu sync.Mutex
	// rest is the current chunk's unused part: tables are cut from it
	// in turn, never given back (a table replaced by a larger one is
	// garbage once no shard uses it, and its chunk with it).
	rest []entry
}

// alloc returns a zeroed table of n entries.
func (t *tableArena) alloc(n int) []entry {
	switch {
	case n < smallTable:
		return make([]entry, n)
	case n*entrySize >= hugeChunk:
		// A table this large has huge pages of its own, but for its
		// unaligned ends.
		s := make([]entry, n)
		advise(s)
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.rest) < n {
		t.rest = newChunk()
	}
	s := t.rest[:n:n]
	t.rest = t.rest[n:]
	return s
}

// newChunk returns hugeChunk bytes of entries that start on a huge page
// boundary, advised: a huge page more is allocated to find the boundary
// in (the part before it is never touched, so never backed by memory).
func newChunk() []entry {
	const n = hugeChunk / entrySize
	c := make([]entry, n+hugePage/entrySize)
	off := 0
	if rem := int(uintptr(unsafe.Pointer(&c[0])) % hugePage); rem != 0 {
		off = (hugePage - rem + entrySize - 1) / entrySize
	}
	c = c[off : off+n : off+n]
	advise(c)
	return c
}
