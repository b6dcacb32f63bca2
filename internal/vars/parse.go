package vars

import (
	"fmt"
	"strings"
)

// Limits that Dovecot does not have. They only reject configurations that
// could not be meant seriously, and keep a hostile or mistyped template from
// allocating gigabytes (zero padding) or spinning (hash rounds).
const (
	maxNumber    = 1000000 // offsets, widths, H/N moduli
	maxRounds    = 1 << 20 // hash rounds=
	maxModifiers = 10      // Dovecot's MAX_MODIFIER_COUNT
)

type nodeKind uint8

const (
	nLit     nodeKind = iota // literal text (lit)
	nVar                     // request table variable (id)
	nPercent                 // %% (a variable whose value is "%")
	nProc                    // %{hostname}, %{uid}, %{gid} (proc)
	nEnv                     // %{env:NAME} (lit = NAME)
	nField                   // %{passdb:...} / %{userdb:...} / %{oauth2:...}
	nHash                    // %{sha256:...} etc.
	nIf                      // %{if;...}
	nPolicy                  // %{hashed_password}, %{requested_username} (pv); ParsePolicy only
	nBad                     // expands to lit verbatim and fails the expansion
)

type procKind uint8

const (
	procHostname procKind = iota
	procUID
	procGID
)

// node is one piece of a parsed template.
type node struct {
	kind    nodeKind
	id      varID
	proc    procKind
	userdb  bool // nField: userdb instead of passdb
	oauth2  bool // nField: the oauth2 passdb's token fields (ParseOAuth2Fields)
	pv      policyVar
	zeroPad bool
	nmods   uint8
	mods    [maxModifiers]byte
	offset  int
	width   int
	lit     string       // nLit text; nBad output; nEnv name; nField field name
	def     string       // nField default
	err     *ExpandError // nBad: why the expansion fails
	hash    *hashSpec
	cond    *ifSpec
}

// Template is a parsed template; parse once at config load, expand per
// request.
type Template struct {
	src      string
	nodes    []node
	unknown  []string
	sizeHint int
	simple   bool // no hash or if expressions (see expandSimple)
	// v24 is set for a Dovecot 2.4 template (Syntax24); nodes is then
	// unused.
	v24    *tmpl24
	policy bool // 2.4: the auth policy variables are known
}

// ParseError describes malformed template syntax.
type ParseError struct {
	Template string
	Pos      int // byte offset of the offending '%' expression
	Msg      string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("template %q: at offset %d: %s", e.Template, e.Pos, e.Msg)
}

// Parse parses a Dovecot 2.3 template (docs/protocol.md §5.6). Malformed syntax
// is an error; unknown variable names are not (Dovecot expands them to
// UNSUPPORTED_VARIABLE_<name>), see Unknown.
func Parse(s string) (*Template, error) {
	p := parser{src: s}
	t := p.template(s)
	if p.err != nil {
		return nil, p.err
	}
	return t, nil
}

// MustParse is Parse that panics on error; for templates fixed in code.
func MustParse(s string) *Template {
	t, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return t
}

// ParseLenient parses like Dovecot 2.3 does: it never fails, and malformed
// syntax expands as Dovecot expands it (a trailing '%' vanishes, "%{"
// without '}' is the unknown variable '{', a bad hash argument expands to ""
// and fails the expansion). Use Parse for configuration; this exists for
// compatibility checks.
func ParseLenient(s string) *Template {
	p := parser{src: s, lenient: true}
	return p.template(s)
}

// ParsePolicy is Parse for auth_policy_request_attributes: Dovecot expands
// those with two more variables, %{hashed_password} and
// %{requested_username} (Context.HashedPassword, RequestedUsername).
// Everywhere else they are unknown, as in Dovecot.
func ParsePolicy(s string) (*Template, error) {
	p := parser{src: s, policy: true}
	t := p.template(s)
	if p.err != nil {
		return nil, p.err
	}
	return t, nil
}

type parser struct {
	src     string
	lenient bool
	policy  bool // the auth policy variables are known
	// oauth2: %{oauth2:NAME[:DEFAULT]} and %$ are known (the oauth2
	// passdb's pass_attrs); %$ stands for the token field named key.
	oauth2  bool
	key     string
	err     *ParseError
	unknown []string
}

func (p *parser) fail(pos int, format string, args ...any) {
	if p.err == nil && !p.lenient {
		p.err = &ParseError{Template: p.src, Pos: pos, Msg: fmt.Sprintf(format, args...)}
	}
}

func (p *parser) addUnknown(name string) {
	for _, u := range p.unknown {
		if u == name {
			return
		}
	}
	p.unknown = append(p.unknown, name)
}

func (p *parser) template(s string) *Template {
	t := p.sub(s, 0)
	t.unknown = p.unknown
	return t
}

// sub parses a nested template (hash salt, if parameters). Dovecot expands
// those with the same function, so the same syntax applies; positions are
// reported relative to the outer expression.
func (p *parser) sub(s string, pos int) *Template {
	t := &Template{src: s, simple: true}
	t.nodes = p.nodes(s, pos)
	for i := range t.nodes {
		switch t.nodes[i].kind {
		case nLit:
			t.sizeHint += len(t.nodes[i].lit)
		case nHash, nIf:
			t.simple = false
			t.sizeHint += 64
		default:
			t.sizeHint += 16
		}
	}
	return t
}

func isModifier(c byte) bool {
	switch c {
	case 'L', 'U', 'E', 'X', 'R', 'H', 'N', 'M', 'D', 'T':
		return true
	}
	return false
}

// nodes follows var_expand_with_funcs' reading of the template byte by
// byte: % [-][0]digits [. [0][-]digits] modifiers (key | {long key}).
func (p *parser) nodes(s string, base int) []node {
	var out []node
	lit := func(text string) {
		if text == "" {
			return
		}
		if n := len(out); n > 0 && out[n-1].kind == nLit {
			out[n-1].lit += text
			return
		}
		out = append(out, node{kind: nLit, lit: text})
	}
	i := 0
	for i < len(s) {
		j := strings.IndexByte(s[i:], '%')
		if j < 0 {
			lit(s[i:])
			break
		}
		lit(s[i : i+j])
		start := i + j
		i = start + 1
		var n node
		sign := 1
		if i < len(s) && s[i] == '-' {
			sign = -1
			i++
		}
		if i < len(s) && s[i] == '0' {
			n.zeroPad = true
			i++
		}
		n.width, i = p.number(s, i, base+start)
		if i < len(s) && s[i] == '.' {
			n.offset = sign * n.width
			sign = 1
			n.width = 0
			i++
			// A zero before the offset means nothing; zero padding
			// comes with the width.
			n.zeroPad = false
			if i < len(s) && s[i] == '0' {
				n.zeroPad = true
				i++
			}
			if i < len(s) && s[i] == '-' {
				sign = -1
				i++
			}
			n.width, i = p.number(s, i, base+start)
			n.width *= sign
		}
		for n.nmods < maxModifiers && i < len(s) && isModifier(s[i]) {
			n.mods[n.nmods] = s[i]
			n.nmods++
			i++
		}
		if i >= len(s) {
			// Dovecot silently drops an incomplete expression.
			p.fail(base+start, "incomplete %% expression at end of template (write %%%% for a literal %%)")
			break
		}
		if s[i] == '{' && strings.IndexByte(s[i:], '}') >= 0 {
			end, closed := braceEnd(s, i)
			key := s[i+1 : end]
			if !closed {
				p.fail(base+start, "unterminated %%{")
				p.resolveLong(&n, key, base+start)
				out = append(out, n)
				break // Dovecot reads past the end of the string here
			}
			p.resolveLong(&n, key, base+start)
			i = end + 1
		} else {
			if s[i] == '{' {
				p.fail(base+start, "unterminated %%{")
			}
			p.resolveShort(&n, s[i])
			i++
		}
		out = append(out, n)
	}
	return out
}

// number reads decimal digits like Dovecot, bounded by maxNumber.
func (p *parser) number(s string, i, pos int) (int, int) {
	v := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if v <= maxNumber {
			v = v*10 + int(s[i]-'0')
		}
		i++
	}
	if v > maxNumber {
		p.fail(pos, "number too large (limit %d)", maxNumber)
		v = maxNumber
	}
	return v, i
}

// braceEnd finds the '}' matching the '{' at s[i], honouring nested braces
// and backslash escapes. It returns the index of that '}', or len(s) and
// false if the braces never balance.
func braceEnd(s string, i int) (int, bool) {
	depth := 1
	escape := false
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		if escape {
			escape = false
			continue
		}
		switch c {
		case '\\':
			escape = true
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return j, true
			}
		}
	}
	return len(s), false
}

func (p *parser) resolveShort(n *node, c byte) {
	if id, ok := lookupShort(c); ok {
		n.kind = nVar
		n.id = id
		return
	}
	if c == '%' {
		n.kind = nPercent
		return
	}
	if c == '$' && p.oauth2 {
		n.kind, n.oauth2, n.lit = nField, true, p.key
		return
	}
	p.addUnknown(string([]byte{c}))
	n.kind = nBad
	n.lit = "UNSUPPORTED_VARIABLE_" + string([]byte{c})
	n.err = &ExpandError{Unknown: true, Msg: fmt.Sprintf("unknown variable '%%%c'", c)}
}

var hashNames = []string{"md4", "md5", "sha1", "sha256", "sha384", "sha512", "sha3-256", "sha3-512", "size", "pkcs5"}

// resolveLong resolves a %{...} key in Dovecot's order: the request table
// (exact key), the built-in process variables, then NAME:DATA forms: hash
// methods and "if" (name matched case-insensitively, up to ';'), env, and
// the passdb/userdb field functions.
func (p *parser) resolveLong(n *node, key string, pos int) {
	if id, ok := lookupLong(key); ok {
		n.kind = nVar
		n.id = id
		return
	}
	if pv, ok := lookupPolicy(key); ok && p.policy {
		n.kind, n.pv = nPolicy, pv
		return
	}
	switch key {
	case "uid":
		n.kind, n.proc = nProc, procUID
		return
	case "gid":
		n.kind, n.proc = nProc, procGID
		return
	case "hostname":
		n.kind, n.proc = nProc, procHostname
		return
	}
	name, data, _ := strings.Cut(key, ":")
	ext, _, _ := strings.Cut(name, ";")
	if strings.EqualFold(ext, "if") {
		p.parseIf(n, name, data, pos)
		return
	}
	for _, h := range hashNames {
		if strings.EqualFold(ext, h) {
			p.parseHash(n, name, data, pos)
			return
		}
	}
	switch name {
	case "env":
		n.kind = nEnv
		n.lit = data
		return
	case "passdb", "userdb", "oauth2":
		if name == "oauth2" && !p.oauth2 {
			break
		}
		n.kind = nField
		n.userdb = name == "userdb"
		n.oauth2 = name == "oauth2"
		field, def, _ := strings.Cut(data, ":")
		n.lit = field
		n.def = def
		return
	}
	p.addUnknown(name)
	n.kind = nBad
	n.lit = "UNSUPPORTED_VARIABLE_" + name
	n.err = &ExpandError{Unknown: true, Msg: fmt.Sprintf("unknown variable '%%%s'", name)}
}

// bad turns n into a failing node with empty output (what Dovecot appends
// when a function fails). unknown distinguishes Dovecot's "unknown
// variable" result (0) from an error (-1); the difference matters inside a
// hash salt, where only errors propagate.
func bad(n *node, unknown bool, msg string) {
	n.kind = nBad
	n.lit = ""
	n.err = &ExpandError{Unknown: unknown, Msg: msg}
	n.hash = nil
	n.cond = nil
}
