package vars

import (
	"slices"
	"strconv"
	"strings"
)

// A Dovecot 2.4 template is a list of programs: runs of literal text, and
// one program per %{…} expression. An expression is a pipeline of
// statements; the first one names a variable (or, when no variable of that
// name exists, a filter called without input), each later one a filter
// that transforms the value so far. `%{x + 1}` is `%{x | calculate(+, 1)}`.

type paramKind uint8

const (
	pString paramKind = iota // 'text' or "text"
	pInt                     // a number
	pVar                     // a bare name: a variable, looked up at expansion
)

// param24 is one argument of a statement. Positional ones come first in
// their order, then the named ones sorted by name (Dovecot's order, which
// some filters depend on).
type param24 struct {
	key  string // "" for a positional argument; lower case
	idx  int    // position among the positional arguments, -1 if named
	kind paramKind
	str  string
	num  int64
}

// stmt24 is one step of a pipeline.
type stmt24 struct {
	fn     string
	params []param24
	filter *filter24 // nil: no such filter (then fn must be a variable)
	pos    int
}

// prog24 is one program: literal text, or a pipeline.
type prog24 struct {
	literal bool
	lit     string
	stmts   []stmt24
}

// tmpl24 is a parsed Dovecot 2.4 template.
type tmpl24 struct {
	progs []prog24
	// vars are the names Dovecot's parser registers as variables: the
	// first name of each pipeline (unless it is literal, lookup, if or
	// calculate) and every bare-name argument; sorted, unique.
	vars []string
}

// parse24 parses a Dovecot 2.4 template. A value without '%' is literal
// text as it stands: Dovecot's settings code does not run such values
// through the template parser.
func parse24(src string, lenient, policy bool) (*Template, error) {
	t := &Template{src: src, v24: &tmpl24{}, policy: policy}
	if !strings.Contains(src, "%") {
		if src != "" {
			t.v24.progs = []prog24{{literal: true, lit: src}}
		}
		return t, nil
	}
	p := parser24{src: src, lenient: lenient, policy: policy, t: t.v24}
	p.top()
	if p.err != nil {
		return nil, p.err
	}
	t.unknown = p.unknownNames()
	return t, nil
}

type parser24 struct {
	src     string
	lenient bool
	policy  bool
	t       *tmpl24
	lex     lexer24
	tok     token
	err     *ParseError
}

func (p *parser24) fail(pos int, msg string) {
	if p.err == nil {
		p.err = &ParseError{Template: p.src, Pos: pos, Msg: msg}
	}
}

// literal appends text to the template, merging it with a literal program
// just before (the output is the same, and literal text is never escaped).
func (p *parser24) literal(s string) {
	if s == "" {
		return
	}
	if n := len(p.t.progs); n > 0 && p.t.progs[n-1].literal {
		p.t.progs[n-1].lit += s
		return
	}
	p.t.progs = append(p.t.progs, prog24{literal: true, lit: s})
}

// top reads the template outside expressions.
func (p *parser24) top() {
	s := p.src
	for i := 0; i < len(s) && p.err == nil; {
		switch {
		case strings.HasPrefix(s[i:], "%%{"):
			p.literal("%{")
			i += 3
		case strings.HasPrefix(s[i:], "%{"):
			i = p.expression(i)
		case s[i] == '%':
			p.literal("%")
			i++
		default:
			j := strings.IndexByte(s[i:], '%')
			if j < 0 {
				j = len(s) - i
			}
			if run := s[i : i+j]; run != "y" {
				p.literal(run)
			}
			i += j
		}
	}
}

func (p *parser24) advance() { p.tok = p.lex.next() }

// expression parses `%{` filter (`|` filter)* `}` starting at s[start] and
// returns where the text goes on.
func (p *parser24) expression(start int) int {
	p.lex = lexer24{src: p.src, i: start + 2, lenient: p.lenient}
	p.advance()
	var prog prog24
	for {
		if !p.filter(&prog) {
			break
		}
		if p.tok.kind != tPipe {
			break
		}
		p.advance()
	}
	switch {
	case p.lex.err != nil:
		p.err = p.lex.err
	case p.err != nil:
	case p.tok.kind == tEOF:
		p.fail(start, "unterminated %{ (missing '}')")
	case p.tok.kind != tClose:
		p.fail(p.tok.pos, "unexpected "+tokNames[p.tok.kind]+" (expecting '|' or '}')")
	case len(prog.stmts) == 0:
		p.fail(start, "empty %{}")
	}
	if p.err == nil {
		p.t.progs = append(p.t.progs, prog)
		p.register(&prog)
	}
	return p.lex.i
}

// filter parses one pipeline step: a name with optional arguments,
// optionally followed by arithmetic. An empty step is an error (Dovecot's
// grammar allows it, but an empty step makes its parser build a broken
// program).
func (p *parser24) filter(prog *prog24) bool {
	if p.tok.kind != tName {
		if p.tok.kind == tClose && len(prog.stmts) > 0 || p.tok.kind == tPipe {
			p.fail(p.tok.pos, "empty filter in %{…}")
			return false
		}
		if p.tok.kind != tClose {
			p.fail(p.tok.pos, "unexpected "+tokNames[p.tok.kind]+" (expecting a variable or filter name)")
		}
		return false
	}
	st := stmt24{fn: p.tok.text, pos: p.tok.pos}
	p.advance()
	if p.tok.kind == tOpen {
		p.advance()
		if !p.arguments(&st) {
			return false
		}
	}
	prog.stmts = append(prog.stmts, st)
	if op, ok := operators[p.tok.kind]; ok {
		return p.math(prog, op)
	}
	return true
}

// operators maps the arithmetic tokens to calculate()'s operator numbers.
var operators = map[tokKind]int64{tPlus: 0, tMinus: 1, tStar: 2, tSlash: 3, tPerc: 4}

var operatorNames = []string{"+", "-", "*", "/", "%"}

// math parses `op number` or `op name` after a step: a calculate() step.
func (p *parser24) math(prog *prog24, op int64) bool {
	pos := p.tok.pos
	p.advance()
	st := stmt24{fn: "calculate", pos: pos}
	st.params = append(st.params, param24{idx: 0, kind: pInt, num: op})
	switch p.tok.kind {
	case tName:
		st.params = append(st.params, param24{idx: 1, kind: pVar, str: p.tok.text})
		p.advance()
	case tNumber, tMinus:
		n, ok := p.number()
		if !ok {
			return false
		}
		st.params = append(st.params, param24{idx: 1, kind: pInt, num: n})
	default:
		p.fail(p.tok.pos, "expecting a number or a variable after "+operatorNames[op])
		return false
	}
	prog.stmts = append(prog.stmts, st)
	return true
}

// number parses [-]digits into an intmax.
func (p *parser24) number() (int64, bool) {
	neg := false
	if p.tok.kind == tMinus {
		neg = true
		p.advance()
	}
	if p.tok.kind != tNumber {
		p.fail(p.tok.pos, "expecting a number")
		return 0, false
	}
	text := p.tok.text
	if neg {
		text = "-" + text
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		p.fail(p.tok.pos, "not a number (out of range)")
		return 0, false
	}
	p.advance()
	return n, true
}

// arguments parses `arg (, arg)* )` after '('.
func (p *parser24) arguments(st *stmt24) bool {
	idx := 0
	for {
		par, ok := p.argument()
		if !ok {
			return false
		}
		if par.key != "" {
			st.params = insertNamed(st.params, par)
		} else {
			par.idx = idx
			idx++
			st.params = insertPositional(st.params, par)
		}
		switch p.tok.kind {
		case tComma:
			p.advance()
		case tCloseP:
			p.advance()
			return true
		default:
			p.fail(p.tok.pos, "unexpected "+tokNames[p.tok.kind]+" (expecting ',' or ')')")
			return false
		}
	}
}

// argument parses one argument: a string, a number, a variable name, or
// `key = value`.
func (p *parser24) argument() (param24, bool) {
	switch p.tok.kind {
	case tString:
		par := param24{kind: pString, str: p.tok.text}
		p.advance()
		return par, true
	case tNumber, tMinus:
		n, ok := p.number()
		return param24{kind: pInt, num: n}, ok
	case tName:
		name := p.tok.text
		p.advance()
		if p.tok.kind != tEq {
			return param24{kind: pVar, str: name}, true
		}
		p.advance()
		v, ok := p.namedValue()
		v.key, v.idx = strings.ToLower(name), -1
		return v, ok
	}
	p.fail(p.tok.pos, "unexpected "+tokNames[p.tok.kind]+" in argument list")
	return param24{}, false
}

// namedValue parses the value of `key = value`.
func (p *parser24) namedValue() (param24, bool) {
	switch p.tok.kind {
	case tString:
		v := param24{kind: pString, str: p.tok.text}
		p.advance()
		return v, true
	case tName:
		v := param24{kind: pVar, str: p.tok.text}
		p.advance()
		return v, true
	case tNumber, tMinus:
		n, ok := p.number()
		return param24{kind: pInt, num: n}, ok
	}
	p.fail(p.tok.pos, "expecting a value after '='")
	return param24{}, false
}

// insertPositional puts a positional argument after the other positional
// ones and before the named ones.
func insertPositional(l []param24, par param24) []param24 {
	i := 0
	for i < len(l) && l[i].idx >= 0 {
		i++
	}
	return slices.Insert(l, i, par)
}

// insertNamed puts a named argument before the first named one whose key
// is not smaller (so a repeated key comes before its earlier value, as in
// Dovecot, where the earlier value then wins).
func insertNamed(l []param24, par param24) []param24 {
	i := 0
	for i < len(l) && (l[i].idx >= 0 || l[i].key < par.key) {
		i++
	}
	return slices.Insert(l, i, par)
}

// notVariables are names Dovecot's parser does not register as variables
// when they start a pipeline.
var notVariables = []string{"literal", "lookup", "if", "calculate"}

// register records the variables of a pipeline, resolves its filters and
// (when parsing strictly) rejects steps that can only fail.
func (p *parser24) register(prog *prog24) {
	for i := range prog.stmts {
		st := &prog.stmts[i]
		if i == 0 && !slices.Contains(notVariables, st.fn) {
			p.addVar(st.fn)
		}
		for _, par := range st.params {
			if par.kind == pVar {
				p.addVar(par.str)
			}
		}
		st.filter = filters24[st.fn]
		if i > 0 && st.filter == nil && !p.lenient {
			p.fail(st.pos, "unknown filter "+strconv.Quote(st.fn)+unknownFilterHint(st.fn))
			return
		}
		if st.filter != nil && st.filter.unsupported != "" && !p.lenient {
			p.fail(st.pos, st.filter.unsupported)
			return
		}
		if st.filter != nil && st.filter.check != nil && !p.lenient {
			if msg := st.filter.check(st); msg != "" {
				p.fail(st.pos, st.fn+": "+msg)
				return
			}
		}
	}
}

func (p *parser24) addVar(name string) {
	i, found := slices.BinarySearch(p.t.vars, name)
	if !found {
		p.t.vars = slices.Insert(p.t.vars, i, name)
	}
}

// unknownNames lists what expansion cannot resolve: a pipeline's first
// name that is neither a variable nor a filter, a bare-name argument that
// is no variable, and a prefix:key whose prefix no provider has (listed
// as "prefix:"). Driver providers (%{ldap:…}, %{passwd_file:…}) are listed
// too; the caller knows which one its driver offers.
func (p *parser24) unknownNames() []string {
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	check := func(name string, first bool) {
		if prefix, _, ok := strings.Cut(name, ":"); ok {
			if !builtinProviders[prefix] {
				add(prefix + ":")
			}
			return
		}
		if _, ok := lookupVar24(name, p.policy); ok {
			return
		}
		if first && filters24[name] != nil {
			return
		}
		add(name)
	}
	for _, prog := range p.t.progs {
		for i, st := range prog.stmts {
			if i == 0 {
				check(st.fn, true)
			}
			for _, par := range st.params {
				if par.kind == pVar {
					check(par.str, false)
				}
			}
		}
	}
	return out
}
