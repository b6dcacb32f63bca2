package conffile

import (
	"fmt"
	"regexp"
	"strings"
)

// logicalLine handles one complete line: `key = value`, `!include`, `}`,
// or a section header. The grammar is config-parser.c's.
func (r *reader) logicalLine(pos Pos, line string) {
	key, keyQuoted, rest := r.splitKey(line)
	if !keyQuoted && (key == KeyInclude || key == KeyIncludeTry) {
		r.include(pos, key, rest)
		return
	}
	if strings.HasPrefix(rest, "=") {
		if key == "" && !keyQuoted {
			r.errorf(pos, "missing setting name before '='")
			return
		}
		n := r.setting(key, r.trimLeft(rest[1:]), pos)
		n.KeyQuoted = keyQuoted
		r.addChild(n)
		return
	}
	if key == "}" && !keyQuoted {
		if rest != "" {
			r.errorf(pos, "unexpected text after '}'")
			return
		}
		r.closeSection(pos)
		return
	}
	if r.opts.Version >= Version24 && key == "group" && !keyQuoted && !strings.HasPrefix(rest, "{") {
		r.groupBegin(pos, rest, line)
		return
	}
	r.sectionBegin(pos, key, rest, line)
}

// splitKey cuts the key off a line: up to a blank or '='. With Version24
// a key may be quoted ("…", a backslash skipping the next byte, kept as
// written); an unterminated quote runs to the end of the line, as in
// Dovecot 2.4.
func (r *reader) splitKey(line string) (key string, quoted bool, rest string) {
	if r.opts.Version >= Version24 && strings.HasPrefix(line, `"`) {
		i := 1
		for i < len(line) && line[i] != '"' {
			if line[i] == '\\' && i+1 < len(line) {
				i++
			}
			i++
		}
		if i >= len(line) {
			return line[1:], true, ""
		}
		return line[1:i], true, r.trimLeft(line[i+1:])
	}
	i := 0
	for i < len(line) && !r.white(line[i]) && line[i] != '=' {
		i++
	}
	return line[:i], false, r.trimLeft(line[i:])
}

// setting builds the node of `key = value`.
func (r *reader) setting(key, value string, pos Pos) *Node {
	n := &Node{Key: key, Pos: pos}
	quoted := len(value) > 0 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0]
	switch {
	case !r.opts.LiteralValues && strings.HasPrefix(value, "<"):
		n.Kind = ValueFile
		n.Value = r.trimLeft(value[1:])
	case !r.opts.LiteralValues && value != "" && value[0] != '"' && value[0] != '\'' && strings.IndexByte(value, '$') >= 0:
		n.Kind = ValueVariable
		n.Value = value
	case quoted:
		n.Value, n.Quoted = Unquote(value), true
	case r.opts.LiteralValues:
		n.Value = ExpandEnv(value)
	default:
		n.Value = value
	}
	return n
}

// Unquote removes one pair of matching outer quotes and backslash escapes,
// as both Dovecot readers do: `"a" "b"` becomes `a" "b` (only the outermost
// pair goes) and `\x` becomes `x` for any x, so `\n` is the letter n
// (Dovecot's str_unescape knows no control escapes). A value that is not
// quoted is returned as it is; a lone `"` is the empty string.
func Unquote(v string) string {
	if v == "" || (v[0] != '"' && v[0] != '\'') || v[len(v)-1] != v[0] {
		return v
	}
	if len(v) == 1 {
		return ""
	}
	return Unescape(v[1 : len(v)-1])
}

// Unescape is Dovecot's str_unescape: a backslash takes the next byte
// literally; a trailing lone backslash is dropped.
func Unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (r *reader) parent() *Node {
	if n := len(r.stack); n > 0 {
		return r.stack[n-1].node
	}
	return r.root
}

func (r *reader) detached() bool { return r.detachedN > 0 }

func (r *reader) push(f frame) {
	if f.detached {
		r.detachedN++
	}
	r.stack = append(r.stack, f)
}

func (r *reader) pop() {
	if r.stack[len(r.stack)-1].detached {
		r.detachedN--
	}
	r.stack = r.stack[:len(r.stack)-1]
}

func (r *reader) addChild(n *Node) {
	p := r.parent()
	p.Children = append(p.Children, n)
}

func (r *reader) closeSection(pos Pos) {
	if len(r.stack) == 0 {
		r.errorf(pos, "unexpected '}'")
		return
	}
	r.pop()
}

// headerError reports a broken section header. A header that still opens
// a block gets a detached frame, so that one mistake does not turn every
// later '}' into another error.
func (r *reader) headerError(pos Pos, key, line, msg string) {
	r.errorf(pos, "%s", msg)
	if strings.HasSuffix(line, "{") {
		r.push(frame{node: &Node{Key: key, Section: true, Pos: pos}, detached: true})
	}
}

// sectionLabel reads the optional label of a section header: a word, or
// "…" with backslash escapes. ok is false for an unterminated quote.
func (r *reader) sectionLabel(rest string) (label string, quoted bool, after string, ok bool) {
	switch {
	case strings.HasPrefix(rest, "{"):
		return "", false, rest, true
	case strings.HasPrefix(rest, `"`):
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return "", true, rest, false
		}
		return Unescape(rest[1 : end+1]), true, r.trimLeft(rest[end+2:]), true
	}
	j := 0
	for j < len(rest) && !r.white(rest[j]) {
		j++
	}
	return rest[:j], false, r.trimLeft(rest[j:]), true
}

// sectionBegin handles `type [label] {`, and authd's one-line forms
// `type [label] { }` and `type [label] { key = value }`.
func (r *reader) sectionBegin(pos Pos, key, rest, line string) {
	if key == "" {
		r.headerError(pos, key, line, "expecting a setting or a section")
		return
	}
	label, quoted, rest, ok := r.sectionLabel(rest)
	switch {
	case !ok:
		r.headerError(pos, key, line, "expecting '{': unterminated quoted section name")
		return
	case label == "" && rest == "", !strings.Contains(line, "{"):
		r.headerError(pos, key, line, fmt.Sprintf("expecting '=' or '{' after %q", key))
		return
	case !strings.HasPrefix(rest, "{"):
		r.headerError(pos, key, line, "expecting '{' after the section name (a section has at most one name)")
		return
	}
	body, oneLine := "", rest != "{"
	if oneLine {
		// authd extension (internal/config/testdata/design-sample.conf
		// uses it). Dovecot 2.3 rejects both forms with "Garbage after
		// '{'".
		var closed bool
		body, closed = strings.CutSuffix(rest[1:], "}")
		body = r.trimRight(r.trimLeft(body))
		if !closed || body != "" && !r.isOneSetting(body) {
			r.headerError(pos, key, line, "garbage after '{' (write one setting per line, or `type { key = value }`)")
			return
		}
	}
	n := &Node{Key: key, Label: label, Quoted: quoted, Section: true, Pos: pos}
	if !r.openSection(n, line) || !oneLine {
		return
	}
	if body != "" {
		r.logicalLine(pos, body)
	}
	r.pop()
}

// openSection pushes n, as a child of the current section unless that one
// is detached. It refuses nesting deeper than MaxSectionDepth.
func (r *reader) openSection(n *Node, line string) bool {
	if r.detached() {
		r.push(frame{node: n, detached: true})
		return true
	}
	if len(r.stack) >= MaxSectionDepth {
		r.headerError(n.Pos, n.Key, line, fmt.Sprintf("sections nested more than %d deep", MaxSectionDepth))
		return false
	}
	r.addChild(n)
	r.push(frame{node: n})
	return true
}

// groupBegin handles Dovecot 2.4's `group @name label {`.
func (r *reader) groupBegin(pos Pos, rest, line string) {
	words := strings.FieldsFunc(rest, func(c rune) bool { return c < 0x80 && r.white(byte(c)) })
	switch {
	case len(words) == 0:
		r.headerError(pos, "group", line, "expecting group name")
	case len(words) != 3 || words[2] != "{":
		r.headerError(pos, "group", line, "expecting `group @name label {`")
	default:
		r.openSection(&Node{Key: words[0], Label: words[1], Group: true, Section: true, Pos: pos}, line)
	}
}

// isOneSetting reports whether s is a single `key = value`: a key without
// blanks, braces or '!', then '=', then a value that does not look like a
// second setting (`{ user = x group = y }` must not become user "x group =
// y"; values such as `uid=vmail gid=vmail` are fine).
func (r *reader) isOneSetting(s string) bool {
	i := 0
	for i < len(s) && !r.white(s[i]) && s[i] != '=' {
		if s[i] == '{' || s[i] == '}' || s[i] == '!' {
			return false
		}
		i++
	}
	rest := r.trimLeft(s[i:])
	if i == 0 || !strings.HasPrefix(rest, "=") {
		return false
	}
	return !secondSetting.MatchString(rest[1:])
}

var secondSetting = regexp.MustCompile(`[ \t][^ \t=]+[ \t]*=([ \t]|$)`)
