package cache

import (
	"strings"

	"github.com/authd-project/authd/internal/tabescape"
)

// Flush removes the entries of users, or every entry when users is empty,
// and returns how many it removed (the number CACHE-FLUSH replies with,
// docs/protocol.md §2.4.5). Fingerprints and last-check results go with their
// entries.
//
// The per-user rule is Dovecot's (auth-cache.c, auth_cache_node_is_user;
// docs/protocol.md §5.9): the cache does not know which variable each part of a
// key came from, so it takes the text after the "P<n>[+master]\t" or
// "U<n>[+master]\t" prefix as starting with the user name, and removes the
// entry when that text is exactly the user or the user followed by a TAB.
// Hence "P1\talice@example.com\timap" is flushed by "alice@example.com",
// but "P1\talice" (a backend keyed by %n) is not: flush "alice" for that.
//
// Unlike Dovecot, the user is tab-escaped before the comparison, as the
// key's values were, so a name containing a TAB matches its own entries
// and not those of a shorter name.
//
// A per-user flush walks every entry, as Dovecot's does: O(entries), about
// a quarter of a second for a million on the 2-core target (one cache miss
// per entry, BenchmarkFlushUser), each shard locked only while its own
// share is scanned. CACHE-FLUSH is rare; an index by user would cost
// memory on every entry.
//
// Flush also stops a Do that is under way from storing its answer, which
// was fetched before the flush and may be what the flush meant to remove.
func (c *Cache) Flush(users []string) int {
	if c == nil {
		return 0
	}
	// Bump first: a Do that stores after this point is refused, and one
	// that stored before it is removed below (both take the shard lock).
	c.flushGen.Add(1)
	removed := 0
	if len(users) == 0 {
		for i := range c.shards {
			s := &c.shards[i]
			s.mu.Lock()
			removed += len(s.m)
			// A new map, not clear(): clear keeps the old table's memory,
			// and a flush is often meant to give memory back.
			s.m = make(map[string]*node)
			s.root.next, s.root.prev = &s.root, &s.root
			s.entries.Store(0)
			s.bytes.Store(0)
			s.negEntries.Store(0)
			s.negBytes.Store(0)
			s.mu.Unlock()
		}
		return removed
	}
	escaped := make([]string, len(users))
	for i, u := range users {
		escaped[i] = tabescape.Escape(u)
	}
	return c.flushEscaped(escaped)
}

// flushEscaped is Flush of users already tab-escaped (at least one).
func (c *Cache) flushEscaped(escaped []string) int {
	c.flushGen.Add(1)
	removed := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		// The map, not the LRU list: its slots hold the key headers side
		// by side, so the walk misses the CPU cache once per entry (for
		// the key's bytes) instead of twice. Deleting while ranging over a
		// map is allowed.
		for k, n := range s.m {
			if keyHasUser(k, escaped) {
				s.remove(n)
				removed++
			}
		}
		s.mu.Unlock()
	}
	return removed
}

// keyHasUser applies the per-user flush rule (see Flush) to one key.
func keyHasUser(key string, users []string) bool {
	rest, ok := keyValues(key)
	if !ok {
		return false
	}
	for _, u := range users {
		if after, ok := strings.CutPrefix(rest, u); ok && (after == "" || after[0] == '\t') {
			return true
		}
	}
	return false
}

// keyValues strips the "P<n>[+master]\t" / "U<n>[+master]\t" prefix. The
// master user is tab-escaped in keys, so the first TAB ends the prefix.
func keyValues(key string) (string, bool) {
	if key == "" || key[0] != 'P' && key[0] != 'U' {
		return "", false
	}
	i := 1
	for i < len(key) && key[i] >= '0' && key[i] <= '9' {
		i++
	}
	if i < len(key) && key[i] == '+' {
		for i < len(key) && key[i] != '\t' {
			i++
		}
	}
	if i >= len(key) || key[i] != '\t' {
		return "", false
	}
	return key[i+1:], true
}

// SecretInKey reports whether a cache key template (vars.Template.CacheKey,
// TAB-separated parts such as "%u\t%s") may put a secret in the key: %w
// (the client's password, with any width or modifiers), or a %{...}
// expression mentioning "pass" once every "passdb:"/"userdb:" is dropped
// (Dovecot's rule for hiding fields, docs/protocol.md §5.10), which catches
// %{password}, %{md5:password}, %{passdb:password} and %w inside an %{if}.
// Dovecot would put such a value in the key; authd must not (docs/architecture.md
// house rule 3), so the engine leaves a backend whose key template is
// flagged uncached. The test errs on the side of flagging.
func SecretInKey(keyTemplate string) bool {
	t := strings.ToLower(keyTemplate)
	t = strings.ReplaceAll(t, "passdb:", "")
	t = strings.ReplaceAll(t, "userdb:", "")
	for i := 0; i < len(t); i++ {
		if t[i] != '%' {
			continue
		}
		j := i + 1
		// Width, offset and modifiers (vars' keyRange); lower-cased.
		for j < len(t) && strings.IndexByte("0123456789-.luexrhnmdt", t[j]) >= 0 {
			j++
		}
		if j < len(t) && t[j] == 'w' {
			return true
		}
		if j < len(t) && t[j] == '{' {
			if end := strings.IndexByte(t[j:], '}'); end < 0 || strings.Contains(t[j:j+end], "pass") {
				return true
			}
		}
	}
	return false
}
