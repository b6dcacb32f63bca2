// Package tabescape is Dovecot's tab-escaping (str_tabescape and its
// reverse), the one encoding of values in TAB-separated lines that the
// auth protocols, the checkpassword and OAuth2 helpers' replies, the cache
// keys and the %-variables' filters all share. It is a leaf: every layer,
// backends included, may import it (docs/architecture.md §The layers).
//
// The escape byte is 0x01, not backslash (docs/protocol.md §0).
package tabescape

import "strings"

const escByte = 0x01

// needsEscape reports whether s contains a byte that must be escaped.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0, escByte, '\t', '\r', '\n':
			return true
		}
	}
	return false
}

// Append appends s to dst tab-escaped: NUL, 0x01, TAB, CR and LF become
// 0x01 followed by '0', '1', 't', 'r' and 'n'.
func Append(dst []byte, s string) []byte {
	if !needsEscape(s) {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			dst = append(dst, escByte, '0')
		case escByte:
			dst = append(dst, escByte, '1')
		case '\t':
			dst = append(dst, escByte, 't')
		case '\r':
			dst = append(dst, escByte, 'r')
		case '\n':
			dst = append(dst, escByte, 'n')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// Escape returns s tab-escaped; s itself when nothing needs escaping, so
// the common case does not allocate.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	return string(Append(make([]byte, 0, len(s)+8), s))
}

// Unescape reverses Escape. 0x01 followed by any other byte yields that
// byte, and a lone 0x01 at the end is dropped, as Dovecot's reader does:
// the input is untrusted, so every byte string has an answer.
func Unescape(s string) string {
	i := strings.IndexByte(s, escByte)
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c != escByte {
			b = append(b, c)
			continue
		}
		i++
		if i >= len(s) {
			break
		}
		switch s[i] {
		case '0':
			b = append(b, 0)
		case '1':
			b = append(b, escByte)
		case 't':
			b = append(b, '\t')
		case 'r':
			b = append(b, '\r')
		case 'n':
			b = append(b, '\n')
		default:
			b = append(b, s[i])
		}
	}
	return string(b)
}
