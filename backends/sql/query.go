package sql

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/authd-project/authd/internal/vars"
)

// How a query template becomes SQL (see the package comment for why).
//
// Dovecot expands the whole query text with values escaped by
// mysql_real_escape_string and sends the result. authd splits the template
// first, with a small MySQL lexer that knows string literals, quoted
// identifiers and comments:
//
//   - A '…' or "…" string literal whose content uses a variable becomes one
//     '?' placeholder. Its value is the content expanded with no escaping
//     at all, and the statement is prepared on the server, so no value is
//     ever parsed as SQL, whatever the sql_mode (NO_BACKSLASH_ESCAPES,
//     ANSI_QUOTES) and whatever the connection character set. This covers
//     every query in Dovecot's documentation ('%u', '%n', '%d', '%n@%d').
//   - A variable anywhere else stays in the SQL text, expanded per request
//     with an escaper for its context: inside a literal that cannot become
//     a placeholder (one with a prefix: N'…', _utf8mb4'…', X'…'), quotes are
//     doubled (correct with and without NO_BACKSLASH_ESCAPES) and
//     backslash and NUL escaped; inside a `quoted identifier` backquotes are
//     doubled; outside any quotes Dovecot's escaping is used, and a warning
//     at load time says the value is not confined (as in Dovecot). A
//     prefixed literal holding variables may not contain a backslash of
//     its own (its meaning would depend on the sql_mode), and after
//     expansion it must still be exactly one token in both modes (a width
//     such as %3u cuts after escaping and could split a doubled quote):
//     otherwise the lookup fails. FuzzCompileQuery checks that no value
//     changes the token structure of such queries.
//   - Comments are dropped, with any variable in them: a value could only
//     end the comment early (a user named "*/ OR 1=1 /*"). Executable
//     comments (/*! … */, /*M! … */) and optimizer hints (/*+ … */) are
//     SQL and are kept.
//
// The content of a converted literal is decoded as MySQL decodes literals
// without NO_BACKSLASH_ESCAPES (\n, \', '' …). That matters only for
// backslashes written by the administrator next to a variable inside one
// literal, which no query in Dovecot's documentation has.
//
// PostgreSQL and SQLite get the same treatment with their own lexers
// (dialect.go): there '…' has no backslash escapes ('' is the only escape;
// authd sets standard_conforming_strings=on on its PostgreSQL sessions so
// that this holds whatever the server's default), "…" is an identifier,
// not a string, and the placeholder is $n (PostgreSQL) or ? (SQLite).

// query is a compiled password_query, user_query or iterate_query.
type query struct {
	name   string         // the setting, for messages
	idx    int            // qPass, qUser or qIter
	dl     dialect        // whose SQL this is
	syntax vars.Syntax    // the templates' language
	src    *vars.Template // the whole template: cache keys, checks
	text   []piece        // the SQL, with a placeholder piece for each param
	isStat bool           // no piece holds a variable: the text is the same for every request
	// static caches the rendered text of a static query; it is dropped
	// when a PostgreSQL parameter gets a cast (castParam).
	static atomic.Pointer[string]
	// casts marks the PostgreSQL parameters written as $n::text because
	// the server could not infer their type (castParam).
	casts []atomic.Bool
	// isDefault: Dovecot's built-in query, named in error messages.
	isDefault bool
	params    []*vars.Template // one per '?', expanded without escaping
	// warnings found while compiling, logged once by the constructor.
	warnings []string
}

// piece is literal SQL text, a placeholder (param > 0: the param-th
// parameter), or a part with variables expanded per request with the
// escaper of its context.
type piece struct {
	lit   string
	param int
	tmpl  *vars.Template
	ctx   escContext
}

// escKind is where a variable that stays in the SQL text sits.
type escKind uint8

const (
	kBare   escKind = iota // outside quotes
	kQuoted                // inside a prefixed literal (N'…', E'…', X'…' …)
	kIdent                 // inside a quoted identifier (`…`, "…")
)

// escContext is a variable's context and how to escape for it.
type escContext struct {
	kind  escKind
	dl    dialect
	quote byte // kQuoted, kIdent: the quote character
	// bs: the literal reads backslash escapes (PostgreSQL's E'…'; MySQL's
	// depend on the sql_mode, see mysql).
	bs bool
}

// mysqlQuoted reports a MySQL literal, whose reading of backslashes
// depends on NO_BACKSLASH_ESCAPES.
func (c escContext) mysqlQuoted() bool { return c.kind == kQuoted && c.dl == dMySQL }

// intact reports whether an expanded piece of context c is still exactly
// one quoted token (for MySQL, read with and without
// NO_BACKSLASH_ESCAPES). Bare pieces are not confined by design.
func (c escContext) intact(s string) bool {
	switch {
	case c.mysqlQuoted():
		return oneToken(s, false) && oneToken(s, true)
	case c.kind == kQuoted:
		return oneToken(s, !c.bs)
	case c.kind == kIdent:
		return oneToken(s, true) // backslashes mean nothing in identifiers
	}
	return true
}

// oneToken reports whether s is a single quoted token: it opens with a
// quote that closes at its last byte, with doubled quotes inside, and
// backslash escapes unless nbe.
func oneToken(s string, nbe bool) bool {
	if len(s) < 2 {
		return false
	}
	q := s[0]
	for j := 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && !nbe && q != '`':
			j++
		case s[j] == q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j == len(s)-1
		}
	}
	return false
}

func (c escContext) escape(s string) string {
	switch {
	case c.mysqlQuoted(), c.kind == kQuoted && c.bs:
		return escapeQuoted(s, c.quote)
	case c.kind == kQuoted:
		return doubleQuote(s, c.quote)
	case c.kind == kIdent:
		return escapeIdentQ(s, c.quote)
	}
	return c.dl.escapeBare(s)
}

// lexer states.
const (
	stNormal = iota
	stSingle // '…'
	stDouble // "…"
	stBack   // `…`
	stLineComment
	stBlockComment
)

// compileQuery compiles a MySQL query template in Dovecot 2.3's
// language; compileQueryFor any dialect's.
func compileQuery(name, src string) (*query, error) { return compileQueryFor(dMySQL, name, src) }

// compileQueryFor compiles a query template of dialect dl in Dovecot 2.3's
// language.
func compileQueryFor(dl dialect, name, src string) (*query, error) {
	return compileQueryIn(dl, vars.Syntax23, name, src)
}

// compileQueryIn splits a query template (see above) written in the
// template language syntax. Malformed %-syntax, unknown variables and
// several statements are errors.
func compileQueryIn(dl dialect, syntax vars.Syntax, name, src string) (*query, error) {
	full, err := syntax.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if u := full.Unknown(); len(u) > 0 {
		// Dovecot fails every lookup that expands such a query.
		return nil, fmt.Errorf("%s: unknown variable(s) %s", name, strings.Join(u, ", "))
	}
	c := &queryCompiler{name: name, src: src, dl: dl, q: &query{name: name, dl: dl, syntax: syntax, src: full}, state: stNormal}
	if err := c.scan(); err != nil {
		return nil, err
	}
	return c.finish()
}

// queryCompiler is compileQuery's state while it scans the template.
type queryCompiler struct {
	name, src string
	dl        dialect
	q         *query
	i         int             // next byte of src
	sqlText   strings.Builder // the statement as the server will see it, for the "several statements" check
	raw       strings.Builder // raw template text of the current run outside converted literals
	state     int             // stNormal, stLineComment or stBlockComment
	depth     int             // nesting of /* comments (PostgreSQL nests them)
	// execComment is set inside /*! … */ or /*M! … */, which MySQL
	// executes.
	execComment bool
}

// flushRaw turns the pending raw text into parts of the query, escaped
// for ctx.
func (c *queryCompiler) flushRaw(ctx escContext) error {
	if c.raw.Len() == 0 {
		return nil
	}
	if err := c.q.addText(c.raw.String(), ctx); err != nil {
		return err
	}
	c.raw.Reset()
	return nil
}

func (c *queryCompiler) bare() escContext { return escContext{kind: kBare, dl: c.dl} }

// emit copies text to both the template and the statement text.
func (c *queryCompiler) emit(text string, n int) {
	c.raw.WriteString(text)
	c.sqlText.WriteString(text)
	c.i += n
}

func (c *queryCompiler) scan() error {
	for c.i < len(c.src) {
		ch := c.src[c.i]
		switch {
		case ch == '%':
			c.variable()
		case c.state == stNormal:
			if err := c.normal(ch); err != nil {
				return err
			}
		case c.state == stLineComment:
			if ch == '\n' {
				c.state = stNormal
			}
			c.i++
		case strings.HasPrefix(c.src[c.i:], "*/"): // end of a block comment
			c.i += 2
			if c.depth--; c.depth <= 0 {
				c.state = stNormal
			}
		case c.dl == dPgSQL && strings.HasPrefix(c.src[c.i:], "/*"):
			c.depth++
			c.i += 2
		default:
			c.i++
		}
	}
	if c.state == stBlockComment {
		return fmt.Errorf("%s: unterminated /* comment", c.name)
	}
	return nil
}

// variable handles a %-variable: dropped with its comment, else kept in
// the raw text.
func (c *queryCompiler) variable() {
	end := spanEnd(c.src, c.i)
	if c.state == stNormal {
		c.raw.WriteString(c.src[c.i:end])
		c.sqlText.WriteString("x")
	}
	c.i = end
}

// normal handles one byte outside literals and comments.
func (c *queryCompiler) normal(ch byte) error {
	src, i := c.src, c.i
	switch {
	case ch == '\'' || ch == '"' && c.dl == dMySQL:
		return c.literal(ch)
	case ch == '"' || ch == '`' && c.dl != dPgSQL:
		return c.identifier(ch)
	case ch == '[' && c.dl == dSQLite:
		return c.bracketIdent()
	case ch == '$' && c.dl == dPgSQL && dollarTag(src, i) != "":
		return c.dollarQuoted(dollarTag(src, i))
	case c.lineComment():
		// A comment is dropped (a blank keeps tokens apart): its
		// variables could only end it early ("*/ OR 1=1 /*"), and a final
		// "-- …" would otherwise swallow nothing but confuse the trimming
		// of a final ';'.
		c.state = stLineComment
		c.emit(" ", 1)
	case ch == '/' && strings.HasPrefix(src[i:], "/*"):
		if n := execCommentLen(src[i:]); n > 0 && c.dl == dMySQL {
			// /*! … */, /*M! … */ (executed by MariaDB) and /*+ … */
			// (optimizer hints) are SQL: kept, read as SQL.
			c.execComment = true
			c.emit(src[i:i+n], n)
			return nil
		}
		c.state, c.depth = stBlockComment, 1
		c.emit(" ", 2)
	case ch == '*' && c.execComment && strings.HasPrefix(src[i:], "*/"):
		c.execComment = false
		c.emit("*/", 2)
	default:
		c.emit(src[i:i+1], 1)
	}
	return nil
}

// lineComment reports whether a line comment starts at c.i: "-- " or "#"
// in MySQL, "--" in PostgreSQL and SQLite.
func (c *queryCompiler) lineComment() bool {
	src, i := c.src, c.i
	if !strings.HasPrefix(src[i:], "--") {
		return c.dl == dMySQL && src[i] == '#'
	}
	return c.dl != dMySQL || i+2 == len(src) || isSpaceOrCtl(src[i+2])
}

// literal handles a '…' (or MySQL "…") string literal starting at c.i.
func (c *queryCompiler) literal(quote byte) error {
	prefix := c.dl.literalPrefix(c.src[:c.i])
	end, ok := literalEnd(c.src, c.i, c.dl == dMySQL || prefix == prefixEscape)
	if !ok {
		return fmt.Errorf("%s: unterminated %c string", c.name, quote)
	}
	if c.dl == dMySQL && hasVariable(c.src[end:]) {
		// With NO_BACKSLASH_ESCAPES a backslash before a quote does not
		// escape it, and the literal ends elsewhere: what follows, values
		// escaped for their place included, would be read in another
		// context.
		if alt, _ := literalEnd(c.src, c.i, false); alt != end {
			return fmt.Errorf("%s: a MySQL string with a backslash before a quote, followed by variables, reads differently with NO_BACKSLASH_ESCAPES; double the quote ('') instead", c.name)
		}
	}
	content := c.src[c.i+1 : end-1]
	// MySQL joins adjacent literals ('%n' '@' '%d'), and PostgreSQL those
	// on separate lines; a placeholder cannot take part in that.
	prev := strings.TrimRight(c.sqlText.String(), " \t\r\n")
	if strings.HasSuffix(prev, "?") || (strings.HasSuffix(prev, "''") && hasVariable(content) && prefix == prefixNone) {
		return fmt.Errorf("%s: adjacent string literals with variables are not supported; use CONCAT()", c.name)
	}
	var err error
	switch {
	case hasVariable(content) && prefix == prefixNone:
		err = c.param(c.dl.decodeLiteral(content, quote))
	case hasVariable(content) && prefix == prefixUnicode:
		err = fmt.Errorf("%s: variables inside a U&'…' literal are not supported", c.name)
	case hasVariable(content):
		err = c.prefixedLiteral(content, quote, end, prefix == prefixEscape)
	default:
		c.raw.WriteString(c.src[c.i:end])
		c.sqlText.WriteString("''")
	}
	c.i = end
	return err
}

// param turns a plain literal holding variables into a placeholder; tmpl
// is its decoded content.
func (c *queryCompiler) param(tmpl string) error {
	if err := c.flushRaw(c.bare()); err != nil {
		return err
	}
	if err := c.q.addParam(tmpl); err != nil {
		return err
	}
	c.sqlText.WriteString("?")
	return nil
}

// prefixedLiteral keeps a prefixed literal (N'…', _charset'…', E'…')
// holding variables in the text, its values escaped. bs: the literal
// reads backslash escapes (PostgreSQL's E'…').
func (c *queryCompiler) prefixedLiteral(content string, quote byte, end int, bs bool) error {
	if (c.dl == dMySQL || bs) && literalBackslash(content) {
		// Its meaning depends on NO_BACKSLASH_ESCAPES: N'it\'s %u' leaves
		// %u outside the literal in one mode, and N'\%u' lets a value's
		// first quote escape in the other; in E'…' a template backslash
		// would combine with the value's first byte.
		return fmt.Errorf("%s: a backslash in a prefixed literal (N'…', _charset'…', E'…') that holds variables is not supported", c.name)
	}
	if err := c.flushRaw(c.bare()); err != nil {
		return err
	}
	c.raw.WriteString(c.src[c.i:end])
	if err := c.flushRaw(escContext{kind: kQuoted, dl: c.dl, quote: quote, bs: bs}); err != nil {
		return err
	}
	c.sqlText.WriteString("''")
	return nil
}

// identifier handles a quoted identifier (`…`, or "…" outside MySQL)
// starting at c.i.
func (c *queryCompiler) identifier(quote byte) error {
	end, ok := identEnd(c.src, c.i, quote)
	if !ok {
		return fmt.Errorf("%s: unterminated %c identifier", c.name, quote)
	}
	if hasVariable(c.src[c.i:end]) {
		if err := c.flushRaw(c.bare()); err != nil {
			return err
		}
		c.raw.WriteString(c.src[c.i:end])
		if err := c.flushRaw(escContext{kind: kIdent, dl: c.dl, quote: quote}); err != nil {
			return err
		}
	} else {
		c.raw.WriteString(c.src[c.i:end])
	}
	c.sqlText.WriteString("``")
	c.i = end
	return nil
}

// bracketIdent handles SQLite's [identifier], which has no escape for ']':
// a variable inside could end it, so it is refused.
func (c *queryCompiler) bracketIdent() error {
	j := c.i + 1
	for j < len(c.src) && c.src[j] != ']' {
		if c.src[j] == '%' {
			return fmt.Errorf("%s: variables inside a [...] identifier are not supported; use \"...\"", c.name)
		}
		j++
	}
	if j == len(c.src) {
		return fmt.Errorf("%s: unterminated [ identifier", c.name)
	}
	c.raw.WriteString(c.src[c.i : j+1])
	c.sqlText.WriteString("``")
	c.i = j + 1
	return nil
}

// dollarQuoted handles PostgreSQL's $tag$…$tag$ string starting at c.i:
// its content has no escapes at all, so with variables it becomes a
// placeholder as it is.
func (c *queryCompiler) dollarQuoted(tag string) error {
	start := c.i + len(tag)
	n := strings.Index(c.src[start:], tag)
	if n < 0 {
		return fmt.Errorf("%s: unterminated %s string", c.name, tag)
	}
	content, end := c.src[start:start+n], start+n+len(tag)
	if hasVariable(content) {
		if err := c.param(content); err != nil {
			return err
		}
	} else {
		c.raw.WriteString(c.src[c.i:end])
		c.sqlText.WriteString("''")
	}
	c.i = end
	return nil
}

// finish flushes the last text, checks that the query is one statement
// and notes whether it is static.
func (c *queryCompiler) finish() (*query, error) {
	q := c.q
	// A final ';' (the example in Dovecot's wiki has one) must go: a
	// prepared statement is one statement without terminator.
	rest := strings.TrimRight(c.raw.String(), " \t\r\n;")
	c.raw.Reset()
	c.raw.WriteString(rest)
	if err := c.flushRaw(c.bare()); err != nil {
		return nil, err
	}
	if err := q.checkSingle(c.sqlText.String()); err != nil {
		return nil, err
	}
	q.isStat = true
	for _, p := range q.text {
		if p.tmpl != nil {
			q.isStat = false
			break
		}
	}
	q.casts = make([]atomic.Bool, len(q.params))
	return q, nil
}

func (q *query) addText(src string, ctx escContext) error {
	t, err := q.syntax.Parse(src)
	if err != nil {
		return fmt.Errorf("%s: %w", q.name, err)
	}
	if t.Static() {
		q.appendLit(t.Expand(nil, nil))
		return nil
	}
	if ctx.kind == kBare {
		q.warnings = append(q.warnings, fmt.Sprintf("%s: %s outside quotes: the value is escaped but not confined to a string; quote it, as in '%%u'", q.name, strings.Join(variables(src), " ")))
	}
	q.text = append(q.text, piece{tmpl: t, ctx: ctx})
	return nil
}

func (q *query) appendLit(s string) {
	if n := len(q.text); n > 0 && q.text[n-1].tmpl == nil && q.text[n-1].param == 0 {
		q.text[n-1].lit += s
		return
	}
	q.text = append(q.text, piece{lit: s})
}

// addParam adds a placeholder whose value is tmpl, the decoded content of
// a literal (its %-spans as they were), expanded without escaping.
func (q *query) addParam(tmpl string) error {
	t, err := q.syntax.Parse(tmpl)
	if err != nil {
		return fmt.Errorf("%s: %w", q.name, err)
	}
	q.params = append(q.params, t)
	q.text = append(q.text, piece{param: len(q.params)})
	return nil
}

// decodeMySQL decodes the content of a MySQL literal as MySQL would,
// keeping the %-spans as they are.
func decodeMySQL(content string, quote byte) string {
	var t strings.Builder
	for i := 0; i < len(content); {
		c := content[i]
		switch {
		case c == '%':
			end := spanEnd(content, i)
			t.WriteString(content[i:end])
			i = end
			continue
		case c == quote: // doubled quote (literalEnd guarantees it)
			t.WriteByte(quote)
			i += 2
			continue
		case c == '\\' && i+1 < len(content) && content[i+1] == '%':
			// Dovecot expands first and MySQL decodes after, so this
			// backslash escapes the expansion's first byte: \%% is the
			// LIKE escape \%. Keep the backslash as text; a value is
			// never decoded.
			t.WriteByte('\\')
			i++
			continue
		case c == '\\' && i+1 < len(content):
			t.WriteString(mysqlEscape(content[i+1]))
			i += 2
			continue
		}
		t.WriteByte(c)
		i++
	}
	return t.String()
}

// mysqlEscape is what MySQL reads for a backslash followed by d.
func mysqlEscape(d byte) string {
	switch d {
	case '0':
		return "\x00"
	case 'b':
		return "\b"
	case 'n':
		return "\n"
	case 'r':
		return "\r"
	case 't':
		return "\t"
	case 'Z':
		return "\x1a"
	case '_':
		return `\_` // MySQL keeps \_ (a LIKE escape)
	}
	return string(d)
}

// decodeDoubled decodes a literal whose only escape is the doubled quote
// (PostgreSQL with standard_conforming_strings, SQLite).
func decodeDoubled(content string, quote byte) string {
	var t strings.Builder
	for i := 0; i < len(content); {
		switch c := content[i]; c {
		case '%':
			end := spanEnd(content, i)
			t.WriteString(content[i:end])
			i = end
		case quote:
			t.WriteByte(quote)
			i += 2
		default:
			t.WriteByte(c)
			i++
		}
	}
	return t.String()
}

// checkSingle refuses several statements, which Dovecot cannot run either
// (it does not set CLIENT_MULTI_STATEMENTS). sqlText has literals and
// comments blanked out.
func (q *query) checkSingle(sqlText string) error {
	body := strings.TrimRight(sqlText, " \t\r\n;")
	if strings.Contains(body, ";") {
		return fmt.Errorf("%s: several statements in one query are not supported", q.name)
	}
	return nil
}

// spanEnd returns the end of the %-expression at s[i] == '%', reading it
// as internal/vars does: % [-][0]digits [. [0][-]digits] up to ten
// modifiers, then {…} (balanced, backslash escapes) or one byte.
func spanEnd(s string, i int) int {
	i++
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i < len(s) && s[i] == '0' {
		i++
	}
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i < len(s) && s[i] == '0' {
			i++
		}
		if i < len(s) && s[i] == '-' {
			i++
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	for n := 0; n < 10 && i < len(s) && strings.IndexByte("LUEXRHNMDT", s[i]) >= 0; n++ {
		i++
	}
	if i >= len(s) {
		return len(s)
	}
	if s[i] == '{' && strings.IndexByte(s[i:], '}') >= 0 {
		depth := 1
		for j := i + 1; j < len(s); j++ {
			switch s[j] {
			case '\\':
				j++
			case '{':
				depth++
			case '}':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(s)
	}
	return i + 1
}

// literalEnd returns the index after the closing quote of the string
// literal at s[i], skipping %-spans, doubled quotes and, when bs,
// backslash escapes.
func literalEnd(s string, i int, bs bool) (int, bool) {
	q := s[i]
	for j := i + 1; j < len(s); {
		switch s[j] {
		case '%':
			j = spanEnd(s, j)
		case '\\':
			if !bs {
				j++
				continue
			}
			// A backslash escapes the next byte of the expanded text;
			// before a %-expression that is not a quote of the template.
			if j+1 < len(s) && s[j+1] == '%' {
				j++
			} else {
				j += 2
			}
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j += 2
				continue
			}
			return j + 1, true
		default:
			j++
		}
	}
	return len(s), false
}

// identEnd is literalEnd for quoted identifiers (`…`, "…": a doubled
// quote, no backslash escapes).
func identEnd(s string, i int, q byte) (int, bool) {
	for j := i + 1; j < len(s); {
		switch s[j] {
		case '%':
			j = spanEnd(s, j)
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j += 2
				continue
			}
			return j + 1, true
		default:
			j++
		}
	}
	return len(s), false
}

// variables lists the %-expressions of s other than %%.
func variables(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		if s[i] != '%' {
			i++
			continue
		}
		end := spanEnd(s, i)
		if s[i:end] != "%%" {
			out = append(out, s[i:end])
		}
		i = end
	}
	return out
}

// literalBackslash reports whether a literal's content has a backslash
// in its template text (not inside a %-expression).
func literalBackslash(content string) bool {
	for i := 0; i < len(content); {
		switch content[i] {
		case '\\':
			return true
		case '%':
			i = spanEnd(content, i)
		default:
			i++
		}
	}
	return false
}

// hasVariable reports whether s holds a %-expression other than %%.
func hasVariable(s string) bool {
	for i := 0; i < len(s); {
		if s[i] != '%' {
			i++
			continue
		}
		end := spanEnd(s, i)
		if s[i:end] != "%%" {
			return true
		}
		i = end
	}
	return false
}

// execCommentLen returns the length of the opener of a comment whose
// content is SQL (/*!, /*M!, /*+), or 0.
func execCommentLen(s string) int {
	switch {
	case strings.HasPrefix(s, "/*!"), strings.HasPrefix(s, "/*+"):
		return 3
	case strings.HasPrefix(s, "/*M!"):
		return 4
	}
	return 0
}

// hasLiteralPrefix reports whether the literal that starts right after
// before carries a prefix that makes it something else than a plain
// string, so that it cannot become a '?': a character set introducer
// (_utf8mb4'…'), N'…', X'…', B'…', or a typed literal (DATE '…').
func hasLiteralPrefix(before string) bool {
	trimmed := strings.TrimRight(before, " \t\r\n")
	j := len(trimmed)
	for j > 0 && isIdentChar(trimmed[j-1]) {
		j--
	}
	word := strings.ToLower(trimmed[j:])
	if len(trimmed) == len(before) {
		// Directly attached: N'', X'', B'', _charset''.
		if word == "n" || word == "x" || word == "b" || strings.HasPrefix(word, "_") {
			return true
		}
	}
	switch word {
	case "date", "time", "timestamp":
		return true
	}
	return false
}

func isIdentChar(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isSpaceOrCtl(c byte) bool { return c <= ' ' }

// The escapers for variables that stay in the SQL text.

// escapeBare is Dovecot's mysql_real_escape_string (without
// NO_BACKSLASH_ESCAPES): \0 \n \r \\ ' " \x1a get a backslash.
func escapeBare(s string) string {
	if !strings.ContainsAny(s, "\x00\n\r\\'\"\x1a") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 0x1a:
			b.WriteString(`\Z`)
		case '\\', '\'', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// escapeQuoted escapes for a literal quoted with q so that the value
// cannot end it in either sql_mode: the quote is doubled (MySQL reads a
// doubled quote as one with and without NO_BACKSLASH_ESCAPES), a backslash
// doubled and NUL
// written \0. With NO_BACKSLASH_ESCAPES a value holding a backslash or NUL
// then arrives changed (and does not match); it can never close the
// literal.
func escapeQuoted(s string, q byte) string {
	if strings.IndexByte(s, q) < 0 && strings.IndexByte(s, '\\') < 0 && strings.IndexByte(s, 0) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case q:
			b.WriteByte(q)
			b.WriteByte(q)
		case '\\':
			b.WriteString(`\\`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// escapeIdent doubles backquotes: inside `…` nothing else is special.
func escapeIdent(s string) string { return escapeIdentQ(s, '`') }

// escapeIdentQ escapes for an identifier quoted with q: the quote is
// doubled, and nothing else is special. A NUL cannot be part of a name;
// it is dropped so that the server reports an unknown name rather than
// the lexer ending early.
func escapeIdentQ(s string, q byte) string {
	s = strings.ReplaceAll(s, "\x00", "")
	return doubleQuote(s, q)
}

// doubleQuote doubles every q: the only escape of a literal in PostgreSQL
// (standard_conforming_strings) and SQLite, and of quoted identifiers.
func doubleQuote(s string, q byte) string {
	if strings.IndexByte(s, q) < 0 {
		return s
	}
	return strings.ReplaceAll(s, string(q), string([]byte{q, q}))
}

// errExpand marks a query expansion that Dovecot would have refused.
var errExpand = errors.New("query expansion failed")

// errUnmatchable marks a value the database cannot even receive (a NUL
// byte or invalid UTF-8 for PostgreSQL): no stored row can hold it, so
// the lookup is "not found" without asking the server.
var errUnmatchable = errors.New("value the database cannot represent")

// expand builds the SQL text and the arguments for one request.
func (q *query) expand(vc *vars.Context) (string, []any, error) {
	args := make([]any, len(q.params))
	for i, p := range q.params {
		v, err := p.ExpandChecked(vc, nil)
		if err != nil {
			return "", nil, fmt.Errorf("%w: %s: %v", errExpand, q.name, err)
		}
		if !q.dl.representable(v) {
			return "", nil, fmt.Errorf("%w: %s", errUnmatchable, q.name)
		}
		args[i] = v
	}
	if q.isStat {
		return q.staticText(), args, nil
	}
	var b strings.Builder
	for i, p := range q.text {
		if p.tmpl == nil {
			q.writePiece(&b, i)
			continue
		}
		ok := true
		v, err := p.tmpl.ExpandChecked(vc, func(s string) string {
			ok = ok && q.dl.representable(s)
			return p.ctx.escape(s)
		})
		if err != nil {
			return "", nil, fmt.Errorf("%w: %s: %v", errExpand, q.name, err)
		}
		if !ok {
			return "", nil, fmt.Errorf("%w: %s", errUnmatchable, q.name)
		}
		if !p.ctx.intact(v) {
			// Width, offset and some modifiers apply after escaping (as
			// in Dovecot) and can cut an escape in half: refuse to send
			// a literal that no longer is one.
			return "", nil, fmt.Errorf("%w: %s: a value does not fit its quoted context (width or modifier on an escaped value)", errExpand, q.name)
		}
		b.WriteString(v)
	}
	return b.String(), args, nil
}

// staticText is the text of a static query, rendered once (and again
// after castParam).
func (q *query) staticText() string {
	if p := q.static.Load(); p != nil {
		return *p
	}
	var b strings.Builder
	for i := range q.text {
		q.writePiece(&b, i)
	}
	s := b.String()
	q.static.Store(&s)
	return s
}

// writePiece writes a literal piece or a placeholder. A PostgreSQL
// placeholder is kept apart from identifier characters around it ($1AS
// would not lex as $1 AS).
func (q *query) writePiece(b *strings.Builder, i int) {
	p := q.text[i]
	if p.param == 0 {
		b.WriteString(p.lit)
		return
	}
	ph := q.dl.placeholder(p.param, q.casts[p.param-1].Load())
	if q.dl != dPgSQL {
		b.WriteString(ph)
		return
	}
	if s := b.String(); s != "" && isIdentChar(s[len(s)-1]) {
		b.WriteByte(' ')
	}
	b.WriteString(ph)
	if i+1 < len(q.text) {
		if next := q.text[i+1].lit; next != "" && isIdentChar(next[0]) {
			b.WriteByte(' ')
		}
	}
}

// castParam makes parameter n (1-based) $n::text from now on, for a
// PostgreSQL server that could not infer its type (concat('%n', …)); a
// literal in its place would have been text. It reports whether that
// changed anything.
func (q *query) castParam(n int) bool {
	if n < 1 || n > len(q.casts) || !q.casts[n-1].CompareAndSwap(false, true) {
		return false
	}
	q.static.Store(nil)
	return true
}
