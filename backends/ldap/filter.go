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
	filterAnd        = berContext | berConstructed // tag 0
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
	substrInitial = berContext // tag 0
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
	it := simpleItem{start: start}
	i, err := it.scanOperator(f)
	if err != nil {
		return 0, err
	}
	valueStart, closing := i, i
	switch it.state {
	case inAttr:
		return 0, filterError(start, "no operator in filter item")
	case inRule:
		// go-ldap accepts an extensible item ending in its matching rule
		// and asserts the empty value.
		it.ruleEnd = closing
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
	if err := it.append(w, f, valueStart, closing); err != nil {
		return 0, err
	}
	return closing + 1, nil
}

// Parts of a simple filter item, in the order they are read.
const (
	inAttr = iota
	inRule
	inValue
)

// simpleItem is what appendSimpleFilter learns about an item while it
// reads the attribute, the matching rule and the operator.
type simpleItem struct {
	start     int  // offset of the attribute
	state     int  // inAttr, inRule or inValue
	op        byte // Filter tag chosen by the operator; 0 until one is seen
	dn        bool // extensible item with ":dn"
	attrEnd   int
	ruleStart int
	ruleEnd   int
}

// scanOperator reads up to the end of the item's operator, or to its ')'
// when it has none, and returns that offset. Attribute and rule end at
// the first operator token. All tokens are ASCII, so scanning bytes is
// scanning runes as long as every non-ASCII rune is validated.
func (it *simpleItem) scanOperator(f string) (int, error) {
	i := it.start
	for it.state != inValue {
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
		if isOperatorByte(c) {
			if next, ok := it.operator(f, i); ok {
				i = next
				continue
			}
		}
		i++
	}
	return i, nil
}

// isOperatorByte reports whether an operator token can start with c; the
// scan calls operator only for these, most bytes being attribute names.
func isOperatorByte(c byte) bool {
	return c == ':' || c == '=' || c == '>' || c == '<' || c == '~'
}

// operator recognises an operator token at f[i] in the current state,
// records it and returns the offset after it.
func (it *simpleItem) operator(f string, i int) (int, bool) {
	c := f[i]
	switch it.state {
	case inAttr:
		switch {
		case c == ':':
			return it.extensible(f, i), true
		case c == '=':
			it.op, it.attrEnd, it.state = filterEquality, i, inValue
			return i + 1, true
		case i+1 < len(f) && f[i+1] == '=' && (c == '>' || c == '<' || c == '~'):
			it.op = filterGreater
			if c == '<' {
				it.op = filterLess
			} else if c == '~' {
				it.op = filterApprox
			}
			it.attrEnd, it.state = i, inValue
			return i + 2, true
		}
	case inRule:
		if c == ':' && i+1 < len(f) && f[i+1] == '=' {
			it.ruleEnd, it.state = i, inValue
			return i + 2, true
		}
	}
	return i, false
}

// extensible reads the ':' that makes an item extensible, with ":dn" and
// ":=" when they follow, and returns the offset after them.
func (it *simpleItem) extensible(f string, i int) int {
	it.op, it.attrEnd = filterExtensible, i
	switch rest := f[i:]; {
	case strings.HasPrefix(rest, ":dn:="):
		it.dn, it.state = true, inValue
		return i + 5
	case strings.HasPrefix(rest, ":dn:"):
		it.dn, it.state, it.ruleStart = true, inRule, i+4
		return i + 4
	case strings.HasPrefix(rest, ":="):
		it.state = inValue
		return i + 2
	default:
		it.state, it.ruleStart = inRule, i+1
		return i + 1
	}
}

// append writes the item, whose value is f[valueStart:closing].
func (it *simpleItem) append(w *berWriter, f string, valueStart, closing int) error {
	attr := f[it.start:it.attrEnd]
	switch {
	case it.op == filterExtensible:
		w.begin(filterExtensible)
		if it.ruleEnd > it.ruleStart {
			w.octets(matchRule, f[it.ruleStart:it.ruleEnd])
		}
		if attr != "" {
			w.octets(matchType, attr)
		}
		if err := appendFilterValue(w, matchValue, f, valueStart, closing); err != nil {
			return err
		}
		// dnAttributes is DEFAULT FALSE, so it is only sent when set.
		if it.dn {
			w.boolean(matchDN, true)
		}
		w.end()
	case it.op == filterEquality && f[valueStart:closing] == "*":
		w.octets(filterPresent, attr)
	case it.op == filterEquality && strings.IndexByte(f[valueStart:closing], '*') >= 0:
		// Only unescaped stars split the value; "\2a" is a literal star.
		w.begin(filterSubstrings)
		w.octets(tagOctets, attr)
		w.begin(tagSequence)
		if err := appendSubstrings(w, f, valueStart, closing); err != nil {
			return err
		}
		w.end()
		w.end()
	default:
		w.begin(it.op)
		w.octets(tagOctets, attr)
		if err := appendFilterValue(w, tagOctets, f, valueStart, closing); err != nil {
			return err
		}
		w.end()
	}
	return nil
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
