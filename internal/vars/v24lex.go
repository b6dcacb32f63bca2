package vars

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The lexical rules of Dovecot 2.4's templates (lib-var-expand's flex
// scanner), written from its observable behaviour:
//
//   - Outside an expression, `%{` opens one, `%%{` is the text "%{", any
//     other `%` is itself (so 2.3's `%u` is the text "%u" and `%%` is
//     "%%"), and a run of other bytes is text. A run that is exactly "y"
//     is dropped: the scanner has a stray rule matching "y" that wins the
//     tie with the text rule (testdata/golden24.json records it).
//   - Inside, blanks (space, tab) separate tokens; names start with a
//     letter or a byte >= 0x80 and go on with letters, digits and
//     `_/;:.-`; numbers are decimal digits; strings are '…' or "…" with
//     the escapes \\ \' \" \t \r \n \xHH and octal \NNN; the punctuation is
//     `| ( ) , = + - * / %` and `}` ends the expression. Strings and names
//     must be valid UTF-8.
//   - Dovecot's scanner silently skips (prints to its stdout) any other
//     byte inside an expression; that is an error here except in lenient
//     parsing.

type tokKind uint8

const (
	tEOF    tokKind = iota
	tClose          // }
	tPerc           // %
	tName           // NAME
	tPipe           // |
	tOpen           // (
	tCloseP         // )
	tComma          // ,
	tEq             // =
	tPlus           // +
	tMinus          // -
	tStar           // *
	tSlash          // /
	tString         // '…' or "…"
	tNumber         // digits
)

var tokNames = [...]string{
	tEOF: "end of template", tClose: "'}'", tPerc: "'%'", tName: "name", tPipe: "'|'",
	tOpen: "'('", tCloseP: "')'", tComma: "','", tEq: "'='", tPlus: "'+'", tMinus: "'-'",
	tStar: "'*'", tSlash: "'/'", tString: "string", tNumber: "number",
}

type token struct {
	kind tokKind
	text string // name, string value or digits
	pos  int    // byte offset in the template
}

// lexer24 scans the inside of one %{…} expression.
type lexer24 struct {
	src     string
	i       int
	lenient bool
	err     *ParseError
}

func (l *lexer24) fail(pos int, format string, args ...any) {
	if l.err == nil {
		l.err = &ParseError{Template: l.src, Pos: pos, Msg: fmt.Sprintf(format, args...)}
	}
}

func isNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isNameByte(c byte) bool {
	return isNameStart(c) || c >= '0' && c <= '9' || strings.IndexByte("_/;:.-", c) >= 0
}

var punct = map[byte]tokKind{
	'}': tClose, '%': tPerc, '|': tPipe, '(': tOpen, ')': tCloseP, ',': tComma,
	'=': tEq, '+': tPlus, '-': tMinus, '*': tStar, '/': tSlash,
}

// next returns the next token; after an error it returns tEOF.
func (l *lexer24) next() token {
	for l.err == nil && l.i < len(l.src) {
		c := l.src[l.i]
		start := l.i
		switch {
		case c == ' ' || c == '\t':
			l.i++
			continue
		case punct[c] != tEOF:
			l.i++
			return token{kind: punct[c], pos: start}
		case isNameStart(c):
			for l.i < len(l.src) && isNameByte(l.src[l.i]) {
				l.i++
			}
			name := l.src[start:l.i]
			if !utf8.ValidString(name) {
				l.fail(start, "invalid UTF-8 in name")
				return token{pos: start}
			}
			return token{kind: tName, text: name, pos: start}
		case c >= '0' && c <= '9':
			for l.i < len(l.src) && l.src[l.i] >= '0' && l.src[l.i] <= '9' {
				l.i++
			}
			return token{kind: tNumber, text: l.src[start:l.i], pos: start}
		case c == '\'' || c == '"':
			return l.quoted(c)
		default:
			if !l.lenient {
				l.fail(start, "unexpected character %q in %%{…}", c)
				return token{pos: start}
			}
			l.i++ // Dovecot's scanner echoes it and goes on
		}
	}
	return token{kind: tEOF, pos: l.i}
}

// quoted reads a '…' or "…" string with Dovecot 2.4's escapes. The text
// between escapes must be valid UTF-8; what an escape gives need not be.
func (l *lexer24) quoted(q byte) token {
	start := l.i
	l.i++
	var b strings.Builder
	for l.i < len(l.src) {
		c := l.src[l.i]
		switch {
		case c == q:
			l.i++
			return token{kind: tString, text: b.String(), pos: start}
		case c == '\\':
			if !l.escape(&b) {
				return token{pos: start}
			}
		default:
			j := l.i
			for j < len(l.src) && l.src[j] != q && l.src[j] != '\\' {
				j++
			}
			if !utf8.ValidString(l.src[l.i:j]) {
				l.fail(start, "invalid UTF-8 in string")
				return token{pos: start}
			}
			b.WriteString(l.src[l.i:j])
			l.i = j
		}
	}
	l.fail(start, "unterminated string")
	return token{pos: start}
}

// escape reads one backslash escape at l.i into b.
func (l *lexer24) escape(b *strings.Builder) bool {
	pos := l.i
	l.i++ // the backslash
	if l.i >= len(l.src) {
		l.fail(pos, "unterminated string")
		return false
	}
	c := l.src[l.i]
	switch c {
	case '\\', '"', '\'':
		b.WriteByte(c)
		l.i++
		return true
	case 't':
		b.WriteByte('\t')
	case 'r':
		b.WriteByte('\r')
	case 'n':
		b.WriteByte('\n')
	case 'x':
		if l.i+2 < len(l.src) && isHex(l.src[l.i+1]) && isHex(l.src[l.i+2]) {
			v, _ := strconv.ParseUint(l.src[l.i+1:l.i+3], 16, 8)
			b.WriteByte(byte(v))
			l.i += 3
			return true
		}
		l.fail(pos, "invalid character escape")
		return false
	default:
		if c >= '0' && c <= '9' {
			j := l.i
			for j < len(l.src) && j < l.i+3 && l.src[j] >= '0' && l.src[j] <= '9' {
				j++
			}
			// Dovecot reads the digits as octal; an 8 or 9, or a value
			// above 255, is an invalid escape.
			v, err := strconv.ParseUint(l.src[l.i:j], 8, 16)
			if err != nil || v > 255 {
				l.fail(pos, "invalid character escape")
				return false
			}
			b.WriteByte(byte(v))
			l.i = j
			return true
		}
		l.fail(pos, "invalid character escape")
		return false
	}
	l.i++
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
