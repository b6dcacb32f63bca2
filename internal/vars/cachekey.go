package vars

import (
	"strconv"
	"strings"

	"github.com/authd-project/authd/internal/tabescape"
)

// Auth cache keys (docs/protocol.md §5.9). Dovecot derives a backend's default
// cache key from the text of its query/filter/path: every request-table
// variable used anywhere, once, in table order, with %n plus %d collapsed
// into %u, followed by every other %{...} (or unknown %x) verbatim. The
// scan deliberately mirrors Dovecot's var_get_key_range, which is looser
// than the expander: modifiers, offsets and widths are dropped, so %Lu and
// %2.1Mu both contribute %u.

// CacheKey returns the default cache key template of t as a TAB-joined
// template string, e.g. "%u\t%s" ("" when t uses no variable).
func (t *Template) CacheKey() string {
	if t.v24 != nil {
		return cacheKey24(t.v24.vars)
	}
	var k cacheKeyBuilder
	k.scan(t.src)
	return k.String()
}

// CacheKeyOf returns the cache key template covering several templates (a
// passdb may use a path and a query): the union of what each one uses.
func CacheKeyOf(templates ...*Template) *Template {
	var names []string
	v24 := false
	for _, t := range templates {
		if t != nil && t.v24 != nil {
			v24 = true
			names = append(names, t.v24.vars...)
		}
	}
	if v24 {
		t, err := parse24(cacheKey24(names), true, false)
		if err != nil {
			return &Template{v24: &tmpl24{}}
		}
		return t
	}
	var k cacheKeyBuilder
	for _, t := range templates {
		if t != nil {
			k.scan(t.src)
		}
	}
	return ParseLenient(k.String())
}

type cacheKeyBuilder struct {
	seen   [numVars]bool
	extras []string
}

func (k *cacheKeyBuilder) scan(q string) {
	for i := 0; i < len(q); {
		if q[i] != '%' {
			i++
			continue
		}
		i++
		idx, size, long := keyRange(q[i:])
		if size == 0 {
			return // a broken %variable ends the scan, as in Dovecot
		}
		i += idx
		key := q[i : i+size]
		if id, ok := tabFind(key); ok {
			k.seen[id] = true
		} else if long {
			k.extras = append(k.extras, "%{"+key+"}")
		} else {
			k.extras = append(k.extras, "%"+key)
		}
		i += size
	}
}

func (k *cacheKeyBuilder) String() string {
	seen := k.seen
	if seen[vUsername] && seen[vDomain] {
		seen[vUser] = true
		seen[vUsername], seen[vDomain] = false, false
	}
	var parts []string
	for id, s := range seen {
		if !s {
			continue
		}
		d := &varTable[id]
		if d.short != 0 {
			parts = append(parts, "%"+string([]byte{d.short}))
		} else {
			parts = append(parts, "%{"+d.long+"}")
		}
	}
	parts = append(parts, k.extras...)
	return strings.Join(parts, "\t")
}

// keyRange locates the key of the %-expression starting at s (just after
// the '%'): it skips digits, '-' and one '.', then any number of modifiers.
// A long key's range is the text inside the braces.
func keyRange(s string) (idx, size int, long bool) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '-') {
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '-') {
			i++
		}
	}
	for i < len(s) && isModifier(s[i]) {
		i++
	}
	if i >= len(s) {
		return i, 0, false
	}
	if s[i] != '{' {
		return i, 1, false
	}
	end, _ := braceEnd(s, i)
	return i + 1, end - (i + 1), true
}

// tabFind maps a key to a request-table entry; a one-byte key (even
// written %{u}) is compared with the short names only.
func tabFind(key string) (varID, bool) {
	if len(key) == 1 {
		return lookupShort(key[0])
	}
	return lookupLong(key)
}

// ExpandCacheKey expands a cache key template (from CacheKey or
// CacheKeyOf) into the key Dovecot stores: "P" (passdb) or "U" (userdb),
// the %! id, "+<master user>" when there is one, a TAB, then the key with
// every substituted value tab-escaped. So a passdb query using only %u on
// passdb 3 gives "P3\talice@example.com".
func (t *Template) ExpandCacheKey(c *Context, userdb bool) string {
	var buf [256]byte
	b := buf[:0]
	if userdb {
		b = append(b, 'U')
	} else {
		b = append(b, 'P')
	}
	b = strconv.AppendInt(b, int64(c.PassdbID), 10)
	if c.MasterUser != "" {
		b = append(b, '+')
		b = tabescape.Append(b, c.MasterUser)
	}
	b = append(b, '\t')
	if t.v24 != nil {
		b, _ = t.v24.expand(b, c, tabescape.Escape, t.policy)
		return string(b)
	}
	if t.simple {
		b, _ = t.expandSimple(b, c, tabescape.Escape)
		return string(b)
	}
	b2, _ := t.expand(append([]byte(nil), b...), c, tabescape.Escape)
	return string(b2)
}
