package vars

import (
	"strings"
)

// Moving a template from Dovecot 2.3 to 2.4. Dovecot 2.4 reads 2.3's `%u`
// as the text "%u", so a 2.3 template in a 2.4 configuration silently
// stops working; Find23 finds such leftovers and Convert23 rewrites the
// common forms.

// names24 maps 2.3 variable names (short and long) to their 2.4 pipeline.
var names24 = map[string]string{
	"u": "user", "user": "user",
	"n": "user | username", "username": "user | username",
	"d": "user | domain", "domain": "user | domain",
	"s": "protocol", "service": "protocol",
	"h": "home", "home": "home",
	"l": "local_ip", "lip": "local_ip", "local_ip": "local_ip",
	"r": "remote_ip", "rip": "remote_ip", "remote_ip": "remote_ip",
	"p": "client_pid", "pid": "client_pid",
	"w": "password", "password": "password",
	"!": "id",
	"m": "mechanism", "mech": "mechanism", "mechanism": "mechanism",
	"c": "secured", "secured": "secured",
	"a": "local_port", "lport": "local_port", "local_port": "local_port",
	"b": "remote_port", "rport": "remote_port", "remote_port": "remote_port",
	"k": "cert", "cert": "cert",
	"login_user": "login_user", "login_username": "login_user | username", "login_domain": "login_user | domain",
	"session": "session", "session_pid": "session_pid",
	"real_lip": "real_local_ip", "real_rip": "real_remote_ip", "real_lport": "real_local_port",
	"real_rport": "real_remote_port", "real_local_ip": "real_local_ip", "real_remote_ip": "real_remote_ip",
	"real_local_port": "real_local_port", "real_remote_port": "real_remote_port",
	"domain_first": "domain_first", "domain_last": "domain_last", "master_user": "master_user",
	"orig_user": "original_user", "orig_username": "original_user | username", "orig_domain": "original_user | domain",
	"original_user": "original_user", "original_username": "original_user | username",
	"original_domain": "original_user | domain",
	"auth_user":       "auth_user", "auth_username": "auth_user | username", "auth_domain": "auth_user | domain",
	"local_name": "local_name", "client_id": "client_id",
	"hostname": "system:hostname", "uid": "process:uid", "gid": "process:gid",
}

// modifiers24 are the 2.3 modifiers with a 2.4 filter of the same meaning.
var modifiers24 = map[byte]string{'L': "lower", 'U': "upper", 'M': "md5", 'R': "reverse", 'D': "ldap_dn", 'X': "hex"}

// Name24 is the 2.4 pipeline for a 2.3 variable name ("n" or "username"
// gives "user | username"), or "".
func Name24(name23 string) string { return names24[name23] }

// Find23 looks for Dovecot 2.3 variable syntax in a template meant for
// 2.4: a '%' followed by 2.3's optional width and modifiers and a one-letter
// variable (`%u`, `%Lu`, `%2.1Mn`), or a `%{…}` holding 2.3's `if;` or
// `hash:field` forms. It returns the first such expression and its 2.4
// spelling when Convert23 knows one.
func Find23(src string) (expr, want string, found bool) {
	for i := 0; i < len(src); i++ {
		if src[i] != '%' {
			continue
		}
		if strings.HasPrefix(src[i:], "%{") {
			end := strings.IndexByte(src[i:], '}')
			if end < 0 {
				return "", "", false
			}
			inner := src[i+2 : i+end]
			name, data, hasColon := strings.Cut(inner, ":")
			_, isHash := hashMethods[strings.ToLower(name)]
			if strings.HasPrefix(inner, "if;") || hasColon && isHash && names24[data] != "" {
				e := src[i : i+end+1]
				w, _ := Convert23(e)
				return e, w, true
			}
			i += end
			continue
		}
		j := i + 1
		for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '-' || src[j] == '.') {
			j++
		}
		for j < len(src) && isModifier(src[j]) {
			j++
		}
		if j < len(src) && strings.IndexByte("unsdhlrpw!mcabk", src[j]) >= 0 {
			e := src[i : j+1]
			w, _ := Convert23(e)
			return e, w, true
		}
		if j < len(src) && src[j] == '%' && j == i+1 {
			i = j // 2.3's %% (a literal %), harmless here
		}
	}
	return "", "", false
}

// Convert23 rewrites a Dovecot 2.3 template into 2.4 syntax for the forms
// with a direct equivalent: variables, the L U M R D X modifiers, %% and
// %{passdb:…}, %{userdb:…}, %{env:…}. Anything else (offsets and widths,
// the H N E T modifiers, %{if;…}, hashes) is left out and ok is false.
func Convert23(src string) (out string, ok bool) {
	return convert23(ParseLenient(src))
}

// ConvertOAuth2Field23 is Convert23 for one value of the oauth2 passdb's
// pass_attrs (key is the entry's key, which 2.3's %$ names): its
// %{oauth2:NAME[:DEFAULT]} becomes 2.4's %{oauth2:NAME}, with
// default('DEFAULT') when one is given.
func ConvertOAuth2Field23(key, src string) (out string, ok bool) {
	p := parser{src: src, lenient: true, oauth2: true, key: key}
	return convert23(p.template(src))
}

func convert23(t *Template) (out string, ok bool) {
	var b strings.Builder
	ok = true
	for i := range t.nodes {
		n := &t.nodes[i]
		switch n.kind {
		case nLit:
			b.WriteString(strings.ReplaceAll(n.lit, "%{", "%%{"))
			continue
		case nPercent:
			b.WriteByte('%')
			continue
		}
		pipe, good := convertNode(n)
		if !good {
			ok = false
			continue
		}
		b.WriteString("%{" + pipe + "}")
	}
	return b.String(), ok
}

func convertNode(n *node) (string, bool) {
	var pipe string
	switch n.kind {
	case nVar:
		d := &varTable[n.id]
		name := d.long
		if name == "" {
			name = string(d.short)
		}
		pipe = names24[name]
	case nProc:
		pipe = map[procKind]string{procHostname: "system:hostname", procUID: "process:uid", procGID: "process:gid"}[n.proc]
	case nEnv:
		pipe = "env:" + n.lit
	case nField:
		pipe = "passdb:" + n.lit
		switch {
		case n.oauth2:
			pipe = "oauth2:" + n.lit
		case n.userdb:
			pipe = "userdb:" + n.lit
		}
		if n.def != "" {
			pipe += " | default('" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(n.def) + "')"
		}
	}
	if pipe == "" || n.offset != 0 || n.width != 0 {
		return "", false
	}
	for i, m := range n.mods[:n.nmods] {
		f, ok := modifiers24[m]
		// 2.3's M gives hex text, 2.4's md5 binary: only last is the same.
		if !ok || m == 'M' && i != int(n.nmods)-1 {
			return "", false
		}
		pipe += " | " + f
	}
	return pipe, true
}
