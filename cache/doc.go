// Package cache is authd's auth cache: Dovecot 2.3's passdb/userdb cache
// (docs/protocol.md §5.9, docs/architecture.md §Cache semantics) plus a
// keyed password fingerprint and request coalescing.
//
// The rules live here, behind three methods the engine calls: Get (fresh
// entries, coalesced backend calls, stale use only when the backend could
// not tell), CheckPassword (fingerprints, the last check's result, the
// password-change recheck) and CheckRemote (the same for a backend that
// checks passwords itself, such as an LDAP bind).
//
// # What is cached
//
// An Entry is what one passdb or userdb lookup answered: either "found"
// (the stored password as Scheme/Data, and the extra or userdb Fields) or
// Negative ("user unknown"). A lookup that could not tell (the backend is
// down, a timeout, a malformed row) is never an Entry: the caller must not
// Store anything for it (temporary failures are never cached). The API
// cannot enforce this because it only takes Entries; it is the caller's
// duty. A refusal (a disabled account) is an Entry with Refusal set: it
// passes through Do and Get to the callers and is never stored.
//
// # Keys
//
// Keys are Dovecot's: "P<id>[+<master>]\t<values>" for passdbs and
// "U<id>[+<master>]\t<values>" for userdbs, built by the engine with
// vars.CacheKeyOf(templates...).ExpandCacheKey(ctx, userdb). The values are
// those of the variables the backend's query uses, tab-escaped, after name
// processing (so %Lu makes the cache case-insensitive). Keys never contain
// passwords: the caller builds them from user-name and connection variables
// only, and must not cache a backend whose key template uses %w or another
// secret (see SecretInKey). The cache treats keys as opaque except in
// Flush, which parses the prefix.
//
// # Lifetimes and stale use
//
// A positive entry is fresh for Options.TTL after it was stored, a negative
// one for Options.NegativeTTL. Expired entries are kept (until the byte
// budget evicts them, a Flush removes them, or a Store replaces them) and
// Lookup still returns them, marked not fresh. Get uses such an entry only
// when the backend fails to answer (Dovecot's fallback to expired records),
// and counts it in Stats.StaleHits.
//
// # Byte budget
//
// Options.MaxBytes bounds the sum of the entries' accounted sizes: the
// key, every string of the entry, a fixed per-field cost and a fixed
// per-entry cost, both measured against the real heap (see memory_test.go
// and the constants in cache.go). Beyond the budget the least recently used
// entry goes first. The cache is split into up to 16 shards, each with its
// own lock, LRU list and an equal slice of the budget, so the total never
// exceeds MaxBytes; caches under 2 MiB have a single shard and so an exact
// global LRU order.
//
// # Passwords
//
// Dovecot's password-change rule (docs/protocol.md §5.9): after a password
// mismatch against a cached entry, the request goes back to the backend
// when the entry's last check succeeded or the entry is older than the
// negative TTL (the password may have changed); otherwise the mismatch is
// final. CheckPassword answers Recheck for the first case.
//
// authd's addition (docs/architecture.md §Cache semantics): with
// Options.Fingerprint, a positive entry
// also keeps HMAC-SHA-256(k, key, password) of the last password that
// verified against it, where k is a random key made in New and never leaves
// the process. A repeat login with the same password then costs one HMAC
// instead of a SHA512-CRYPT or bcrypt run. The plaintext is never stored or
// logged; the fingerprint is dropped whenever a Store changes the entry's
// Scheme or Data (the password changed) and with the entry itself (Flush,
// eviction, a negative Store).
//
// # Coalescing
//
// Do runs one backend call per key at a time and gives its answer to every
// caller waiting for it, storing it in the cache on success. The shared
// call runs on a context detached from any caller's cancellation and
// bounded by its own timeout, so one client that hangs up does not fail
// the others waiting on the same user.
//
// # A disabled cache
//
// New returns nil when the cache is off (MaxBytes <= 0 or TTL <= 0, as in
// Dovecot). Every method works on a nil *Cache: Lookup finds nothing, Store
// and the password methods do nothing, Flush returns 0, Do calls fn
// directly, Stats returns zeros. The engine can therefore call the cache
// unconditionally.
package cache
