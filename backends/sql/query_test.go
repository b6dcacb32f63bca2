package sql

import (
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/vars"
)

func TestCompileQuery(t *testing.T) {
	vc := &vars.Context{User: "o'brien\\x@example.com", Service: "imap"}
	for _, tc := range []struct {
		src    string
		sql    string   // the SQL sent for vc
		args   []string // the bound values
		static bool
		warn   bool
	}{
		{
			src: "SELECT username AS user, password FROM users WHERE username='%u';", static: true,
			sql:  "SELECT username AS user, password FROM users WHERE username=?",
			args: []string{`o'brien\x@example.com`},
		},
		{
			src: DefaultPasswordQuery, static: true,
			sql:  "SELECT username, domain, password FROM users WHERE username = ? AND domain = ?",
			args: []string{`o'brien\x`, "example.com"},
		},
		{
			// Literal text around the variables is decoded as MySQL
			// decodes it; %% is a percent sign.
			src: `SELECT 1 FROM t WHERE a = '%n@%d' AND b LIKE "it''s ""%Ls""\n%%" AND c = 'x%%'`, static: true,
			sql:  `SELECT 1 FROM t WHERE a = ? AND b LIKE ? AND c = 'x%'`,
			args: []string{`o'brien\x@example.com`, "it''s \"imap\"\n%"},
		},
		{
			src: `SELECT 1 FROM t WHERE a LIKE '%u\_x\%%' AND b = 'a\'%u'`, static: true,
			sql:  `SELECT 1 FROM t WHERE a LIKE ? AND b = ?`,
			args: []string{`o'brien\x@example.com\_x\%`, `a'o'brien\x@example.com`},
		},
		{
			// Comments go, with their variables; executable comments and
			// hints stay.
			src: "SELECT /*+ NO_ICP(t) */ a /* %u */ FROM t -- %u\n WHERE a = '%u' # x\n /*!50000 AND 1 */", static: true,
			sql:  "SELECT /*+ NO_ICP(t) */ a   FROM t   WHERE a = ?   /*!50000 AND 1 */",
			args: []string{`o'brien\x@example.com`},
		},
		{
			// Prefixed literals stay in the text, with quotes doubled.
			src:  `SELECT 1 FROM t WHERE a = _utf8mb4'%u' AND b = N"%s"`,
			sql:  `SELECT 1 FROM t WHERE a = _utf8mb4'o''brien\\x@example.com' AND b = N"imap"`,
			args: []string{},
		},
		{
			// An identifier doubles backquotes.
			src:  "SELECT 1 FROM `users_%d` WHERE a = '%n'",
			sql:  "SELECT 1 FROM `users_example.com` WHERE a = ?",
			args: []string{`o'brien\x`},
		},
		{
			// Outside quotes: Dovecot's escaping, and a warning.
			src:  "SELECT 1 FROM t WHERE a = %u",
			sql:  `SELECT 1 FROM t WHERE a = o\'brien\\x@example.com`,
			args: []string{}, warn: true,
		},
		{
			// A quote inside %{…} belongs to the expression, not to SQL.
			src: "SELECT '%{if;%s;eq;imap;it's;no}' AS x, password FROM t", static: true,
			sql:  "SELECT ? AS x, password FROM t",
			args: []string{"it's"},
		},
		{
			src: "SELECT 1 FROM t WHERE d = DATE '2020-01-01' AND t = TIMESTAMP'%s'",
			sql: "SELECT 1 FROM t WHERE d = DATE '2020-01-01' AND t = TIMESTAMP'imap'", args: []string{},
		},
		{src: "SELECT 1 AS password", sql: "SELECT 1 AS password", static: true, args: []string{}},
	} {
		q, err := compileQuery("q", tc.src)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		sql, args, err := q.expand(vc)
		if err != nil {
			t.Errorf("%q: expand: %v", tc.src, err)
			continue
		}
		if sql != tc.sql || q.isStat != tc.static {
			t.Errorf("%q:\n sql    %q (static %v)\n want   %q (static %v)", tc.src, sql, q.isStat, tc.sql, tc.static)
		}
		var got []string
		for _, a := range args {
			got = append(got, a.(string))
		}
		if strings.Join(got, "|") != strings.Join(tc.args, "|") || len(got) != strings.Count(sql, "?") {
			t.Errorf("%q: args %q, want %q", tc.src, got, tc.args)
		}
		if (len(q.warnings) > 0) != tc.warn {
			t.Errorf("%q: warnings %q", tc.src, q.warnings)
		}
	}
}

// TestInTextIntact: a width that cuts an escaped quote in half makes the
// lookup fail instead of sending a broken literal (found by
// FuzzCompileQuery).
func TestInTextIntact(t *testing.T) {
	for _, tc := range []struct {
		src, user string
		fail      bool
	}{
		{"SELECT 1 FROM t WHERE a = B'%1n'", "x", false},
		{"SELECT 1 FROM t WHERE a = B'%1n'", "'", true}, // '' cut to '
		{"SELECT 1 FROM t WHERE a = N'%3u'", "ab'", true},
		{"SELECT 1 FROM t WHERE a = N'%3u'", "'", false}, // '' fits
		{"SELECT 1 FROM `t%1n`", "`", true},
		{"SELECT 1 FROM `t%1n`", "x", false},
	} {
		q, err := compileQuery("q", tc.src)
		if err != nil {
			t.Fatal(err)
		}
		sql, _, err := q.expand(&vars.Context{User: tc.user})
		if (err != nil) != tc.fail {
			t.Errorf("%q, user %q: sql %q, err %v", tc.src, tc.user, sql, err)
		}
	}
}

func TestCompileQueryErrors(t *testing.T) {
	for _, tc := range []struct{ src, err string }{
		{"SELECT '%u", "unterminated ' string"},
		{`SELECT "%u`, `unterminated " string`},
		{"SELECT `a", "unterminated ` identifier"},
		{"SELECT 1 /* x", "unterminated /* comment"},
		{"SELECT '%u'; DROP TABLE x", "several statements"},
		{"SELECT '%n' '@' '%d'", "adjacent"},
		{"SELECT '%n' 'x'", "adjacent"},
		{"SELECT '%{bogus}'", "unknown variable"},
		{"SELECT 'abc%'", "unknown variable"}, // %' is an (unknown) variable, as in Dovecot
		{"SELECT 1 WHERE a = %", "incomplete"},
		{`SELECT 1 WHERE a = N'\%u'`, "backslash in a prefixed literal"},
		{`SELECT 1 WHERE a = _utf8mb4'it\'s %u'`, "backslash in a prefixed literal"},
	} {
		_, err := compileQuery("q", tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %v, want %q", tc.src, err, tc.err)
		}
	}
	// Trailing semicolons and blanks go; one statement with a ';' in a
	// literal or comment is fine.
	for _, src := range []string{"SELECT ';' AS x ;; \n", "SELECT 1 -- ; x\n", "SELECT `a;b` FROM t;"} {
		if _, err := compileQuery("q", src); err != nil {
			t.Errorf("%q: %v", src, err)
		}
	}
}

func TestEscapers(t *testing.T) {
	in := "a'b\"c\\d\x00e\nf\r\x1ag`h"
	if got, want := escapeBare(in), `a\'b\"c\\d\0e\nf\r\Zg`+"`h"; got != want {
		t.Errorf("bare %q, want %q", got, want)
	}
	if got, want := escapeQuoted(in, '\''), "a''b\"c\\\\d\\0e\nf\r\x1ag`h"; got != want {
		t.Errorf("single %q, want %q", got, want)
	}
	if got, want := escapeQuoted(in, '"'), "a'b\"\"c\\\\d\\0e\nf\r\x1ag`h"; got != want {
		t.Errorf("double %q, want %q", got, want)
	}
	if got, want := escapeIdent(in), "a'b\"c\\de\nf\r\x1ag``h"; got != want {
		t.Errorf("ident %q, want %q", got, want)
	}
}

// TestSpanEndMatchesVars checks that the lexer's idea of where a
// %-expression ends agrees with internal/vars on every piece it cuts: each
// piece must parse on its own, and the pieces must use exactly the
// variables of the whole query.
func TestSpanEndMatchesVars(t *testing.T) {
	for _, src := range []string{
		"SELECT '%-3.2Lu' AS a, '%0.-1Xn' AS b, '%{sha256;rounds=2:user}' AS c",
		"SELECT '%{if;%{user};eq;a\\}b;x;y}' AS a, '%LUEXRHNMDTu' AS b",
		"SELECT '%{passdb:uid:1000}' AS a, '%{env:HOME}' AS b, '%{hostname}' AS c",
	} {
		q, err := compileQuery("q", src)
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		for _, p := range q.params {
			if len(p.Unknown()) > 0 {
				t.Errorf("%q: piece %q has unknown variables %q", src, p.String(), p.Unknown())
			}
		}
	}
}
