package ldap

import "strings"

const hexDigits = "0123456789ABCDEF"

// EscapeFilter escapes a value for use inside an LDAP search filter
// assertion, as RFC 4515 §3 requires: '*', '(', ')', '\' and NUL become
// \2A, \28, \29, \5C and \00. Bytes >= 0x80 are hex-escaped too: RFC 4515
// allows any octet to be escaped, and a user name that is not valid UTF-8
// then still produces a well-formed filter (the server answers "no such
// entry" instead of a protocol error). Control characters are escaped for
// the same reason and because they are never meant literally.
//
// The result is only safe as an assertion value; it is not a DN value (see
// EscapeDN).
func EscapeFilter(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if filterSpecial(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if filterSpecial(c) {
			b.WriteByte('\\')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func filterSpecial(c byte) bool {
	return c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20 || c >= 0x7f
}

// EscapeDN escapes a value for use as (part of) an attribute value in a
// distinguished name, per RFC 4514 §2.4: '"', '+', ',', ';', '<', '>' and
// '\' get a backslash, as do a leading '#' or space and a trailing space.
// '=' is escaped too (§3 allows it; some DN parsers split on it). NUL,
// other control characters and bytes >= 0x80 become \XX hex pairs, so a
// name that is not valid UTF-8 cannot make the DN ambiguous; the server
// rejects such a DN as invalid syntax, which the driver reports as "not
// found" for a templated base.
func EscapeDN(s string) string {
	var b strings.Builder
	clean := true
	for i := 0; i < len(s); i++ {
		if dnSpecial(s, i) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20 || c >= 0x7f:
			b.WriteByte('\\')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		case dnSpecial(s, i):
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// dnSpecial reports whether s[i] needs escaping in a DN attribute value.
func dnSpecial(s string, i int) bool {
	switch c := s[i]; c {
	case '"', '+', ',', ';', '<', '>', '\\', '=':
		return true
	case '#':
		return i == 0
	case ' ':
		return i == 0 || i == len(s)-1
	default:
		return c < 0x20 || c >= 0x7f
	}
}
