package vars

import "fmt"

// Syntax is the template language of a configuration: Dovecot 2.3's `%u`,
// `%Lu`, `%{if;…}` or Dovecot 2.4's `%{user | lower}` pipelines. The same
// text means different things in the two (`%u` is a variable in 2.3 and
// the literal text "%u" in 2.4), so every template is parsed in the syntax
// of the configuration it comes from; a *Template then expands the same
// way whatever its syntax.
type Syntax uint8

const (
	// Syntax23 is Dovecot 2.3's variable language (docs/protocol.md §5.6),
	// the zero value.
	Syntax23 Syntax = iota
	// Syntax24 is Dovecot 2.4's (lib-var-expand): `%{name | filter(args) |
	// …}` expressions between literal text.
	Syntax24
)

func (s Syntax) String() string {
	if s == Syntax24 {
		return "2.4"
	}
	return "2.3"
}

// Parse parses a template in syntax s. Malformed syntax is an error. In
// 2.3, unknown variables are not (see Template.Unknown); in 2.4 an unknown
// filter is, and Unknown lists the unknown variables and providers.
func (s Syntax) Parse(src string) (*Template, error) {
	if s == Syntax24 {
		return parse24(src, false, false)
	}
	return Parse(src)
}

// ParseLenient parses like the Dovecot version does at run time: it never
// fails on what Dovecot accepts; what Dovecot only rejects when expanding
// (a 2.4 filter that does not exist) fails the expansion instead. A
// template Dovecot 2.4 cannot parse at all still returns an error.
func (s Syntax) ParseLenient(src string) (*Template, error) {
	if s == Syntax24 {
		return parse24(src, true, false)
	}
	return ParseLenient(src), nil
}

// ParsePolicy is Parse for auth_policy_request_attributes values, which
// know the auth policy's own variables (see ParsePolicy).
func (s Syntax) ParsePolicy(src string) (*Template, error) {
	if s == Syntax24 {
		return parse24(src, false, true)
	}
	return ParsePolicy(src)
}

// MustParse is Parse that panics on error; for templates fixed in code.
func (s Syntax) MustParse(src string) *Template {
	t, err := s.Parse(src)
	if err != nil {
		panic(fmt.Sprintf("vars: %v", err))
	}
	return t
}

// Syntax reports the language t was parsed in.
func (t *Template) Syntax() Syntax {
	if t != nil && t.v24 != nil {
		return Syntax24
	}
	return Syntax23
}
