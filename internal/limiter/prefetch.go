package limiter

import (
	"net/netip"
	"unsafe"
)

// Prefetching a pair's entry. A known-good login reads one cache line of
// the table, its pair's entry, and with many users that line has left the
// core's caches since the user's last login: the read waits for memory,
// the largest part of what the defence costs a login (docs/performance.md,
// "Brute-force defence"). A caller that knows the account and address a
// little before it calls Start (the engine does, while it processes the
// user name) asks for the line with Prefetch; the load then overlaps that
// work instead of stalling Start. It does so only on huge pages
// (tables.go): on small ones the prefetch waits for the page-table walk.

// PairHint is a pair's key ID worked out ahead of Start by Prefetch;
// Start uses it instead of hashing the pair's key again when the request's
// account and address are the ones it was made for. The zero PairHint is
// none.
type PairHint struct {
	account string
	ip      netip.Addr
	id      keyID
}

// tableView is a shard's table as Prefetch may read it without the lock:
// set under the lock whenever the table is replaced. A stale view only
// fetches a line for nothing.
type tableView struct {
	slots []entry
	tags  []uint8
}

// Prefetch starts loading the entry of account's pair seen from ip into
// the caches, without the shard's lock, and returns the pair's ID for
// Start (Request.Hint). It changes nothing; Start still decides alone.
func (l *Limiter) Prefetch(account string, ip netip.Addr) PairHint {
	if account == "" {
		return PairHint{}
	}
	ip = normalize(ip)
	h := PairHint{account: account, ip: ip, id: l.pairID(PairHint{}, account, ip)}
	v := l.shardOf(h.id).view.Load()
	if i := homeIn(h.id, len(v.slots)); i < len(v.slots) {
		prefetch(unsafe.Pointer(&v.slots[i]))
		prefetch(unsafe.Pointer(&v.tags[i]))
	}
	return h
}

// pairID is the ID of account's pair seen from ip (normalized), taken from
// h when h was made for them.
func (l *Limiter) pairID(h PairHint, account string, ip netip.Addr) keyID {
	if h.id != (keyID{}) && h.account == account && h.ip == ip {
		return h.id
	}
	var buf [128]byte
	return l.keys.idBytes(appendPairKey(buf[:0], account, ip))
}
