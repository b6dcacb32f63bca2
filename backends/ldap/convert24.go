package ldap

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/authd-project/authd/internal/vars"
)

// Conversion24 is a dovecot-ldap.conf.ext (Dovecot 2.3) in Dovecot 2.4's
// terms, for authd convert: the settings by their 2.4 names, the fields
// { } that replace pass_attrs/user_attrs/iterate_attrs, what changed
// meaning on the way (Notes, by 2.4 name, fields as "passdb_fields/NAME",
// "userdb_fields/NAME" or "userdb_ldap_iterate_fields/NAME") and what has
// no 2.4 equivalent (Problems, each "file:line: …").
type Conversion24 struct {
	Settings                              []Setting // Origin is file:line, or "" for a 2.3 default written out
	DefaultScheme                         string
	PassFields, UserFields, IterateFields [][2]string
	Notes                                 map[string][]string
	Problems                              []string
}

// convert24Keys maps the 2.3 settings with a plain 2.4 counterpart.
var convert24Keys = map[string]string{
	"uris": "ldap_uris", "dn": "ldap_auth_dn", "dnpass": "ldap_auth_dn_password",
	"sasl_realm": "ldap_auth_sasl_realm", "sasl_authz_id": "ldap_auth_sasl_authz_id",
	"deref": "ldap_deref", "scope": "ldap_scope", "base": "ldap_base", "debug_level": "ldap_debug_level",
	"auth_bind_userdn": "passdb_ldap_bind_userdn",
	"pass_filter":      "passdb_ldap_filter", "user_filter": "userdb_ldap_filter", "iterate_filter": "userdb_ldap_iterate_filter",
	"tls_ca_cert_file": "ssl_client_ca_file", "tls_ca_cert_dir": "ssl_client_ca_dir",
	"tls_cert_file": "ssl_client_cert_file", "tls_key_file": "ssl_client_key_file",
}

// convertTemplates are the 2.3 settings that hold templates.
var convertTemplates = map[string]bool{"base": true, "auth_bind_userdn": true, "pass_filter": true, "user_filter": true, "iterate_filter": true}

// writtenDefaults are 2.3 defaults that 2.4 does not have (its filters and
// fields are empty): a file that relied on them gets them written out.
var writtenDefaults = map[string]bool{"pass_filter": true, "user_filter": true, "iterate_filter": true}

// Convert24 reads a 2.3 dovecot-ldap.conf.ext and returns it in 2.4 terms.
// The error is for a file that cannot be read or does not load in 2.3;
// what has no 2.4 equivalent is in Problems.
func Convert24(path string) (*Conversion24, error) {
	c, err := parseConfig(path)
	if c == nil {
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	cv := &Conversion24{Notes: map[string][]string{}, DefaultScheme: c.defaultPassScheme}
	cv.settings(c)
	pass := c.passAttrs
	skip := ""
	if c.authBind {
		skip = "password" // Dovecot 2.3 drops it with auth_bind = yes
	}
	cv.PassFields = cv.fields(c, "pass_attrs", "passdb_fields", pass, skip)
	cv.UserFields = cv.fields(c, "user_attrs", "userdb_fields", c.userAttrs, "")
	cv.IterateFields = cv.fields(c, "iterate_attrs", "userdb_ldap_iterate_fields", c.iterateAttrs, "")
	return cv, nil
}

func (cv *Conversion24) problem(c *config, key, format string, args ...any) {
	at := c.pos[key]
	if at == "" {
		at = c.path
	}
	cv.Problems = append(cv.Problems, at+": "+key+": "+fmt.Sprintf(format, args...))
}

// settings converts the plain settings.
func (cv *Conversion24) settings(c *config) {
	set := func(key23, key24, value string) {
		cv.Settings = append(cv.Settings, Setting{Key: key24, Value: value, Origin: c.pos[key23]})
		if c.pos[key23] == "" && writtenDefaults[key23] {
			cv.Notes[key24] = append(cv.Notes[key24], "Dovecot 2.3's default "+key23+", written out: 2.4 has none")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		v := settings[k]
		value := c.value(k, v)
		k24, plain := convert24Keys[k]
		switch {
		case c.pos[k] == "" && !writtenDefaults[k]:
			// Not in the file: 2.3's default, which is 2.4's too.
		case plain && convertTemplates[k]:
			if out, ok := cv.template(c, k, value); ok {
				set(k, k24, out)
			}
		case plain:
			set(k, k24, value)
		default:
			cv.special(c, k, value)
		}
	}
}

// special converts the settings without a one-to-one counterpart.
func (cv *Conversion24) special(c *config, k, value string) {
	add := func(key, v string) {
		cv.Settings = append(cv.Settings, Setting{Key: key, Value: v, Origin: c.pos[k]})
	}
	switch k {
	case "hosts":
		var uris []string
		for _, h := range strings.Fields(value) {
			uris = append(uris, "ldap://"+h)
		}
		add("ldap_uris", strings.Join(uris, " "))
		cv.Notes["ldap_uris"] = append(cv.Notes["ldap_uris"], "from hosts = "+value+" (2.4 has only URIs)")
	case "auth_bind":
		add("passdb_ldap_bind", value)
	case "tls":
		add("ldap_starttls", value)
	case "tls_require_cert":
		v := "yes"
		if l := strings.ToLower(value); l == "never" || l == "allow" {
			v = "no"
		}
		add("ssl_client_require_valid_cert", v)
		cv.Notes["ssl_client_require_valid_cert"] = append(cv.Notes["ssl_client_require_valid_cert"], "from tls_require_cert = "+value)
	case "sasl_bind", "sasl_mech":
		if c.saslBind && k == "sasl_mech" {
			for _, m := range strings.Fields(strings.ReplaceAll(c.saslMech, ",", " ")) {
				add("ldap_auth_sasl_mechanisms/"+m, "yes")
			}
		}
	case "ldap_version":
		add("ldap_version", value)
	case "blocking", "userdb_warning_disable":
		// Dovecot 2.4 dropped them; they change nothing in authd.
	case "pass_attrs", "user_attrs", "iterate_attrs", "default_pass_scheme":
		// fields and default_password_scheme, see Convert24
	default:
		cv.problem(c, k, "has no Dovecot 2.4 equivalent")
	}
}

// value is the setting's value as text.
func (c *config) value(key string, s setting) string {
	switch s.kind {
	case kBool:
		if *s.bool(c) {
			return "yes"
		}
		return "no"
	case kInt:
		return fmt.Sprint(*s.int(c))
	case kDuration:
		return s.dur(c).String()
	}
	return *s.str(c)
}

// template converts a 2.3 template; what cannot be converted is a problem.
func (cv *Conversion24) template(c *config, key, src string) (string, bool) {
	out, ok := convertAttrTemplate(src)
	if !ok {
		cv.problem(c, key, "template %q has no Dovecot 2.4 equivalent (offsets, widths, %%{if;…}, hashes or the H N E T modifiers)", src)
		return "", false
	}
	if out != src {
		k24 := convert24Keys[key]
		cv.Notes[k24] = append(cv.Notes[k24], "Dovecot 2.3 wrote "+src)
	}
	return out, true
}

// fields turns an attribute list into 2.4 fields: ldapAttr=field becomes
// field = %{ldap:ldapAttr}, a template reads %{ldap:…} as before and %$
// becomes the attribute. noteKey prefixes the Notes of each field.
func (cv *Conversion24) fields(c *config, key, noteKey, list, skip string) [][2]string {
	if _, err := parseAttrs(list, skip); err != nil {
		cv.problem(c, key, "%v", err)
		return nil
	}
	var out [][2]string
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" || item[0] == '!' {
			continue // !attr only fetched the attribute; 2.4 fetches what fields read
		}
		attr, rest, _ := strings.Cut(item, "=")
		name, tmpl, hasTmpl := strings.Cut(rest, "=")
		switch {
		case rest == "":
			name, tmpl = attr, "%{ldap:"+attr+"}"
		case !hasTmpl && attr == "":
			tmpl = ""
		case !hasTmpl:
			tmpl = "%{ldap:" + attr + "}"
		case attr != "" && !strings.Contains(tmpl, "%"):
			tmpl += "%$" // 2.3's prefix form: the text, then the value
		}
		if name == skip {
			continue
		}
		if strings.Contains(name, "%") {
			cv.problem(c, key, "entry %q: a field name with variables has no Dovecot 2.4 equivalent", item)
			continue
		}
		v, ok := convertAttrTemplate(strings.ReplaceAll(tmpl, "%$", "%{ldap:"+attr+"}"))
		if !ok {
			cv.problem(c, key, "entry %q: the template has no Dovecot 2.4 equivalent", item)
			continue
		}
		out = append(out, [2]string{name, v})
	}
	if c.pos[key] == "" && len(out) > 0 {
		cv.Notes[noteKey+"/"+out[0][0]] = []string{"Dovecot 2.3's default " + key + " (" + list + "), written out: 2.4 has none"}
	}
	return out
}

// convertAttrTemplate converts a 2.3 template that may hold
// %{ldap:attr} or %{ldap:attr:default} (kept, as 2.4 writes them) around
// request variables (vars.Convert23).
func convertAttrTemplate(src string) (string, bool) {
	var b strings.Builder
	for {
		i := strings.Index(src, "%{ldap:")
		if i < 0 {
			break
		}
		end := strings.IndexByte(src[i:], '}')
		if end < 0 {
			return "", false
		}
		head, ok := vars.Convert23(src[:i])
		if !ok {
			return "", false
		}
		b.WriteString(head)
		attr, def, hasDef := strings.Cut(src[i+len("%{ldap:"):i+end], ":")
		if hasDef {
			b.WriteString("%{ldap:" + attr + " | default('" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(def) + "')}")
		} else {
			b.WriteString("%{ldap:" + attr + "}")
		}
		src = src[i+end+1:]
	}
	tail, ok := vars.Convert23(src)
	if !ok {
		return "", false
	}
	b.WriteString(tail)
	return b.String(), true
}
