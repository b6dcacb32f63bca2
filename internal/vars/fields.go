package vars

import (
	"fmt"
	"strings"
)

// FieldTemplate is one entry of default_fields/override_fields
// (docs/protocol.md §5.5): Key (without a :protected/:remove suffix) and the
// value template.
type FieldTemplate struct {
	Key       string
	Value     *Template // never nil; a bare key has an empty value
	Protected bool      // key:protected — set only if not already set (docs/protocol.md §2.5)
	Remove    bool      // key:remove — delete the field; Value is still expanded, as in Dovecot
}

var emptyTemplate = &Template{}

// ParseFields parses a default_fields/override_fields setting such as
// "home=/var/mail/%d/%n uid=vmail quota_rule=*:storage=1G nologin
// key:protected=v key:remove". Entries are separated by spaces (only
// spaces, as Dovecot's t_strsplit_spaces(args, " ")); a value may contain
// '=' (the key ends at the first one); a bare key means value "", a boolean
// flag. An empty key is an error (fatal in Dovecot), as is malformed
// template syntax in a value.
//
// Userdb templates in Dovecot also resolve uid=/gid= names to numbers at
// load time; that is left to the caller.
func ParseFields(s string) ([]FieldTemplate, error) {
	return parseFields(s, false)
}

// ParseOAuth2Fields is ParseFields for the oauth2 passdb's pass_attrs
// (Dovecot 2.3's db-oauth2.c): values may also use %{oauth2:NAME} and
// %{oauth2:NAME:DEFAULT} for the token's fields (Context.OAuth2), and %$
// for the token field named like the entry's key as written.
func ParseOAuth2Fields(s string) ([]FieldTemplate, error) {
	return parseFields(s, true)
}

func parseFields(s string, oauth2 bool) ([]FieldTemplate, error) {
	var out []FieldTemplate
	for _, tok := range strings.Split(s, " ") {
		if tok == "" {
			continue
		}
		key, value, hasValue := strings.Cut(tok, "=")
		if key == "" {
			return nil, fmt.Errorf("invalid template %q: key must not be empty", s)
		}
		f := FieldTemplate{Value: emptyTemplate}
		f.Key, f.Protected, f.Remove = SplitFieldKey(key)
		if hasValue {
			p := parser{src: value, oauth2: oauth2, key: key}
			t := p.template(value)
			var err error
			if p.err != nil {
				err = p.err
			}
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", key, err)
			}
			f.Value = t
		}
		out = append(out, f)
	}
	return out, nil
}

// Field parses one entry of a Dovecot 2.4 fields { } list: key (with a
// :default or :remove suffix; 2.4's :default is 2.3's :protected) and its
// template in syntax s.
func (s Syntax) Field(key, value string) (FieldTemplate, error) {
	f := FieldTemplate{Value: emptyTemplate}
	switch {
	case s == Syntax24 && len(key) > len(":default") && strings.HasSuffix(key, ":default"):
		f.Key, f.Protected = key[:len(key)-len(":default")], true
	default:
		f.Key, f.Protected, f.Remove = SplitFieldKey(key)
	}
	if f.Key == "" {
		return f, fmt.Errorf("invalid field %q: the name must not be empty", key)
	}
	if value != "" {
		t, err := s.Parse(value)
		if err != nil {
			return f, fmt.Errorf("field %s: %w", key, err)
		}
		f.Value = t
	}
	return f, nil
}

// String gives the entry back in setting syntax.
func (f FieldTemplate) String() string {
	k := f.Key
	switch {
	case f.Protected:
		k += ":protected"
	case f.Remove:
		k += ":remove"
	}
	if f.Value.src == "" {
		return k
	}
	return k + "=" + f.Value.src
}

// SplitFieldKey splits the :protected / :remove suffix off a field name
// (docs/protocol.md §2.5, docs/protocol.md §2.6). Dovecot applies it to every field it sets, from templates
// and from backends alike. A name that is only the suffix (":remove") is an
// ordinary name.
func SplitFieldKey(key string) (name string, protected, remove bool) {
	if len(key) > len(":protected") && strings.HasSuffix(key, ":protected") {
		return key[:len(key)-len(":protected")], true, false
	}
	if len(key) > len(":remove") && strings.HasSuffix(key, ":remove") {
		return key[:len(key)-len(":remove")], false, true
	}
	return key, false, false
}
