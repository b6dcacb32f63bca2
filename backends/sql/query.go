package sql

import (
	"errors"
	"fmt"
	"strings"

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

// query is a compiled password_query, user_query or iterate_query.
type query struct {
	name   string         // the setting, for messages
	syntax vars.Syntax    // the templates' language
	src    *vars.Template // the whole template: cache keys, checks
	text   []piece        // the SQL with '?' for each param
	static string         // the SQL when no piece has a variable
	isStat bool
	// isDefault: Dovecot's built-in query, named in error messages.
	isDefault bool
	params    []*vars.Template // one per '?', expanded without escaping
	// warnings found while compiling, logged once by the constructor.
	warnings []string
}

// piece is literal SQL text, or a part with variables expanded per
// request with the escaper of its context.
type piece struct {
	lit  string
	tmpl *vars.Template
	ctx  escContext
}

// escContext is where a variable that stays in the SQL text sits.
type escContext uint8

const (
	ctxBare   escContext = iota // outside quotes
	ctxSingle                   // inside a prefixed '…' literal
	ctxDouble                   // inside a prefixed "…" literal
	ctxIdent                    // inside `…`
)

// intact reports whether an expanded piece of context c is still exactly
// one quoted token, read with and without NO_BACKSLASH_ESCAPES. Bare
// pieces are not confined by design.
func (c escContext) intact(s string) bool {
	switch c {
	case ctxSingle, ctxDouble:
		return oneToken(s, false) && oneToken(s, true)
	case ctxIdent:
		return oneToken(s, true) // backslashes mean nothing in `…`
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
	switch c {
	case ctxSingle:
		return escapeQuoted(s, '\'')
	case ctxDouble:
		return escapeQuoted(s, '"')
	case ctxIdent:
		return escapeIdent(s)
	}
	return escapeBare(s)
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

// compileQuery splits a query template (see above). Malformed %-syntax,
// unknown variables and several statements are errors.
func compileQuery(syntax vars.Syntax, name, src string) (*query, error) {
	full, err := syntax.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if u := full.Unknown(); len(u) > 0 {
		// Dovecot fails every lookup that expands such a query.
		return nil, fmt.Errorf("%s: unknown variable(s) %s", name, strings.Join(u, ", "))
	}
	c := &queryCompiler{name: name, src: src, q: &query{name: name, src: full, syntax: syntax}, state: stNormal}
	if err := c.scan(); err != nil {
		return nil, err
	}
	return c.finish()
}

// queryCompiler is compileQuery's state while it scans the template.
type queryCompiler struct {
	name, src string
	q         *query
	i         int             // next byte of src
	sqlText   strings.Builder // the statement as MySQL will see it, for the "several statements" check
	raw       strings.Builder // raw template text of the current run outside converted literals
	state     int             // stNormal, stLineComment or stBlockComment
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
			c.state = stNormal
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
	case ch == '\'' || ch == '"':
		return c.literal(ch)
	case ch == '`':
		return c.identifier()
	case ch == '#' || (ch == '-' && strings.HasPrefix(src[i:], "--") && (i+2 == len(src) || isSpaceOrCtl(src[i+2]))):
		// A comment is dropped (a blank keeps tokens apart): its
		// variables could only end it early ("*/ OR 1=1 /*"), and a final
		// "-- …" would otherwise swallow nothing but confuse the trimming
		// of a final ';'.
		c.state = stLineComment
		c.emit(" ", 1)
	case ch == '/' && strings.HasPrefix(src[i:], "/*"):
		if n := execCommentLen(src[i:]); n > 0 {
			// /*! … */, /*M! … */ (executed by MariaDB) and /*+ … */
			// (optimizer hints) are SQL: kept, read as SQL.
			c.execComment = true
			c.emit(src[i:i+n], n)
			return nil
		}
		c.state = stBlockComment
		c.emit(" ", 2)
	case ch == '*' && c.execComment && strings.HasPrefix(src[i:], "*/"):
		c.execComment = false
		c.emit("*/", 2)
	default:
		c.emit(src[i:i+1], 1)
	}
	return nil
}

// literal handles a '…' or "…" string literal starting at c.i.
func (c *queryCompiler) literal(quote byte) error {
	end, ok := literalEnd(c.src, c.i)
	if !ok {
		return fmt.Errorf("%s: unterminated %c string", c.name, quote)
	}
	content := c.src[c.i+1 : end-1]
	prefixed := hasLiteralPrefix(c.src[:c.i])
	// MySQL joins adjacent literals ('%n' '@' '%d'); a '?' cannot take
	// part in that.
	prev := strings.TrimRight(c.sqlText.String(), " \t\r\n")
	if strings.HasSuffix(prev, "?") || (strings.HasSuffix(prev, "''") && hasVariable(content) && !prefixed) {
		return fmt.Errorf("%s: adjacent string literals with variables are not supported; use CONCAT()", c.name)
	}
	var err error
	switch {
	case hasVariable(content) && !prefixed:
		err = c.param(content, quote)
	case hasVariable(content):
		err = c.prefixedLiteral(content, quote, end)
	default:
		c.raw.WriteString(c.src[c.i:end])
		c.sqlText.WriteString("''")
	}
	c.i = end
	return err
}

// param turns a plain literal holding variables into a placeholder.
func (c *queryCompiler) param(content string, quote byte) error {
	if err := c.flushRaw(ctxBare); err != nil {
		return err
	}
	if err := c.q.addParam(content, quote); err != nil {
		return err
	}
	c.sqlText.WriteString("?")
	return nil
}

// prefixedLiteral keeps a prefixed literal (N'…', _charset'…') holding
// variables in the text, its values escaped.
func (c *queryCompiler) prefixedLiteral(content string, quote byte, end int) error {
	if literalBackslash(content) {
		// Its meaning depends on NO_BACKSLASH_ESCAPES: N'it\'s %u' leaves
		// %u outside the literal in one mode, and N'\%u' lets a value's
		// first quote escape in the other.
		return fmt.Errorf("%s: a backslash in a prefixed literal (N'…', _charset'…') that holds variables is not supported", c.name)
	}
	if err := c.flushRaw(ctxBare); err != nil {
		return err
	}
	c.raw.WriteString(c.src[c.i:end])
	ctx := ctxSingle
	if quote == '"' {
		ctx = ctxDouble
	}
	if err := c.flushRaw(ctx); err != nil {
		return err
	}
	c.sqlText.WriteString("''")
	return nil
}

// identifier handles a `…` quoted identifier starting at c.i.
func (c *queryCompiler) identifier() error {
	end, ok := identEnd(c.src, c.i)
	if !ok {
		return fmt.Errorf("%s: unterminated ` identifier", c.name)
	}
	if hasVariable(c.src[c.i:end]) {
		if err := c.flushRaw(ctxBare); err != nil {
			return err
		}
		c.raw.WriteString(c.src[c.i:end])
		if err := c.flushRaw(ctxIdent); err != nil {
			return err
		}
	} else {
		c.raw.WriteString(c.src[c.i:end])
	}
	c.sqlText.WriteString("``")
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
	if err := c.flushRaw(ctxBare); err != nil {
		return nil, err
	}
	if err := q.checkSingle(c.sqlText.String()); err != nil {
		return nil, err
	}
	q.isStat = true
	var b strings.Builder
	for _, p := range q.text {
		if p.tmpl != nil {
			q.isStat = false
			break
		}
		b.WriteString(p.lit)
	}
	if q.isStat {
		q.static = b.String()
	}
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
	if ctx == ctxBare {
		q.warnings = append(q.warnings, fmt.Sprintf("%s: %s outside quotes: the value is escaped but not confined to a string; quote it, as in '%%u'", q.name, strings.Join(variables(src), " ")))
	}
	q.text = append(q.text, piece{tmpl: t, ctx: ctx})
	return nil
}

func (q *query) appendLit(s string) {
	if n := len(q.text); n > 0 && q.text[n-1].tmpl == nil {
		q.text[n-1].lit += s
		return
	}
	q.text = append(q.text, piece{lit: s})
}

// addParam turns the content of a quoted literal into a '?' and its value
// template: the literal text is decoded as MySQL would, the %-spans are
// kept as they are.
func (q *query) addParam(content string, quote byte) error {
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
			d := content[i+1]
			switch d {
			case '0':
				t.WriteByte(0)
			case 'b':
				t.WriteByte('\b')
			case 'n':
				t.WriteByte('\n')
			case 'r':
				t.WriteByte('\r')
			case 't':
				t.WriteByte('\t')
			case 'Z':
				t.WriteByte(0x1a)
			case '_':
				t.WriteString(`\_`) // MySQL keeps \_ (a LIKE escape)
			default:
				t.WriteByte(d)
			}
			i += 2
			continue
		}
		t.WriteByte(c)
		i++
	}
	tmpl, err := q.syntax.Parse(t.String())
	if err != nil {
		return fmt.Errorf("%s: %w", q.name, err)
	}
	q.appendLit("?")
	q.params = append(q.params, tmpl)
	return nil
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
// literal at s[i], skipping %-spans, backslash escapes and doubled quotes.
func literalEnd(s string, i int) (int, bool) {
	q := s[i]
	for j := i + 1; j < len(s); {
		switch s[j] {
		case '%':
			j = spanEnd(s, j)
		case '\\':
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

// identEnd is literalEnd for `identifiers` (doubled backquote, no
// backslash escapes).
func identEnd(s string, i int) (int, bool) {
	for j := i + 1; j < len(s); {
		switch s[j] {
		case '%':
			j = spanEnd(s, j)
		case '`':
			if j+1 < len(s) && s[j+1] == '`' {
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
// A NUL cannot be part of a name; it is dropped so that the server
// reports an unknown table rather than the lexer ending early.
func escapeIdent(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	return strings.ReplaceAll(s, "`", "``")
}

// errExpand marks a query expansion that Dovecot would have refused.
var errExpand = errors.New("query expansion failed")

// expand builds the SQL text and the arguments for one request.
func (q *query) expand(vc *vars.Context) (string, []any, error) {
	args := make([]any, len(q.params))
	for i, p := range q.params {
		v, err := p.ExpandChecked(vc, nil)
		if err != nil {
			return "", nil, fmt.Errorf("%w: %s: %v", errExpand, q.name, err)
		}
		args[i] = v
	}
	if q.isStat {
		return q.static, args, nil
	}
	var b strings.Builder
	for _, p := range q.text {
		if p.tmpl == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := p.tmpl.ExpandChecked(vc, p.ctx.escape)
		if err != nil {
			return "", nil, fmt.Errorf("%w: %s: %v", errExpand, q.name, err)
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
