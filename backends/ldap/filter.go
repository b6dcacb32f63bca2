package ldap

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	goldap "github.com/go-ldap/ldap/v3"
)

// This file compiles RFC 4515 string filters into the BER Filter element of
// a SearchRequest (RFC 4511 §4.5.1.7) without building go-ldap's packet
// tree, which costs several allocations per node. The accepted language
// and the bytes produced are deliberately those of go-ldap's CompileFilter
// rather than a strict reading of RFC 4515: filters in configurations were
// written and tested against go-ldap, so switching encoders must not change
// which filters are valid or what the server is asked. Where go-ldap is
// lenient (see appendFilter) we are lenient in the same way.

// maxFilterDepth bounds how deeply items of a filter may nest ('(', '!',
// '&' and '|' each open a level), so that a hostile filter cannot exhaust
// the stack through appendFilter's recursion. go-ldap has no bound and
// accepts deeper filters; that is the one intended difference. Real
// filters rarely nest more than a handful of levels.
const maxFilterDepth = 64

// errFilterTooDeep is wrapped by the error for a filter nested deeper than
// maxFilterDepth, so that tests can tell it from go-ldap's rejections.
var errFilterTooDeep = errors.New("filter nested too deeply")

// Filter CHOICE tags (RFC 4511 §4.5.1.7).
const (
	filterAnd        = berContext | berConstructed | 0
	filterOr         = berContext | berConstructed | 1
	filterNot        = berContext | berConstructed | 2
	filterEquality   = berContext | berConstructed | 3
	filterSubstrings = berContext | berConstructed | 4
	filterGreater    = berContext | berConstructed | 5
	filterLess       = berContext | berConstructed | 6
	filterPresent    = berContext | 7
	filterApprox     = berContext | berConstructed | 8
	filterExtensible = berContext | berConstructed | 9

	// SubstringFilter substrings CHOICE.
	substrInitial = berContext | 0
	substrAny     = berContext | 1
	substrFinal   = berContext | 2

	// MatchingRuleAssertion fields.
	matchRule  = berContext | 1
	matchType  = berContext | 2
	matchValue = berContext | 3
	matchDN    = berContext | 4
)

// appendFilter appends to w the BER encoding (RFC 4511 §4.5.1.7) of the
// RFC 4515 string filter f.
//
// It accepts exactly the filters go-ldap's CompileFilter accepts and
// appends the same bytes as CompileFilter(f).Bytes(), except that filters
// nested deeper than maxFilterDepth are rejected. That includes go-ldap's
// leniencies, all kept on purpose so that no configured filter changes
// meaning:
//   - redundant parentheses are transparent: "((uid=a))" is "(uid=a)";
//   - '!' need not be followed by a parenthesis: "(!uid=a)" is
//     "(!(uid=a))";
//   - an extensible item need not contain ":=": "(uid:rule)" matches the
//     empty value with rule "rule", and "(:)" is accepted;
//   - attribute descriptions and matching rules are taken verbatim (no
//     escapes, no syntax check, may be empty, may contain spaces or '(');
//     only assertion values are unescaped;
//   - a substrings value whose parts are all empty, such as "(cn=**)",
//     yields a SubstringFilter with no substrings;
//   - "*" is special only in equality items: "(cn>=*)" compares with "*";
//   - the literal character U+FFFD is rejected like invalid UTF-8, since
//     go-ldap cannot tell the two apart.
//
// Errors are go-ldap errors with code ErrorFilterCompile and say what is
// wrong at which byte offset of f. On error the contents of w are
// unspecified and the caller must discard them.
//
// Ordinary filters cost no allocation once w's buffers have grown:
// assertion values are unescaped directly into w.b.
func appendFilter(w *berWriter, f string) error {
	if f == "" || f[0] != '(' {
		return filterError(0, "filter does not start with '('")
	}
	end, err := appendFilterItem(w, f, 1, 1)
	if err != nil {
		return err
	}
	if end < len(f) {
		return filterError(end, "unexpected text after the end of the filter")
	}
	return nil
}

// filterError builds the error appendFilter returns. It is only reached on
// failure, so its allocations do not matter.
func filterError(pos int, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return goldap.NewError(goldap.ErrorFilterCompile, fmt.Errorf("ldap: %s at position %d", msg, pos))
}

// appendFilterItem compiles the item starting at f[pos], just after its
// opening parenthesis (or after a '!'), and returns the offset just past
// the parenthesis that closes it. depth is the item's nesting level.
func appendFilterItem(w *berWriter, f string, pos, depth int) (int, error) {
	if depth > maxFilterDepth {
		return 0, goldap.NewError(goldap.ErrorFilterCompile,
			fmt.Errorf("ldap: %w (more than %d levels) at position %d", errFilterTooDeep, maxFilterDepth, pos))
	}
	if pos >= len(f) {
		return 0, filterError(pos, "unexpected end of filter")
	}
	switch f[pos] {
	case '(':
		// A parenthesised item inside an item stands for itself; go-ldap
		// emits nothing for the extra pair, so neither do we.
		end, err := appendFilterItem(w, f, pos+1, depth+1)
		if err != nil {
			return 0, err
		}
		if end >= len(f) {
			return 0, filterError(end, "unexpected end of filter")
		}
		if f[end] != ')' {
			return 0, filterError(end, "expected ')'")
		}
		return end + 1, nil
	case '&':
		return appendFilterSet(w, f, filterAnd, pos+1, depth)
	case '|':
		return appendFilterSet(w, f, filterOr, pos+1, depth)
	case '!':
		// The operand closes the item: in "(!(a=b))" the last ')' ends the
		// parenthesised operand, and in "(!a=b)" it ends the simple item.
		w.begin(filterNot)
		end, err := appendFilterItem(w, f, pos+1, depth+1)
		if err != nil {
			return 0, err
		}
		w.end()
		return end, nil
	}
	return appendSimpleFilter(w, f, pos)
}

// appendFilterSet compiles the operands of an and or or item, starting at
// f[pos], up to and including the closing parenthesis. Operands follow
// each other directly: go-ldap allows no space between them, and an empty
// set is valid.
func appendFilterSet(w *berWriter, f string, tag byte, pos, depth int) (int, error) {
	w.begin(tag)
	for pos < len(f) && f[pos] == '(' {
		end, err := appendFilterItem(w, f, pos+1, depth+1)
		if err != nil {
			return 0, err
		}
		pos = end
	}
	if pos >= len(f) {
		return 0, filterError(pos, "unexpected end of filter")
	}
	if f[pos] != ')' {
		return 0, filterError(pos, "expected '(' or ')'")
	}
	w.end()
	return pos + 1, nil
}

// appendSimpleFilter compiles an item that is not and, or, not nor
// parenthesised: attribute, operator and value, starting at f[start], up
// to and including the closing parenthesis.
func appendSimpleFilter(w *berWriter, f string, start int) (int, error) {
	// Parts of the item, in the order they are read.
	const (
		inAttr = iota
		inRule
		inValue
	)
	var (
		state     = inAttr
		op        byte // Filter tag chosen by the operator; 0 until one is seen
		dn        bool // extensible item with ":dn"
		attrEnd   int
		ruleStart int
		ruleEnd   int
	)
	// Attribute and rule end at the first operator token. All tokens are
	// ASCII, so scanning bytes is scanning runes as long as every
	// non-ASCII rune is validated.
	i := start
	for state != inValue {
		if i >= len(f) {
			return 0, filterError(i, "unexpected end of filter")
		}
		c := f[i]
		if c == ')' {
			break
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(f[i:])
			if r == utf8.RuneError {
				return 0, filterError(i, "invalid UTF-8 or U+FFFD")
			}
			i += size
			continue
		}
		switch state {
		case inAttr:
			switch {
			case c == ':':
				op, attrEnd = filterExtensible, i
				switch rest := f[i:]; {
				case strings.HasPrefix(rest, ":dn:="):
					dn, state, i = true, inValue, i+5
				case strings.HasPrefix(rest, ":dn:"):
					dn, state, i = true, inRule, i+4
					ruleStart = i
				case strings.HasPrefix(rest, ":="):
					state, i = inValue, i+2
				default:
					state, i = inRule, i+1
					ruleStart = i
				}
				continue
			case c == '=':
				op, attrEnd, state, i = filterEquality, i, inValue, i+1
				continue
			case i+1 < len(f) && f[i+1] == '=' && (c == '>' || c == '<' || c == '~'):
				op = filterGreater
				if c == '<' {
					op = filterLess
				} else if c == '~' {
					op = filterApprox
				}
				attrEnd, state, i = i, inValue, i+2
				continue
			}
		case inRule:
			if c == ':' && i+1 < len(f) && f[i+1] == '=' {
				ruleEnd, state, i = i, inValue, i+2
				continue
			}
		}
		i++
	}
	valueStart, closing := i, i
	switch state {
	case inAttr:
		return 0, filterError(start, "no operator in filter item")
	case inRule:
		// go-ldap accepts an extensible item ending in its matching rule
		// and asserts the empty value.
		ruleEnd = closing
	case inValue:
		// The value runs to the first ')', whatever precedes it: '(', '='
		// and ':' are ordinary there, and a ')' in a value is written \29.
		n := strings.IndexByte(f[valueStart:], ')')
		if n < 0 {
			return 0, filterError(len(f), "unexpected end of filter")
		}
		closing += n
		if err := checkFilterText(f, valueStart, closing); err != nil {
			return 0, err
		}
	}

	attr := f[start:attrEnd]
	switch {
	case op == filterExtensible:
		w.begin(filterExtensible)
		if ruleEnd > ruleStart {
			w.octets(matchRule, f[ruleStart:ruleEnd])
		}
		if attr != "" {
			w.octets(matchType, attr)
		}
		if err := appendFilterValue(w, matchValue, f, valueStart, closing); err != nil {
			return 0, err
		}
		// dnAttributes is DEFAULT FALSE, so it is only sent when set.
		if dn {
			w.boolean(matchDN, true)
		}
		w.end()
	case op == filterEquality && f[valueStart:closing] == "*":
		w.octets(filterPresent, attr)
	case op == filterEquality && strings.IndexByte(f[valueStart:closing], '*') >= 0:
		// Only unescaped stars split the value; "\2a" is a literal star.
		w.begin(filterSubstrings)
		w.octets(tagOctets, attr)
		w.begin(tagSequence)
		if err := appendSubstrings(w, f, valueStart, closing); err != nil {
			return 0, err
		}
		w.end()
		w.end()
	default:
		w.begin(op)
		w.octets(tagOctets, attr)
		if err := appendFilterValue(w, tagOctets, f, valueStart, closing); err != nil {
			return 0, err
		}
		w.end()
	}
	return closing + 1, nil
}

// checkFilterText checks that f[from:to] is valid UTF-8 without U+FFFD,
// which go-ldap also rejects.
func checkFilterText(f string, from, to int) error {
	for i, r := range f[from:to] {
		// range yields RuneError for each invalid byte as well.
		if r == utf8.RuneError {
			return filterError(from+i, "invalid UTF-8 or U+FFFD")
		}
	}
	return nil
}

// appendSubstrings appends the substrings of the value f[from:to], which
// contains at least one '*'. Empty parts (leading, trailing or repeated
// stars) are left out, as go-ldap does, even if that leaves none.
func appendSubstrings(w *berWriter, f string, from, to int) error {
	tag := byte(substrInitial)
	for {
		star := strings.IndexByte(f[from:to], '*')
		if star < 0 {
			if from < to {
				return appendFilterValue(w, substrFinal, f, from, to)
			}
			return nil
		}
		if star > 0 {
			if err := appendFilterValue(w, tag, f, from, from+star); err != nil {
				return err
			}
		}
		tag = substrAny
		from += star + 1
	}
}

// appendFilterValue appends a primitive element with identifier tag whose
// content is the assertion value f[from:to] with its \XX escapes decoded.
// The value has been checked to be valid UTF-8 already; escapes may yield
// any byte, as RFC 4515 intends.
func appendFilterValue(w *berWriter, tag byte, f string, from, to int) error {
	// begin/end rather than header: the decoded length is only known at
	// the end, and end writes the same minimal length header would.
	w.begin(tag)
	for i := from; i < to; {
		// Copy the run up to the next escape in one go.
		esc := strings.IndexByte(f[i:to], '\\')
		if esc < 0 {
			w.b = append(w.b, f[i:to]...)
			break
		}
		w.b = append(w.b, f[i:i+esc]...)
		i += esc
		if to-i < 3 {
			return filterError(i, "incomplete escape in value")
		}
		hi, ok1 := filterHexDigit(f[i+1])
		lo, ok2 := filterHexDigit(f[i+2])
		if !ok1 || !ok2 {
			return filterError(i, "invalid escape %q in value", f[i:i+3])
		}
		w.b = append(w.b, hi<<4|lo)
		i += 3
	}
	w.end()
	return nil
}

// filterHexDigit returns the value of the hexadecimal digit c.
func filterHexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
