package sql

import (
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/vars"
)

// FuzzParseConf feeds arbitrary bytes to the dovecot-sql.conf.ext parser
// and what it yields to the connect-string parser and the query compiler:
// none may panic, and a compiled query must keep its shape for any value.
// Seeds: testdata/fuzz/FuzzParseConf.
func FuzzParseConf(f *testing.F) {
	f.Add([]byte("driver = mysql\nconnect = host=127.0.0.1 dbname=d user=u password=p\npassword_query = SELECT username AS user, password FROM users WHERE username='%u';\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseConf("fuzz.conf", data)
		if err != nil {
			return
		}
		if o, err := parseConnect(s.Connect); err == nil {
			_ = o.endpoints()
		}
		for _, src := range []string{s.PasswordQuery, s.UserQuery, s.IterateQuery} {
			checkCompiled(t, src)
		}
	})
}

// FuzzCompileQuery is the query compiler alone. Seeds:
// testdata/fuzz/FuzzCompileQuery.
func FuzzCompileQuery(f *testing.F) {
	f.Add("SELECT password FROM users WHERE username = '%n' AND domain = '%d'")
	f.Add(`SELECT 1 FROM t WHERE a = N'\%u'`)
	f.Add(`SELECT $q$%u$q$ AS a, "t_%d".x FROM "t_%d" WHERE a = E'%u' /* /* */ */ AND b = '%n\'`)
	f.Fuzz(func(t *testing.T, src string) {
		checkCompiled(t, src)
	})
}

// FuzzParseConnect is the connect-string parser alone. Seeds:
// testdata/fuzz/FuzzParseConnect.
func FuzzParseConnect(f *testing.F) {
	f.Add(`host=a host=/run/s.sock port=3307 password="a b" ssl_verify_server_cert=no maxconns=3`)
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseConnect(s)
		if err != nil {
			if strings.Contains(s, "password=secretvalue") && strings.Contains(err.Error(), "secretvalue") {
				t.Errorf("error leaks the password: %v", err)
			}
			return
		}
		for _, ep := range o.endpoints() {
			if ep.net != "tcp" && ep.net != "unix" {
				t.Errorf("endpoint %v", ep)
			}
		}
	})
}

// checkCompiled compiles src for every dialect and expands it for two very
// different users: a query whose text is static must not change with the
// user, the number of arguments must match the placeholders, and (unless
// a variable sits outside quotes) no value may change the statement's
// token structure.
func checkCompiled(t *testing.T, src string) {
	checkCompiledFor(t, dMySQL, src, "' OR '1'='1\\\x00\"`*/--%?")
	// PostgreSQL refuses NUL (errUnmatchable); $$ would open a dollar quote.
	checkCompiledFor(t, dPgSQL, src, "' OR '1'='1\\\"`*/--%?$$]")
	checkCompiledFor(t, dSQLite, src, "' OR '1'='1\\\x00\"`*/--%?]")
}

func checkCompiledFor(t *testing.T, dl dialect, src, hostile string) {
	q, err := compileQueryFor(dl, "q", src)
	if err != nil {
		return
	}
	a := &vars.Context{User: "plain", Service: "imap"}
	b := &vars.Context{User: hostile, Service: "imap"}
	sqlA, argsA, errA := q.expand(a)
	sqlB, argsB, errB := q.expand(b)
	if errA != nil || errB != nil {
		return // %{if} and hash failures are lookup errors, not panics
	}
	if len(argsA) != len(q.params) || len(argsB) != len(q.params) {
		t.Fatalf("%s %q: %d/%d args for %d params", dl, src, len(argsA), len(argsB), len(q.params))
	}
	if q.isStat && sqlA != sqlB {
		t.Fatalf("%s %q: static query text changed with the user: %q vs %q", dl, src, sqlA, sqlB)
	}
	// Unless a variable sits outside quotes (unconfined by design, and
	// warned about), no value may change the statement's structure, with
	// or without NO_BACKSLASH_ESCAPES.
	for _, p := range q.text {
		if p.tmpl != nil && p.ctx.kind == kBare {
			return
		}
	}
	// PostgreSQL (standard strings) and SQLite read literals as MySQL does
	// with NO_BACKSLASH_ESCAPES; "…" is an identifier there, which the
	// skeleton reads as a quoted token all the same.
	modes, quotes := []bool{false, true}, "'\"`"
	switch dl {
	case dPgSQL:
		modes, quotes = []bool{true}, "'\""
	case dSQLite:
		modes = []bool{true}
	}
	for _, nbe := range modes {
		mysql := dl == dMySQL
		pg := dl == dPgSQL
		if ka, kb := skeletonQ(sqlA, nbe, quotes, mysql, pg), skeletonQ(sqlB, nbe, quotes, mysql, pg); ka != kb {
			t.Fatalf("%s %q (no_backslash_escapes=%v): structure changed with the user:\n%q -> %q\n%q -> %q", dl, src, nbe, sqlA, ka, sqlB, kb)
		}
	}
}

// skeletonQ is an independent, simple reading of a final SQL text: each
// string literal becomes S, each quoted identifier I, comments vanish,
// everything else stays. quotes are the quote characters (PostgreSQL has
// no backquotes). Only MySQL (mysql) has "#" comments, "--" comments that
// need a blank after them, and comments whose content is SQL (/*!, /*M!,
// /*+); PostgreSQL and SQLite read "#" as an ordinary character and any
// "--" as a comment. Only PostgreSQL (pg) has dollar quotes ($$…$$,
// $tag$…$tag$), string literals like the others.
func skeletonQ(sql string, nbe bool, quotes string, mysql, pg bool) string {
	var b strings.Builder
	inExec := false // inside /*! … */: SQL, which the next */ ends
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case inExec && strings.HasPrefix(sql[i:], "*/"):
			inExec = false
			b.WriteString("*/")
			i += 2
		case mysql && !inExec && execCommentLen(sql[i:]) > 0:
			inExec = true
			n := execCommentLen(sql[i:])
			b.WriteString(sql[i : i+n])
			i += n
		case pg && dollarTagLen(sql, i) > 0:
			tag := sql[i : i+dollarTagLen(sql, i)]
			j := strings.Index(sql[i+len(tag):], tag)
			if j < 0 {
				b.WriteString("<unterminated>")
				return b.String()
			}
			b.WriteByte('S')
			i += 2*len(tag) + j
		case strings.IndexByte(quotes, c) >= 0:
			// PostgreSQL's E'…' reads backslash escapes whatever
			// standard_conforming_strings says.
			esc := !nbe || pg && c == '\'' && i > 0 && sql[i-1]|0x20 == 'e' && (i < 2 || !identByte(sql[i-2], false))
			j := i + 1
			for ; j < len(sql); j++ {
				if sql[j] == '\\' && esc && c != '`' {
					j++
					continue
				}
				if sql[j] == c {
					if j+1 < len(sql) && sql[j+1] == c {
						j++
						continue
					}
					break
				}
			}
			if j >= len(sql) {
				b.WriteString("<unterminated>")
				return b.String()
			}
			if c == '`' {
				b.WriteByte('I')
			} else {
				b.WriteByte('S')
			}
			i = j + 1
		case lineCommentQ(sql[i:], mysql):
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				return b.String()
			}
			i += j + 1
		case strings.HasPrefix(sql[i:], "/*") && (!mysql || execCommentLen(sql[i:]) == 0):
			j := strings.Index(sql[i+2:], "*/")
			if j < 0 {
				b.WriteString("<unterminated comment>")
				return b.String()
			}
			i += j + 4
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// dollarTagLen is the length of the dollar-quote delimiter ($$ or $tag$,
// a tag being an identifier without $) at sql[i], 0 if there is none: a
// $ inside an identifier (a$b$) or before a digit ($1) opens nothing.
func dollarTagLen(sql string, i int) int {
	if sql[i] != '$' || i > 0 && (identByte(sql[i-1], false) || sql[i-1] == '$') {
		return 0
	}
	j := i + 1
	for j < len(sql) && identByte(sql[j], j == i+1) {
		j++
	}
	if j < len(sql) && sql[j] == '$' {
		return j - i + 1
	}
	return 0
}

// identByte reports whether c may stand in an identifier (first: as its
// first character), as skeletonQ reads one.
func identByte(c byte, first bool) bool {
	return c == '_' || c >= 0x80 || c|0x20 >= 'a' && c|0x20 <= 'z' || !first && c >= '0' && c <= '9'
}

// lineCommentQ reports whether s starts with a line comment in the
// dialect skeletonQ reads.
func lineCommentQ(s string, mysql bool) bool {
	if !mysql {
		return strings.HasPrefix(s, "--")
	}
	return s[0] == '#' || strings.HasPrefix(s, "-- ") || strings.HasPrefix(s, "--\t") || strings.HasPrefix(s, "--\n")
}
