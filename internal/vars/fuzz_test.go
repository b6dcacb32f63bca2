package vars

import (
	"strings"
	"testing"
)

// expensive reports whether expanding t would run many hash rounds; the
// fuzzer skips those to stay fast (they are valid, just slow).
func expensive(t *Template) bool {
	if t == nil {
		return false
	}
	for i := range t.nodes {
		n := &t.nodes[i]
		switch n.kind {
		case nHash:
			cost := n.hash.rounds
			if n.hash.pkcs5 {
				cost *= 2 * (pkcs5KeyLen + 31) / 32 // two HMAC hashes per round and output block
			}
			if cost > 4096 || expensive(n.hash.salt) {
				return true
			}
		case nIf:
			for _, p := range n.cond.params {
				if expensive(p) {
					return true
				}
			}
		}
	}
	return false
}

func FuzzParse(f *testing.F) {
	for _, s := range goldenTemplates {
		f.Add(s)
	}
	f.Add("home=/var/mail/%d/%n uid=vmail key:protected=%{passdb:x:y} k:remove")
	c := fullContext()
	esc := func(s string) string { return strings.ReplaceAll(s, "'", "''") }
	f.Fuzz(func(t *testing.T, s string) {
		lt := ParseLenient(s)
		_ = lt.CacheKey()
		_ = lt.Unknown()
		_ = lt.Uses("u")
		_ = lt.Static()
		CacheKeyOf(lt).ExpandCacheKey(c, false)
		ParseFields(s)
		tp, err := Parse(s)
		if err == nil && tp.String() != s {
			t.Fatalf("String() = %q, want %q", tp.String(), s)
		}
		if expensive(lt) {
			return
		}
		out, _ := lt.ExpandChecked(c, esc)
		if got := lt.Expand(c, esc); got != out {
			t.Fatalf("Expand %q != ExpandChecked %q", got, out)
		}
		if got := string(lt.AppendExpand([]byte("pre"), c, esc)); got != "pre"+out {
			t.Fatalf("AppendExpand %q != %q", got, "pre"+out)
		}
		if err == nil {
			// A template Parse accepts expands the same either way.
			if got := tp.Expand(c, esc); got != out {
				t.Fatalf("strict %q != lenient %q", got, out)
			}
		}
		lt.Expand(&Context{}, nil)
	})
}

// FuzzParse24 feeds Dovecot 2.4 templates: parsing and expanding never
// panic, the strict parser accepts nothing the lenient one rejects, and
// the expansion functions agree.
func FuzzParse24(f *testing.F) {
	for _, s := range golden24Templates {
		f.Add(s)
	}
	f.Add("%{user | md5(rounds=2, salt=protocol) | substr(0, 8) | lfill(10, 'x')}")
	c := fullContext()
	esc := func(s string) string { return strings.ReplaceAll(s, "'", "''") }
	f.Fuzz(func(t *testing.T, s string) {
		lt, lerr := Syntax24.ParseLenient(s)
		tp, err := Syntax24.Parse(s)
		if err == nil && lerr != nil {
			t.Fatalf("strict parse accepts what lenient rejects: %v", lerr)
		}
		if lerr != nil {
			return
		}
		if lt.String() != s {
			t.Fatalf("String() = %q, want %q", lt.String(), s)
		}
		_ = lt.CacheKey()
		_ = lt.Unknown()
		_ = lt.Uses("user")
		_ = lt.Static()
		CacheKeyOf(lt).ExpandCacheKey(c, false)
		if strings.Contains(s, "rounds") || strings.Contains(s, "fill") {
			return // valid, just possibly slow
		}
		out, _ := lt.ExpandChecked(c, esc)
		if got := lt.Expand(c, esc); got != out {
			t.Fatalf("Expand %q != ExpandChecked %q", got, out)
		}
		if got := string(lt.AppendExpand([]byte("pre"), c, esc)); got != "pre"+out {
			t.Fatalf("AppendExpand %q != %q", got, "pre"+out)
		}
		if err == nil {
			if got := tp.Expand(c, esc); got != out {
				t.Fatalf("strict %q != lenient %q", got, out)
			}
		}
		lt.Expand(&Context{}, nil)
	})
}
