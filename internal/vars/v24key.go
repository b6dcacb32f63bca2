package vars

import (
	"slices"
	"strings"
)

// Cache keys of Dovecot 2.4 templates (auth-cache.c's
// auth_cache_parse_key_exclude): the request-table variables a template
// uses, once each in table order, then every passdb:/userdb: reference, in
// name order. Provider references (%{ldap:…}, %{env:…}) are left out.
// Dovecot also keeps names that are no variable at all; such a name would
// fail the key's expansion and so make every user's key the same, and the
// configuration checks reject it anyway: authd leaves it out.

// cacheKey24 returns the key as a 2.4 template text.
func cacheKey24(names []string) string {
	var seen [numAuthVars24]bool
	var extras []string
	for _, n := range names {
		prefix, _, hasPrefix := strings.Cut(n, ":")
		switch {
		case hasPrefix && prefix != "passdb" && prefix != "userdb":
		case !hasPrefix && isTableVar24(n):
			v, _ := lookupVar24(n, false)
			seen[v] = true
		case !hasPrefix:
		case !slices.Contains(extras, n):
			extras = append(extras, n)
		}
	}
	var parts []string
	for i, s := range seen {
		if s {
			parts = append(parts, "%{"+vars24[i]+"}")
		}
	}
	for _, e := range extras {
		parts = append(parts, "%{"+e+"}")
	}
	return strings.Join(parts, "\t")
}

func isTableVar24(n string) bool {
	v, ok := lookupVar24(n, false)
	return ok && v < numAuthVars24
}

// uses24 reports whether a 2.4 template reads name: a variable, a
// prefix:key reference, or any key of a provider when name is the bare
// prefix ("passdb", "env").
func (t *tmpl24) uses(name string) bool {
	for _, v := range t.vars {
		if v == name || strings.HasPrefix(v, name+":") {
			return true
		}
	}
	return false
}

// Providers lists the keys a template reads from one provider, in name
// order: the attributes of `%{ldap:mail}` for Providers("ldap"). It is
// empty for a 2.3 template.
func (t *Template) Providers(prefix string) []string {
	if t == nil || t.v24 == nil {
		return nil
	}
	var out []string
	for _, v := range t.v24.vars {
		if k, ok := strings.CutPrefix(v, prefix+":"); ok && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}
