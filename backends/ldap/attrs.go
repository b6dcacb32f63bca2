package ldap

import (
	"fmt"
	"strings"

	"github.com/authd-project/authd/internal/vars"
)

// The LDAP-only template variables (%$, %{ldap:attr[:default]},
// %{ldap_dn}) are not part of the vars language. Rather than teaching vars
// about LDAP, a template is rewritten at load time: each LDAP variable
// becomes a %{passdb:KEY} reference with the same offset, width and
// modifiers, where KEY starts with a control byte that no real passdb
// field name contains. At expansion time the driver hands vars a
// FieldLookup that answers those keys from the LDAP entry and passes every
// other %{passdb:…} on to the request's own fields. Modifiers (%L$, %Lu…),
// defaults and the rest of the language then behave exactly as vars
// implements them.
const (
	markAttr   = "\x01"  // %{ldap:ATTR} → %{passdb:\x01ATTR}
	markDollar = "\x01$" // %$ ('$' never occurs in an attribute name)
	markDN     = "\x02"  // %{ldap_dn}
)

// attrField is one entry of user_attrs, pass_attrs or iterate_attrs.
type attrField struct {
	src      string         // the entry as written, for messages
	attr     string         // LDAP attribute; "" for a static =name=template
	name     string         // field name
	nameTmpl *vars.Template // set when the field name holds %variables
	tmpl     *vars.Template // nil: the attribute's values as they are
	skip     bool           // "!attr": fetched for %{ldap:attr} only
	keep     bool           // 2.4's name:default: only when no earlier entry set it
}

// attrMap is a parsed attribute list.
type attrMap struct {
	fields []attrField
	// attrs are the attribute names to request from the server: the mapped
	// attributes and every %{ldap:…} reference, each once.
	attrs []string
	// keyTemplates hold the request-variable part of every template (the
	// LDAP variables removed), for the auth cache key.
	keyTemplates []*vars.Template
}

// parseAttrs parses an attribute list as Dovecot 2.3's db_ldap_set_attrs
// does. The list is split at every ',' (a template cannot contain one,
// exactly as in Dovecot). Each entry is one of
//
//	ldapAttr               field named like the attribute
//	ldapAttr=field         the attribute's value
//	ldapAttr=field=tmpl    tmpl expanded, %$ = the attribute's value; a
//	                       tmpl without any '%' means tmpl%$ (Dovecot's
//	                       backwards-compatible prefix form)
//	=field=tmpl            a static field; tmpl may use %{ldap:attr}
//	=field                 a static field with an empty value
//	!ldapAttr              fetch the attribute for %{ldap:…} only
//
// skipName drops the field of that name (Dovecot drops "password" from
// pass_attrs when auth_bind=yes). DN-pointer forms (@field=attr,
// attr@field, %{ldap_ptr:…}) need sub-searches that authd does not do;
// they are configuration errors rather than silently wrong results.
func parseAttrs(list, skipName string) (*attrMap, error) {
	m := &attrMap{}
	seen := map[string]bool{}
	want := func(a string) {
		if a == "" {
			return
		}
		if k := strings.ToLower(a); !seen[k] {
			seen[k] = true
			m.attrs = append(m.attrs, a)
		}
	}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		f := attrField{src: item}
		var tmpl string
		hasTmpl := false
		eq := strings.IndexByte(item, '=')
		switch {
		case eq < 0:
			f.attr, f.name = item, item
		case item[0] == '@':
			return nil, fmt.Errorf("attrs entry %q: @field=attribute (DN pointer) is not supported by authd", item)
		default:
			f.attr, f.name = item[:eq], item[eq+1:]
		}
		if name, t, ok := strings.Cut(f.name, "="); ok {
			f.name, tmpl, hasTmpl = name, t, true
			if !strings.Contains(tmpl, "%") {
				tmpl += "%$"
			}
		} else if f.attr == "" {
			hasTmpl = true // "=field": static empty value
		}
		if f.name == "" {
			return nil, fmt.Errorf("attrs entry %q: empty field name", item)
		}
		if skipName != "" && f.name == skipName {
			continue
		}
		if f.name[0] == '@' {
			return nil, fmt.Errorf("attrs entry %q: @field (DN pointer) is not supported by authd", item)
		}
		if f.name[0] == '!' && eq < 0 {
			f.attr, f.name, f.skip = f.attr[1:], "", true
			if f.attr == "" {
				return nil, fmt.Errorf("attrs entry %q: empty attribute name", item)
			}
		}
		if strings.Contains(f.attr, "@") {
			return nil, fmt.Errorf("attrs entry %q: attribute@field (DN pointer) is not supported by authd", item)
		}
		if err := checkAttrName(f.attr); err != nil {
			return nil, fmt.Errorf("attrs entry %q: %w", item, err)
		}
		want(f.attr)
		if hasTmpl {
			t, refs, key, err := parseAttrTemplate(tmpl)
			if err != nil {
				return nil, fmt.Errorf("attrs entry %q: %w", item, err)
			}
			f.tmpl = t
			for _, r := range refs {
				want(r)
			}
			m.keyTemplates = append(m.keyTemplates, key)
		}
		if strings.Contains(f.name, "%") {
			t, refs, key, err := parseAttrTemplate(f.name)
			if err != nil {
				return nil, fmt.Errorf("attrs entry %q: field name: %w", item, err)
			}
			f.nameTmpl = t
			for _, r := range refs {
				want(r)
			}
			m.keyTemplates = append(m.keyTemplates, key)
		}
		m.fields = append(m.fields, f)
	}
	return m, nil
}

// checkAttrName accepts an attribute description as RFC 4512 §2.5 writes
// it (a descriptor or numeric OID, options after ';'). Anything else would
// be sent to the server verbatim and is a typo.
func checkAttrName(a string) error {
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ';' || c == '_') {
			return fmt.Errorf("invalid attribute name %q", a)
		}
	}
	return nil
}

// parseAttrTemplate rewrites the LDAP variables of an attribute template
// (see markAttr) and parses the result. It also returns the attributes the
// template refers to with %{ldap:…} and a template of its request
// variables alone, for the cache key.
func parseAttrTemplate(src string) (t *vars.Template, refs []string, key *vars.Template, err error) {
	var out, stripped strings.Builder
	for i := 0; i < len(src); {
		j := strings.IndexByte(src[i:], '%')
		if j < 0 {
			out.WriteString(src[i:])
			stripped.WriteString(src[i:])
			break
		}
		out.WriteString(src[i : i+j])
		stripped.WriteString(src[i : i+j])
		start := i + j
		k := skipVarPrefix(src, start+1)
		if k >= len(src) {
			// Let vars report the incomplete expression.
			out.WriteString(src[start:])
			break
		}
		prefix := src[start:k] // "%", offset/width and modifiers
		if src[k] == '$' {
			out.WriteString(prefix + "{passdb:" + markDollar + "}")
			i = k + 1
			continue
		}
		if src[k] != '{' {
			out.WriteString(src[start : k+1])
			stripped.WriteString(src[start : k+1])
			i = k + 1
			continue
		}
		end := braceEnd(src, k)
		if end < 0 {
			out.WriteString(src[start:])
			break
		}
		inner := src[k+1 : end]
		i = end + 1
		switch {
		case strings.HasPrefix(inner, "ldap:"):
			data := inner[len("ldap:"):]
			attr, _, _ := strings.Cut(data, ":")
			if strings.Contains(attr, "@") {
				return nil, nil, nil, fmt.Errorf("%%{ldap:%s}: attribute@field (DN pointer) is not supported by authd", attr)
			}
			if err := checkAttrName(attr); err != nil {
				return nil, nil, nil, err
			}
			if attr != "" {
				refs = append(refs, attr)
			}
			out.WriteString(prefix + "{passdb:" + markAttr + data + "}")
		case inner == "ldap_dn" || strings.HasPrefix(inner, "ldap_dn:"):
			out.WriteString(prefix + "{passdb:" + markDN + "}")
		case strings.HasPrefix(inner, "ldap_ptr:"):
			return nil, nil, nil, fmt.Errorf("%%{%s}: ldap_ptr (DN pointer) is not supported by authd", inner)
		default:
			out.WriteString(src[start:i])
			stripped.WriteString(src[start:i])
		}
	}
	t, err = vars.Parse(out.String())
	if err != nil {
		// Report positions against what the operator wrote: re-parse the
		// original text for the message when it fails too.
		if _, err2 := vars.Parse(src); err2 != nil {
			err = err2
		}
		return nil, nil, nil, err
	}
	if u := t.Unknown(); len(u) > 0 {
		return nil, nil, nil, fmt.Errorf("unknown variable %%%s", u[0])
	}
	return t, refs, vars.ParseLenient(stripped.String()), nil
}

// skipVarPrefix skips what may follow a '%' before the variable itself:
// [-][0]digits[.[0][-]digits] and modifier letters, as the vars parser
// reads them.
func skipVarPrefix(s string, i int) int {
	if i < len(s) && s[i] == '-' {
		i++
	}
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i < len(s) && s[i] == '-' {
			i++
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	for i < len(s) && strings.IndexByte("LUEXRHNMDT", s[i]) >= 0 {
		i++
	}
	return i
}

// braceEnd returns the index of the '}' matching the '{' at s[i] (nested
// braces and backslash escapes honoured, as in vars), or -1.
func braceEnd(s string, i int) int {
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

// entry is one search result: its DN and its attributes by lower-case
// name (attribute names are case-insensitive, RFC 4512 §2.5).
type entry struct {
	dn    string
	attrs map[string][]string
}

func (e *entry) get(attr string) []string {
	if e == nil || attr == "" {
		return nil
	}
	return e.attrs[strings.ToLower(attr)]
}

// entryFields answers the rewritten LDAP variables from an entry and
// passes the request's own %{passdb:…} fields through.
type entryFields struct {
	e      *entry
	dollar []string // the current field's attribute values (%$)
	next   vars.FieldLookup
	multi  func(attr string) // called when a multi-valued attribute is reduced to its first value
}

func (l *entryFields) Lookup(key string) (string, bool) {
	switch {
	case key == markDollar:
		// A static =field=…%$ has no attribute: %$ is empty.
		if len(l.dollar) == 0 {
			return "", true
		}
		return l.dollar[0], true
	case key == markDN:
		return l.e.dn, true
	case strings.HasPrefix(key, markAttr):
		attr := key[len(markAttr):]
		v := l.e.get(attr)
		if len(v) == 0 {
			return "", false // Dovecot: missing or value-less → the default
		}
		if len(v) > 1 && l.multi != nil {
			l.multi(attr)
		}
		return v[0], true
	}
	if l.next == nil {
		return "", false
	}
	return l.next.Lookup(key)
}

// ldapProvider answers Dovecot 2.4's %{ldap:attr} from the entry.
type ldapProvider struct{ l *entryFields }

func (p ldapProvider) Lookup(attr string) (string, bool) {
	if strings.EqualFold(attr, "dn") {
		return p.l.Lookup(markDN)
	}
	v, ok := p.l.Lookup(markAttr + attr)
	// 2.4 treats an empty attribute as a missing one.
	return v, ok && v != ""
}

// parseFields24 reads a Dovecot 2.4 fields { } list for LDAP: each entry
// is a field name and a 2.4 template that reads the entry with
// %{ldap:attr}. skipName drops the field of that name, as parseAttrs does.
func parseFields24(list [][2]string, skipName string) (*attrMap, error) {
	m := &attrMap{}
	seen := map[string]bool{}
	for _, kv := range list {
		f := attrField{src: kv[0] + " = " + kv[1], name: kv[0]}
		if strings.HasSuffix(f.name, ":remove") {
			return nil, fmt.Errorf("field %s: :remove is not supported in an LDAP block's fields", kv[0])
		}
		// name:default sets the field only when no earlier entry did.
		f.name, f.keep = strings.CutSuffix(f.name, ":default")
		if f.name == skipName {
			continue
		}
		t, err := vars.Syntax24.Parse(kv[1])
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", kv[0], err)
		}
		for _, u := range t.Unknown() {
			if u != "ldap:" {
				return nil, fmt.Errorf("field %s: unknown variable %s", kv[0], u)
			}
		}
		for _, a := range t.Providers("ldap") {
			if strings.EqualFold(a, "dn") {
				continue
			}
			if err := checkAttrName(a); err != nil {
				return nil, fmt.Errorf("field %s: %w", kv[0], err)
			}
			if k := strings.ToLower(a); !seen[k] {
				seen[k] = true
				m.attrs = append(m.attrs, a)
			}
		}
		f.tmpl = t
		m.keyTemplates = append(m.keyTemplates, t)
		m.fields = append(m.fields, f)
	}
	return m, nil
}

// resolve calls fn with each field's name and values, in list order.
// values is nil when the attribute is absent: Dovecot then leaves the
// field unset. A templated field always yields one value (its first
// attribute value, with a warning through multi when there were more).
func (m *attrMap) resolve(e *entry, vc *vars.Context, multi func(attr string), fn func(name string, values []string)) {
	var ctx vars.Context
	if vc != nil {
		ctx = *vc
	}
	lk := &entryFields{e: e, next: ctx.Passdb, multi: multi}
	ctx.Passdb = lk
	// Dovecot 2.4's templates read the entry as %{ldap:attr}.
	ctx.Provider, ctx.ProviderFields = "ldap", ldapProvider{lk}
	set := map[string]bool{} // names given a value so far, for name:default
	for i := range m.fields {
		f := &m.fields[i]
		if f.skip {
			continue
		}
		values := e.get(f.attr)
		if f.tmpl != nil {
			if f.attr != "" && len(values) == 0 {
				// ldapAttr=field=template with the attribute absent: no
				// field, as in Dovecot (db_ldap_result_return_value).
				values = nil
			} else {
				if len(values) > 1 && multi != nil {
					multi(f.attr)
				}
				lk.dollar = values
				v, err := f.tmpl.ExpandChecked(&ctx, nil)
				values = []string{v}
				if err != nil && f.tmpl.Syntax() == vars.Syntax24 {
					// Dovecot 2.4 fails the lookup when a field's
					// expansion fails (an absent %{ldap:attr}); authd
					// leaves the field out.
					values = nil
				}
				lk.dollar = nil
			}
		}
		name := f.name
		if f.nameTmpl != nil {
			name = f.nameTmpl.Expand(&ctx, nil)
		}
		if f.keep && set[name] {
			continue
		}
		if len(values) > 0 {
			set[name] = true
		}
		fn(name, values)
	}
}
