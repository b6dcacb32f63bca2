package ldap

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
)

// filterCases are compared with go-ldap's CompileFilter by TestAppendFilter
// and seed FuzzAppendFilter. ok records whether go-ldap accepts the filter,
// so that a change of go-ldap's behaviour shows up here first.
var filterCases = []struct {
	filter string
	ok     bool
}{
	// Each item type.
	{"(uid=alice)", true},
	{"(uid>=100)", true},
	{"(uid<=100)", true},
	{"(cn~=alice)", true},
	{"(uid=*)", true},
	{"(cn=a*)", true},
	{"(cn=*a)", true},
	{"(cn=*a*)", true},
	{"(cn=a*b)", true},
	{"(cn=x*y*z)", true},
	{"(cn=a**b)", true},        // empty parts are dropped
	{"(cn=**)", true},          // substrings with no components at all
	{"(cn=***a***b***)", true}, // only any components
	{"(cn>=*)", true},          // '*' is plain in >=, <= and ~=
	{"(cn~=a*b)", true},
	{"(uid=)", true}, // empty value
	{"(=x)", true},   // empty attribute
	{"(=*)", true},   // present with empty attribute
	{"(=)", true},

	// Extensible match.
	{"(cn:=alice)", true},
	{"(cn:dn:=alice)", true},
	{"(cn:caseExactMatch:=Alice)", true},
	{"(cn:dn:2.5.13.5:=Alice)", true},
	{"(:caseExactMatch:=Alice)", true},
	{"(:dn:caseExactMatch:=Alice)", true},
	{"(:dn:=x)", true},
	{"(:=x)", true},
	{"(cn::=x)", true},          // empty rule is left out
	{"(cn:DN:=x)", true},        // "DN" is a rule: ":dn" is case sensitive
	{"(cn:rule:dn:=x)", true},   // rule "rule:dn"
	{"(cn:dn:dn:=x)", true},     // dnAttributes and rule "dn"
	{"(cn:rule)", true},         // no ":=": rule "rule", empty value
	{"(cn:)", true},             // attribute, no rule, empty value
	{"(:)", true},               // nothing but an empty value
	{"(cn:r=x)", true},          // rule "r=x"
	{"(cn:=a*b)", true},         // '*' is plain in extensible values
	{"(cn:dn:=\\2a\\28)", true}, // escapes in extensible values
	{"(cn:=\\zz)", false},

	// Escapes.
	{"(cn=a\\2ab)", true},
	{"(cn=\\2A)", true}, // upper-case hex, a literal star: equality
	{"(cn=\\28\\29\\5c\\00)", true},
	{"(cn=a\\2a*b\\5C)", true},
	{"(cn=\\ff\\fe)", true}, // any byte, even invalid UTF-8
	{"(cn=\\)", false},
	{"(cn=\\2)", false},
	{"(cn=\\2g)", false},
	{"(cn=\\g2)", false},
	{"(cn=a*\\2)", false},
	{"(cn=\\*)", false},
	{"(cn=\\\\5c)", false},
	{"(cn=\\é)", false},
	{"(c\\2an=x)", true}, // attributes are verbatim: no unescaping
	{"(cn:r\\2a:=x)", true},

	// Syntax leniencies and UTF-8.
	{"( cn = a b )", true}, // spaces belong to attribute and value
	{"(cn=a(b)", true},     // '(' is plain in a value
	{"(c(n=a)", true},      // and in an attribute
	{"(cn=a=b)", true},
	{"(cn=a:=b)", true},
	{"(cn>a)", false}, // no operator
	{"(cn~a)", false},
	{"(cn<a=b)", true}, // attribute "cn<a"
	{"(cn)", false},
	{"(cn=é)", true},
	{"(é=日本語*)", true},
	{"(cn=\xff)", false},
	{"(\xff=a)", false},
	{"(cn=\xe2\x82)", false},
	{"(cn=\xed\xa0\x80)", false}, // surrogate
	{"(cn=\xc0\xaf)", false},     // overlong
	{"(cn=\uFFFD)", false},       // go-ldap rejects the literal U+FFFD
	{"(\uFFFD=a)", false},
	{"(cn=a)\xff", false},

	// And, or, not and nesting.
	{"(&(objectClass=posixAccount)(mail=user@example.com))", true},
	{"(|(uid=a\\2ab)(cn=x*y*z))", true},
	{"(!(uid=a))", true},
	{"(!uid=a)", true}, // the operand of '!' needs no parentheses
	{"(!!uid=a)", true},
	{"(!&(a=b))", true},
	{"(!(!(a=b)))", true},
	{"(&)", true},
	{"(|)", true},
	{"(!)", false},
	{"(!(&)(|))", false},
	{"(&(|(a=1)(b=2))(!(c=3))(d=*))", true},
	{"((uid=a))", true}, // redundant parentheses are transparent
	{"(((uid=a)))", true},
	{"(&((a=b))(c=d))", true},
	{"(!((a=b)))", true},
	{"(&(a=b) (c=d))", false}, // no space between operands
	{"(& (a=b))", false},
	{"(&(a=b)", false},
	{"(&(a=b)x)", false},
	{"(|(a=b)))", false},
	{"(&a=b)", false},
	{"(!(a=b)", false},
	{"(!(a=b)))", false},

	// Framing.
	{"", false},
	{"uid=a", false},
	{" (uid=a)", false},
	{"(uid=a) ", false},
	{"(uid=a)(uid=b)", false},
	{"(uid=a", false},
	{"(uid", false},
	{"(", false},
	{"()", false},
	{"(())", false},
	{")", false},
	{"(uid=a))", false},
	{"(uid=a\\29", false},
}

// compareFilter checks appendFilter against go-ldap for f. It appends after
// a few bytes and inside an open element, as a search request does, so
// that it also checks that only appending happens and that begin and end
// are balanced. It returns go-ldap's error, and whether the inputs differ
// only in the documented depth limit.
func compareFilter(t *testing.T, f string) (goErr error, tooDeep bool) {
	t.Helper()
	p, goErr := goldap.CompileFilter(f)
	w := berWriter{b: []byte{0x30, 0x00, 0x01}}
	w.begin(tagSequence)
	err := appendFilter(&w, f)
	if err != nil {
		var le *goldap.Error
		if !errors.As(err, &le) || le.ResultCode != goldap.ErrorFilterCompile {
			t.Fatalf("appendFilter(%q) error %v is not a go-ldap ErrorFilterCompile", f, err)
		}
	}
	switch {
	case goErr != nil && err != nil:
		return goErr, false
	case goErr != nil:
		t.Fatalf("appendFilter(%q) accepted what go-ldap rejects: %v", f, goErr)
	case err != nil:
		if errors.Is(err, errFilterTooDeep) && filterDepthBound(f) > maxFilterDepth {
			return nil, true
		}
		t.Fatalf("appendFilter(%q) rejected what go-ldap accepts: %v", f, err)
	}
	if len(w.stack) != 1 {
		t.Fatalf("appendFilter(%q) left %d elements open, want 1", f, len(w.stack))
	}
	w.end()
	want := (&berWriter{b: []byte{0x30, 0x00, 0x01}})
	want.header(tagSequence, len(p.Bytes()))
	want.b = append(want.b, p.Bytes()...)
	if !bytes.Equal(w.b, want.b) {
		t.Fatalf("appendFilter(%q)\n got % x\nwant % x", f, w.b[3:], want.b[3:])
	}
	return nil, false
}

// filterDepthBound is an upper bound of the nesting depth appendFilter
// counts: every level is opened by one of these characters.
func filterDepthBound(f string) int {
	n := 0
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '(', '!', '&', '|':
			n++
		}
	}
	return n
}

func TestAppendFilter(t *testing.T) {
	for _, c := range filterCases {
		goErr, _ := compareFilter(t, c.filter)
		if (goErr == nil) != c.ok {
			t.Errorf("go-ldap CompileFilter(%q) error %v, want ok=%v", c.filter, goErr, c.ok)
		}
	}
}

// TestAppendFilterLong checks long values, whose lengths take two and three
// octets, and that containers around them are widened correctly.
func TestAppendFilterLong(t *testing.T) {
	for _, n := range []int{0x7f, 0x80, 0xff, 0x100, 0x10000} {
		v := strings.Repeat("v", n)
		e := strings.Repeat("\\76", n)
		for _, f := range []string{
			"(cn=" + v + ")",
			"(cn=" + e + ")",
			"(" + v + "=*)",
			"(cn=" + v + "*" + e + "*" + v + ")",
			"(cn:dn:" + v + ":=" + e + ")",
			"(&(cn=" + v + ")(|(cn=" + e + ")))",
		} {
			if goErr, _ := compareFilter(t, f); goErr != nil {
				t.Errorf("go-ldap rejects a %d-byte filter: %v", len(f), goErr)
			}
		}
	}
}

// TestAppendFilterDepth checks the nesting bound: up to maxFilterDepth
// levels are compiled like go-ldap does, deeper filters are refused (go-ldap
// accepts them), and a hostile depth fails fast.
func TestAppendFilterDepth(t *testing.T) {
	// nest builds a filter of 1+per*reps levels.
	nest := func(open, close string, reps int) string {
		return "(" + strings.Repeat(open, reps) + "a=b)" + strings.Repeat(close, reps)
	}
	for _, c := range []struct {
		open, close string
		per         int // levels per repetition
	}{
		{"&(", ")", 1},
		{"|(", ")", 1},
		{"(", ")", 1},
		{"!", "", 1},
		{"!(", ")", 2},
	} {
		reps := (maxFilterDepth - 1) / c.per
		if goErr, deep := compareFilter(t, nest(c.open, c.close, reps)); goErr != nil || deep {
			t.Errorf("%d levels of %q: go-ldap error %v, too deep %v", 1+c.per*reps, c.open, goErr, deep)
		}
		reps++
		if goErr, deep := compareFilter(t, nest(c.open, c.close, reps)); goErr != nil || !deep {
			t.Errorf("%d levels of %q: go-ldap error %v, too deep %v", 1+c.per*reps, c.open, goErr, deep)
		}
		var w berWriter
		if err := appendFilter(&w, nest(c.open, c.close, 1_000_000)); !errors.Is(err, errFilterTooDeep) {
			t.Errorf("a million levels of %q: error %v, want %v", c.open, err, errFilterTooDeep)
		}
	}
}

// TestAppendFilterErrors checks that errors say what and where.
func TestAppendFilterErrors(t *testing.T) {
	for f, want := range map[string]string{
		"uid=a":          "does not start with '(' at position 0",
		"(uid=a)x":       "unexpected text after the end of the filter at position 7",
		"(uid=a":         "unexpected end of filter at position 6",
		"(uid)":          "no operator in filter item at position 1",
		"(&(a=b)x)":      "expected '(' or ')' at position 7",
		"(cn=\xff)":      "invalid UTF-8 or U+FFFD at position 4",
		"(cn=ab\\2)":     "incomplete escape in value at position 6",
		"(cn=*\\zz)":     `invalid escape "\\zz" in value at position 5`,
		"((a=b)x)":       "expected ')' at position 6",
		"(!(!(!(a=b))))": "",
	} {
		var w berWriter
		err := appendFilter(&w, f)
		if want == "" {
			if err != nil {
				t.Errorf("appendFilter(%q): %v", f, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("appendFilter(%q) error %v, want %q", f, err, want)
		}
	}
}

// TestAppendFilterAllocs checks that ordinary filters compile without heap
// allocation once the writer's buffers have grown.
func TestAppendFilterAllocs(t *testing.T) {
	w := berWriter{b: make([]byte, 0, 256), stack: make([]int, 0, 16)}
	for _, f := range []string{
		"(&(objectClass=posixAccount)(mail=user@example.com))",
		"(|(uid=a\\2ab)(cn=x*y*z))",
		"(uid=*)",
	} {
		allocs := testing.AllocsPerRun(100, func() {
			w.b = w.b[:0]
			w.stack = w.stack[:0]
			if err := appendFilter(&w, f); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("appendFilter(%q): %v allocations, want 0", f, allocs)
		}
	}
}

// FuzzAppendFilter checks that appendFilter and go-ldap's CompileFilter
// agree on every input: both reject it, or both accept it with the same
// bytes. The only allowed difference is the nesting bound. Seeds:
// filterCases and testdata/fuzz/FuzzAppendFilter.
func FuzzAppendFilter(f *testing.F) {
	for _, c := range filterCases {
		f.Add(c.filter)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		compareFilter(t, filter)
	})
}

func BenchmarkAppendFilter(b *testing.B) {
	const f = "(&(objectClass=posixAccount)(|(uid=a\\2ab)(mail=user@example.com)(cn=x*y*z)))"
	b.Run("authd", func(b *testing.B) {
		b.ReportAllocs()
		var w berWriter
		for b.Loop() {
			w.b = w.b[:0]
			w.stack = w.stack[:0]
			if err := appendFilter(&w, f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-ldap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := goldap.CompileFilter(f)
			if err != nil {
				b.Fatal(err)
			}
			_ = p.Bytes()
		}
	})
}
