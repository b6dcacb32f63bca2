package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ValueKind says how a setting's Value must be read. The parser does not
// resolve `<file` or `$variable` values itself: whether a file may be read
// depends on the setting (ssl_cert = </etc/ssl/... belongs to another service
// and must not be opened), and a variable takes the value its setting has at
// that point of the file, which only the typed layer tracks.
type ValueKind int

const (
	// ValuePlain is a literal value, already unquoted.
	ValuePlain ValueKind = iota
	// ValueFile is `key = <path`: Value holds the path as written; a
	// relative path is relative to the directory of Pos.File.
	ValueFile
	// ValueVariable is a value that contains `$name` references, kept
	// verbatim for expansion in file order.
	ValueVariable
)

// Marker keys the parser puts in the tree where a file was included, so that
// the tree records every file read. They carry no setting.
const (
	KeyInclude    = "!include"
	KeyIncludeTry = "!include_try"
)

// Node is one line of a Dovecot-syntax configuration: a `key = value`
// setting, a `type [label] { ... }` section, or an include marker (Key is
// KeyInclude or KeyIncludeTry, Value is the file read).
type Node struct {
	Key      string
	Value    string
	Kind     ValueKind
	Section  bool
	Label    string
	Children []*Node
	Pos      Pos
}

// Defaults for Options; they bound what a configuration can make the parser
// do. Dovecot has no such limits, but a real configuration is nowhere near
// them.
const (
	DefaultMaxLineLength   = 64 << 10
	DefaultMaxIncludeDepth = 20
	DefaultMaxFileSize     = 16 << 20
	// maxSectionDepth bounds nesting; Dovecot's own configs nest at most 3
	// deep (service { unix_listener { } }, namespace { mailbox { } }).
	maxSectionDepth = 32
	// maxBraceExpansion bounds `{a,b}` expansion in include patterns.
	maxBraceExpansion = 256
)

// Options tune Parse. The zero value (or nil) means the defaults above and the
// real file system.
type Options struct {
	MaxLineLength   int // longest logical line, in bytes
	MaxIncludeDepth int // how deep !include may nest
	MaxFileSize     int64

	// ReadFile and Glob replace the file system, for tests and fuzzing.
	// ReadFile must refuse anything but regular files.
	ReadFile func(path string) ([]byte, error)
	Glob     func(pattern string) ([]string, error)
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.MaxLineLength <= 0 {
		r.MaxLineLength = DefaultMaxLineLength
	}
	if r.MaxIncludeDepth <= 0 {
		r.MaxIncludeDepth = DefaultMaxIncludeDepth
	}
	if r.MaxFileSize <= 0 {
		r.MaxFileSize = DefaultMaxFileSize
	}
	if r.ReadFile == nil {
		max := r.MaxFileSize
		r.ReadFile = func(path string) ([]byte, error) { return readRegularFile(path, max) }
	}
	if r.Glob == nil {
		r.Glob = filepath.Glob
	}
	return r
}

// readRegularFile reads a whole file, refusing devices and FIFOs (opening a
// FIFO would block, /dev/zero would never end) and files over max bytes.
func readRegularFile(path string, max int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: file is larger than %d bytes", path, max)
	}
	return data, nil
}

// ParseFile reads a configuration file and everything it includes.
func ParseFile(path string) (*Node, error) {
	return parseFile(path, nil)
}

func parseFile(path string, opts *Options) (*Node, error) {
	o := opts.withDefaults()
	data, err := o.ReadFile(path)
	if err != nil {
		return nil, ErrorList{{Pos: Pos{File: path}, Msg: fmt.Sprintf("can't read configuration: %v", errText(err))}}.err()
	}
	p := newParser(o)
	p.noteFile(path)
	return p.run(path, data)
}

// Parse parses data as a configuration file called name. Includes and
// relative paths are resolved against the directory of name, or against the
// working directory when name has no directory part (as Dovecot does).
//
// On syntax errors Parse returns the tree it could build together with an
// *ErrorList holding every error found, not only the first.
func Parse(name string, data []byte, opts *Options) (*Node, error) {
	p := newParser(opts.withDefaults())
	return p.run(name, data)
}

type frame struct {
	node     *Node
	detached bool // a broken section header: children are dropped
}

type parser struct {
	opts  Options
	root  *Node
	stack []frame
	// detachedN counts detached frames on the stack, so that checking
	// for one stays O(1) however deep a broken section nests.
	detachedN int
	inc       []string // absolute paths of the files being read, outermost first
	errs      ErrorList
	warns     ErrorList
	files     []string
	fileNo    map[string]int
}

func newParser(o Options) *parser {
	return &parser{opts: o, root: &Node{Section: true}, fileNo: map[string]int{}}
}

func (p *parser) run(name string, data []byte) (*Node, error) {
	if _, ok := p.fileNo[name]; !ok {
		p.fileNo[name] = len(p.fileNo)
	}
	p.parseData(name, data)
	for i := len(p.stack) - 1; i >= 0; i-- {
		p.errs.add(p.stack[i].node.Pos, "missing '}': section %s is not closed", sectionName(p.stack[i].node))
	}
	p.stack, p.detachedN = nil, 0
	return p.root, sortErrors(append(ErrorList{}, p.errs...), p.fileNo).err()
}

func (p *parser) noteFile(path string) {
	if _, ok := p.fileNo[path]; !ok {
		p.fileNo[path] = len(p.fileNo)
	}
	for _, f := range p.files {
		if f == path {
			return
		}
	}
	p.files = append(p.files, path)
}

func (p *parser) parent() *Node {
	if n := len(p.stack); n > 0 {
		return p.stack[n-1].node
	}
	return p.root
}

func (p *parser) detached() bool { return p.detachedN > 0 }

func (p *parser) push(f frame) {
	if f.detached {
		p.detachedN++
	}
	p.stack = append(p.stack, f)
}

func (p *parser) pop() {
	if p.stack[len(p.stack)-1].detached {
		p.detachedN--
	}
	p.stack = p.stack[:len(p.stack)-1]
}

func (p *parser) addChild(n *Node) {
	par := p.parent()
	par.Children = append(par.Children, n)
}

func isWhite(c byte) bool { return c == ' ' || c == '\t' }

func trimWhite(s string) string {
	return strings.TrimRight(strings.TrimLeft(s, " \t"), " \t")
}

// parseData splits one file into logical lines. The section stack is shared
// by all files, as in Dovecot: an included file continues the section it was
// included from.
func (p *parser) parseData(name string, data []byte) {
	abs := absPath(name)
	p.inc = append(p.inc, abs)
	defer func() { p.inc = p.inc[:len(p.inc)-1] }()

	var (
		cont      strings.Builder // pending `\` continuation
		contStart int
	)
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			raw, data = data, nil
		}
		raw = bytes.TrimSuffix(raw, []byte("\r"))
		pos := Pos{File: name, Line: lineNo}
		if len(raw) > p.opts.MaxLineLength {
			p.errs.add(pos, "line is too long (%d bytes, at most %d)", len(raw), p.opts.MaxLineLength)
			cont.Reset()
			continue
		}
		if bytes.IndexByte(raw, 0) >= 0 {
			p.errs.add(pos, "line contains a NUL byte")
			cont.Reset()
			continue
		}
		line := strings.TrimLeft(string(raw), " \t")

		// Blank and comment lines. Dovecot drops a pending continuation
		// here (the continued setting silently disappears); do the same,
		// but say so.
		if line == "" || line[0] == '#' {
			if cont.Len() > 0 {
				p.warns.add(Pos{File: name, Line: contStart}, "line continued with '\\' is followed by an empty or comment line and is ignored (as Dovecot does)")
				cont.Reset()
			}
			continue
		}
		line = p.stripComment(line, pos)
		line = strings.TrimRight(line, " \t")

		if strings.HasSuffix(line, "\\") {
			part := strings.TrimRight(line[:len(line)-1], " \t")
			if cont.Len() == 0 {
				contStart = lineNo
			}
			if part != "" {
				cont.WriteString(part)
				cont.WriteByte(' ')
			}
			if cont.Len() > p.opts.MaxLineLength {
				p.errs.add(Pos{File: name, Line: contStart}, "continued line is too long (at most %d bytes)", p.opts.MaxLineLength)
				cont.Reset()
			}
			continue
		}
		if cont.Len() > 0 {
			cont.WriteString(line)
			line = cont.String()
			pos.Line = contStart
			cont.Reset()
			if len(line) > p.opts.MaxLineLength {
				p.errs.add(pos, "continued line is too long (at most %d bytes)", p.opts.MaxLineLength)
				continue
			}
		}
		p.parseLine(name, line, pos)
	}
	if cont.Len() > 0 {
		p.warns.add(Pos{File: name, Line: contStart}, "line continued with '\\' at the end of the file is ignored")
	}
}

// stripComment cuts a line at the first '#' outside quotes. Inside quotes a
// backslash escapes the next byte; an unterminated quote ends the scan, so
// nothing after it is a comment (Dovecot 2.3 behaves the same way).
func (p *parser) stripComment(line string, pos Pos) string {
	for i := 0; i < len(line); i++ {
		switch c := line[i]; c {
		case '\'', '"':
			j := i + 1
			for ; j < len(line) && line[j] != c; j++ {
				if line[j] == '\\' && j+1 < len(line) {
					j++
				}
			}
			if j >= len(line) {
				return line
			}
			i = j
		case '#':
			// Dovecot treats `a#b` as a comment too but warns, because
			// a value such as a password may contain '#'.
			if i > 0 && !isWhite(line[i-1]) {
				p.warns.add(pos, "ambiguous '#' character in line, treating it as a comment (add a space before it to silence this warning)")
			}
			return line[:i]
		}
	}
	return line
}

// parseLine handles one logical line: `key = value`, `!include`, `}`, or a
// section header. The grammar follows Dovecot 2.3's config parser.
func (p *parser) parseLine(file, line string, pos Pos) {
	i := 0
	for i < len(line) && !isWhite(line[i]) && line[i] != '=' {
		i++
	}
	key, rest := line[:i], strings.TrimLeft(line[i:], " \t")

	if key == KeyInclude || key == KeyIncludeTry {
		p.include(file, key, rest, pos)
		return
	}
	if strings.HasPrefix(rest, "=") {
		if key == "" {
			p.errs.add(pos, "missing setting name before '='")
			return
		}
		p.setting(key, strings.TrimLeft(rest[1:], " \t"), pos)
		return
	}
	if key == "}" && rest == "" {
		if len(p.stack) == 0 {
			p.errs.add(pos, "unexpected '}'")
			return
		}
		p.pop()
		return
	}
	p.sectionBegin(file, key, rest, line, pos)
}

func (p *parser) setting(key, value string, pos Pos) {
	n := &Node{Key: key, Pos: pos}
	switch {
	case strings.HasPrefix(value, "<"):
		n.Kind = ValueFile
		n.Value = strings.TrimLeft(value[1:], " \t")
	case value != "" && value[0] != '"' && value[0] != '\'' && strings.IndexByte(value, '$') >= 0:
		n.Kind = ValueVariable
		n.Value = value
	default:
		n.Value = unquote(value)
	}
	p.addChild(n)
}

// unquote removes one pair of matching outer quotes and backslash escapes,
// as Dovecot does: `"a" "b"` becomes `a" "b` (only the outermost pair goes)
// and `\x` becomes `x` for any x (there is no \n or \t).
func unquote(v string) string {
	if v == "" || (v[0] != '"' && v[0] != '\'') || v[len(v)-1] != v[0] {
		return v
	}
	if len(v) == 1 {
		return ""
	}
	return unescape(v[1 : len(v)-1])
}

func unescape(s string) string {
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

func (p *parser) sectionBegin(file, key, rest, line string, pos Pos) {
	fail := func(msg string) {
		p.errs.add(pos, "%s", msg)
		// Keep braces balanced after a broken header that still opens a
		// block, so one mistake does not turn every later '}' into
		// another error.
		if strings.HasSuffix(line, "{") {
			p.push(frame{node: &Node{Key: key, Section: true, Pos: pos}, detached: true})
		}
	}
	if key == "" {
		fail("expecting a setting or a section")
		return
	}
	var label string
	switch {
	case strings.HasPrefix(rest, "{"):
	case strings.HasPrefix(rest, `"`):
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			fail("expecting '{': unterminated quoted section name")
			return
		}
		label = unescape(rest[1 : end+1])
		rest = strings.TrimLeft(rest[end+2:], " \t")
	default:
		j := 0
		for j < len(rest) && !isWhite(rest[j]) {
			j++
		}
		label, rest = rest[:j], strings.TrimLeft(rest[j:], " \t")
	}
	var oneLine string
	switch {
	case !strings.HasPrefix(rest, "{"):
		if label == "" && rest == "" {
			fail(fmt.Sprintf("expecting '=' or '{' after %q", key))
		} else {
			fail("expecting '{'")
		}
		return
	case rest != "{":
		// authd extension: `type [label] { }` and `type [label] { key =
		// value }` on one line (design.md's sample uses it). Dovecot 2.3
		// rejects both with "Garbage after '{'".
		body, ok := strings.CutSuffix(rest[1:], "}")
		body = trimWhite(body)
		if ok && body != "" && !isOneSetting(body) {
			ok = false
		}
		if !ok {
			fail("garbage after '{' (write one setting per line, or `type { key = value }`)")
			return
		}
		oneLine = body
	}
	n := &Node{Key: key, Label: label, Section: true, Pos: pos}
	if p.detached() {
		p.push(frame{node: n, detached: true})
		return
	}
	if len(p.stack) >= maxSectionDepth {
		fail(fmt.Sprintf("sections nested more than %d deep", maxSectionDepth))
		return
	}
	p.addChild(n)
	if rest != "{" {
		if oneLine != "" {
			p.push(frame{node: n})
			p.parseLine(file, oneLine, pos)
			p.pop()
		}
		return
	}
	p.push(frame{node: n})
}

// isOneSetting reports whether s is a single `key = value`: a key without
// blanks, braces or '!', then '=', then a value that does not look like a
// second setting (`{ user = x group = y }` must not become user "x group =
// y"; values such as `uid=vmail gid=vmail` are fine).
func isOneSetting(s string) bool {
	i := 0
	for i < len(s) && !isWhite(s[i]) && s[i] != '=' {
		if s[i] == '{' || s[i] == '}' || s[i] == '!' {
			return false
		}
		i++
	}
	rest := strings.TrimLeft(s[i:], " \t")
	if i == 0 || !strings.HasPrefix(rest, "=") {
		return false
	}
	return !secondSetting.MatchString(rest[1:])
}

var secondSetting = regexp.MustCompile(`[ \t][^ \t=]+[ \t]*=([ \t]|$)`)

// include reads the files matching pattern. Dovecot resolves a relative
// pattern against the including file's directory, expands globs with
// GLOB_BRACE, reads matches in sorted order, and treats `!include` without
// any match as an error and `!include_try` without any match (or with an
// unreadable match) as nothing.
func (p *parser) include(file, directive, pattern string, pos Pos) {
	try := directive == KeyIncludeTry
	if pattern == "" {
		p.errs.add(pos, "%s: missing file name", directive)
		return
	}
	pattern = relativeTo(file, pattern)
	var matches []string
	seen := map[string]bool{}
	pats, err := expandBraces(pattern)
	if err != nil {
		p.errs.add(pos, "%s %s: %v", directive, pattern, err)
		return
	}
	for _, pat := range pats {
		m, err := p.opts.Glob(pat)
		if err != nil {
			p.errs.add(pos, "%s %s: bad pattern: %v", directive, pattern, err)
			return
		}
		for _, f := range dropHidden(pat, m) {
			if !seen[f] {
				seen[f] = true
				matches = append(matches, f)
			}
		}
	}
	if len(matches) == 0 {
		if !try {
			p.errs.add(pos, "%s %s: no such file (no matches)", directive, pattern)
		}
		return
	}
	for _, f := range matches {
		if len(p.inc) >= p.opts.MaxIncludeDepth {
			p.errs.add(pos, "%s %s: includes nested more than %d deep", directive, f, p.opts.MaxIncludeDepth)
			return
		}
		abs := absPath(f)
		if recursive(p.inc, abs) {
			p.errs.add(pos, "%s %s: recursive include", directive, f)
			continue
		}
		data, err := p.opts.ReadFile(f)
		if err != nil {
			if !try {
				p.errs.add(pos, "%s %s: %v", directive, f, errText(err))
			}
			continue
		}
		p.noteFile(f)
		if !p.detached() {
			p.addChild(&Node{Key: directive, Value: f, Pos: pos})
		}
		p.parseData(f, data)
	}
}

func recursive(stack []string, abs string) bool {
	for _, s := range stack {
		if s == abs {
			return true
		}
	}
	return false
}

// relativeTo resolves path against the directory of the file that names
// it. A file name without a directory leaves path relative to the working
// directory, as Dovecot's fix_relative_path does.
func relativeTo(file, path string) string {
	if strings.HasPrefix(path, "/") {
		return path
	}
	i := strings.LastIndexByte(file, '/')
	if i < 0 {
		return path
	}
	return filepath.Clean(file[:i+1] + path)
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// dropHidden removes matches whose path components start with '.' where the
// pattern's component does not: C glob() never lets a wildcard match a
// leading dot (editor backups such as .#10-auth.conf), Go's filepath.Glob
// does.
func dropHidden(pattern string, matches []string) []string {
	pc := strings.Split(filepath.ToSlash(pattern), "/")
	out := matches[:0:0]
outer:
	for _, m := range matches {
		mc := strings.Split(filepath.ToSlash(m), "/")
		if len(mc) == len(pc) {
			for i := range mc {
				if strings.HasPrefix(mc[i], ".") && !strings.HasPrefix(pc[i], ".") {
					continue outer
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// expandBraces expands csh-style `{a,b}` alternatives (GLOB_BRACE), left
// to right, nested braces included. A '{' without a matching '}' is literal.
func expandBraces(pattern string) ([]string, error) {
	out := []string{}
	var walk func(s string) error
	walk = func(s string) error {
		if len(out) > maxBraceExpansion {
			return errors.New("too many {,} alternatives")
		}
		open, close := -1, -1
		depth := 0
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '{':
				if depth == 0 {
					open = i
				}
				depth++
			case '}':
				if depth > 0 {
					depth--
					if depth == 0 {
						close = i
					}
				}
			}
			if close >= 0 {
				break
			}
		}
		if open < 0 || close < 0 {
			out = append(out, s)
			return nil
		}
		prefix, body, suffix := s[:open], s[open+1:close], s[close+1:]
		var alts []string
		depth, start := 0, 0
		for i := 0; i < len(body); i++ {
			switch body[i] {
			case '\\':
				i++
			case '{':
				depth++
			case '}':
				depth--
			case ',':
				if depth == 0 {
					alts = append(alts, body[start:i])
					start = i + 1
				}
			}
		}
		alts = append(alts, body[start:])
		for _, a := range alts {
			if err := walk(prefix + a + suffix); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(pattern); err != nil {
		return nil, err
	}
	return out, nil
}

// errText drops Go's "open PATH:" wrapping, which repeats the path the
// message already names.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func sectionName(n *Node) string {
	if n.Label != "" {
		return n.Key + " " + n.Label
	}
	return n.Key
}
