package sql

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// dialect is the SQL flavour of a driver: how its lexer reads quotes and
// comments, how a placeholder is written, and how a value that stays in
// the text is escaped (query.go).
type dialect uint8

const (
	dMySQL  dialect = iota // MySQL and MariaDB
	dPgSQL                 // PostgreSQL
	dSQLite                // SQLite 3
)

func (d dialect) String() string {
	switch d {
	case dPgSQL:
		return "pgsql"
	case dSQLite:
		return "sqlite"
	}
	return "mysql"
}

// placeholder is the n-th (1-based) parameter marker. cast: PostgreSQL's
// $n::text (see query.castParam).
func (d dialect) placeholder(n int, cast bool) string {
	if d != dPgSQL {
		return "?"
	}
	if cast {
		return "$" + strconv.Itoa(n) + "::text"
	}
	return "$" + strconv.Itoa(n)
}

// escapeBare escapes a value that sits outside any quotes as Dovecot's
// driver does: mysql_real_escape_string for MySQL; for PostgreSQL
// PQescapeStringConn, which with standard_conforming_strings=on (authd's
// sessions always have it) only doubles single quotes; for SQLite,
// Dovecot's own escaper, which doubles single quotes.
func (d dialect) escapeBare(s string) string {
	if d == dMySQL {
		return escapeBare(s)
	}
	return doubleQuote(s, '\'')
}

// decodeLiteral decodes the content of a plain literal quoted with quote,
// as the server reads it, keeping the %-spans as they are.
func (d dialect) decodeLiteral(content string, quote byte) string {
	if d == dMySQL {
		return decodeMySQL(content, quote)
	}
	return decodeDoubled(content, quote)
}

// representable reports whether the server can receive v at all.
// PostgreSQL refuses text with a NUL byte or bytes that are not UTF-8
// (authd's sessions use client_encoding UTF8) with an error; MySQL and
// SQLite take any bytes and simply find no row.
func (d dialect) representable(v string) bool {
	if d != dPgSQL {
		return true
	}
	return strings.IndexByte(v, 0) < 0 && utf8.ValidString(v)
}

// literalPrefix kinds (dialect.literalPrefix).
type prefixKind uint8

const (
	prefixNone    prefixKind = iota // a plain string: may become a placeholder
	prefixPlain                     // N'…', X'…', B'…', _charset'…', DATE '…': stays in the text
	prefixEscape                    // PostgreSQL's E'…', which reads backslash escapes
	prefixUnicode                   // PostgreSQL's U&'…', whose escapes depend on UESCAPE
)

// literalPrefix tells whether the literal that starts right after before
// carries a prefix that makes it something else than a plain string, so
// that it cannot become a placeholder.
func (d dialect) literalPrefix(before string) prefixKind {
	switch d {
	case dMySQL:
		if hasLiteralPrefix(before) {
			return prefixPlain
		}
	case dSQLite:
		if w, attached := wordBefore(before); attached && w == "x" {
			return prefixPlain
		}
	case dPgSQL:
		return pgLiteralPrefix(before)
	}
	return prefixNone
}

func pgLiteralPrefix(before string) prefixKind {
	if n := len(before); n >= 2 && strings.EqualFold(before[n-2:], "u&") && (n == 2 || !isIdentChar(before[n-3])) {
		return prefixUnicode
	}
	w, attached := wordBefore(before)
	switch {
	case attached && w == "e":
		return prefixEscape
	case attached && (w == "n" || w == "x" || w == "b"):
		return prefixPlain
	}
	switch w {
	case "date", "time", "timestamp", "timestamptz", "interval":
		return prefixPlain
	}
	return prefixNone
}

// wordBefore returns the identifier right before a literal, lower case,
// and whether it is attached to the quote (no blank between).
func wordBefore(before string) (string, bool) {
	trimmed := strings.TrimRight(before, " \t\r\n")
	j := len(trimmed)
	for j > 0 && isIdentChar(trimmed[j-1]) {
		j--
	}
	return strings.ToLower(trimmed[j:]), len(trimmed) == len(before)
}

// dollarTag returns the opening $tag$ (or $$) of a PostgreSQL
// dollar-quoted string at s[i], or "" when there is none: a '$' that ends
// an identifier, or starts a parameter ($1), opens nothing.
func dollarTag(s string, i int) string {
	if i > 0 && isIdentChar(s[i-1]) {
		return ""
	}
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '$':
			return s[i : j+1]
		case c >= '0' && c <= '9' && j == i+1:
			return ""
		case !isIdentChar(c):
			return ""
		}
	}
	return ""
}
