package convert

import (
	"strings"

	"github.com/authd-project/authd/backends/ldap"
	"github.com/authd-project/authd/backends/oauth2"
	"github.com/authd-project/authd/internal/config"
)

// block is one passdb/userdb being converted.
type block struct {
	cv   *converter
	kind string // passdb or userdb
	src  config.DB
	out  config.DB
	at   string // where the 2.3 block is, for problems
}

// path is the printer path of a key in the block.
func (b *block) path(key string) string { return b.kind + " " + b.out.Name + "/" + key }

// set adds a driver setting by its full 2.4 name.
func (b *block) set(key, value string) {
	b.out.DriverSettings = append(b.out.DriverSettings, config.DriverSetting{Key: key, Value: value, Pos: b.src.Pos})
}

// field adds an entry of fields { }.
func (b *block) field(key, value string) {
	b.out.Fields = append(b.out.Fields, config.Field{Key: key, Value: value, Pos: b.src.Pos})
}

// db converts one block.
func (cv *converter) db(kind string, db config.DB) config.DB {
	b := &block{cv: cv, kind: kind, src: db, at: db.Pos.String()}
	b.out = config.DB{
		Name: cv.label(kind, db), Driver: db.Driver,
		Skip: db.Skip, ResultSuccess: db.ResultSuccess, ResultFailure: db.ResultFailure, ResultInternalfail: db.ResultInternalfail,
		Mechanisms: db.Mechanisms, UsernameFilter: db.UsernameFilter, Deny: db.Deny, Master: db.Master,
		AuthVerbose: db.AuthVerbose, UseCache: true, FieldsImportAll: true, Pos: db.Pos,
	}
	switch strings.ToLower(db.Driver) {
	case "passwd-file":
		b.out.DefaultPasswordScheme = "CRYPT"
		b.passwdFile()
	case "static":
		b.out.DefaultPasswordScheme = "PLAIN"
		b.static()
	case "sql":
		b.sql()
	case "ldap":
		b.ldap()
	case "pam":
		b.out.DefaultPasswordScheme = "PLAIN"
		b.pam()
	case "passwd", "prefetch":
		b.out.DefaultPasswordScheme = "CRYPT"
	case "oauth2":
		b.out.DefaultPasswordScheme = "PLAIN"
		b.oauth2()
	default:
		cv.problem(b.at, "%s { driver = %s }: %s", kind, db.Driver, noDriver24(db.Driver))
	}
	b.fields23()
	return b.out
}

// noDriver24 says what to use instead of a 2.3 driver that Dovecot 2.4
// removed (its settings table and src/auth list no such driver).
func noDriver24(driver string) string {
	switch strings.ToLower(driver) {
	case "shadow":
		return "Dovecot 2.4 has no shadow driver (use pam, or passwd-file with the shadow file's hashes)"
	case "checkpassword":
		return "Dovecot 2.4 removed the checkpassword driver (its counterpart is a lua passdb/userdb, which authd does not run)"
	case "dict":
		return "Dovecot 2.4 removed the dict passdb/userdb (use sql, ldap or lua)"
	case "vpopmail":
		return "Dovecot 2.4 removed the vpopmail driver (use sql or passwd-file with its data)"
	case "bsdauth", "imap", "lua":
		return "authd does not convert the " + driver + " driver"
	}
	return "Dovecot 2.4 has no " + driver + " driver"
}

// oauth2: the dovecot-oauth2.conf.ext that args names, as top-level
// oauth2 settings (where 2.4's OAUTHBEARER and XOAUTH2 mechanisms read
// them, and the passdb inherits them). A second oauth2 passdb must read
// the same file: 2.4's mechanisms have one set of oauth2 settings.
func (b *block) oauth2() {
	args := strings.TrimSpace(b.src.Args)
	switch {
	case b.cv.oauth2Args == args && args != "":
		return
	case b.cv.oauth2Args != "":
		b.cv.problem(b.at, "a second oauth2 passdb with its own args file: Dovecot 2.4's OAUTHBEARER and XOAUTH2 read one set of oauth2 settings")
		return
	}
	c, err := oauth2.Convert24(args)
	if err != nil {
		b.cv.problem(b.at, "%v", err)
		return
	}
	b.cv.oauth2Args = args
	b.cv.problems = append(b.cv.problems, c.Problems...)
	for _, s := range c.Settings {
		b.cv.oauth2 = append(b.cv.oauth2, config.DriverSetting{Key: s.Key, Value: s.Value, Pos: b.src.Pos})
	}
	for key, notes := range c.Notes {
		b.cv.notes[key] = append(b.cv.notes[key], prefixed(notes)...)
	}
	if b.out.Mechanisms == nil {
		b.cv.note(b.kind+" "+b.out.Name+"/mechanisms_filter", "the 2.3 block had no mechanisms: every mechanism reached it; Dovecot 2.4's oauth2 passdb does a password grant for PLAIN and LOGIN, and authd validates their password as a token")
	}
}

// fields23 turns default_fields into name:default and override_fields
// into plain fields { } entries (2.3's name:protected is 2.4's
// name:default; name:remove stays).
func (b *block) fields23() {
	for _, f := range []struct {
		list     string
		fallback bool
	}{{b.src.DefaultFields, true}, {b.src.OverrideFields, false}} {
		for _, tok := range strings.Split(f.list, " ") {
			if tok == "" {
				continue
			}
			key, value, _ := strings.Cut(tok, "=")
			name, protected := strings.CutSuffix(key, ":protected")
			if f.fallback || protected {
				name += ":default"
			}
			b.field(name, b.cv.tmpl(b.path("fields/"+name), b.at, value))
		}
	}
}

// words splits args at blanks into name=value options and the rest.
func words(args string) (opts map[string]string, rest []string) {
	opts = map[string]string{}
	for _, w := range strings.Fields(args) {
		if k, v, ok := strings.Cut(w, "="); ok && !strings.HasPrefix(w, "/") {
			opts[k] = v
			continue
		}
		rest = append(rest, w)
	}
	return opts, rest
}

// passwdFile: args = [scheme=S] [username_format=F] PATH.
func (b *block) passwdFile() {
	opts, rest := words(b.src.Args)
	for k, v := range opts {
		switch k {
		case "scheme":
			b.out.DefaultPasswordScheme = strings.ToUpper(v)
		case "username_format":
			if v != "%u" { // 2.4 looks up the block's auth_username_format, the name as it is
				b.set("auth_username_format", b.cv.tmpl(b.path("auth_username_format"), b.at, v))
			}
		default:
			b.cv.problem(b.at, "passwd-file args: %s= has no Dovecot 2.4 equivalent", k)
		}
	}
	if len(rest) != 1 {
		b.cv.problem(b.at, "passwd-file args %q: want one file", b.src.Args)
		return
	}
	b.set("passwd_file_path", b.cv.tmpl(b.path("passwd_file_path"), b.at, rest[0]))
}

// static: args are fields; the passdb's password= and the userdb's
// allow_all_users= are settings of their own in 2.4.
func (b *block) static() {
	for _, w := range strings.Fields(b.src.Args) {
		k, v, _ := strings.Cut(w, "=")
		switch {
		case b.kind == "passdb" && k == "password":
			b.set("passdb_static_password", b.cv.tmpl(b.path("passdb_static_password"), b.at, v))
		case b.kind == "userdb" && k == "allow_all_users":
			b.set("userdb_static_allow_all_users", v)
		default:
			b.field(k, b.cv.tmpl(b.path("fields/"+k), b.at, v))
		}
	}
}

// pam: args = [session=yes] [setcred=yes] [failure_show_msg=yes]
// [max_requests=N] [SERVICE] ("*" is the protocol's name).
func (b *block) pam() {
	opts, rest := words(b.src.Args)
	for k, v := range opts {
		switch k {
		case "session", "setcred", "failure_show_msg", "max_requests":
			b.set("passdb_pam_"+k, v)
		default:
			b.cv.problem(b.at, "pam args: %s= has no Dovecot 2.4 equivalent", k)
		}
	}
	switch {
	case len(rest) > 1:
		b.cv.problem(b.at, "pam args %q: more than one service name", b.src.Args)
	case len(rest) == 1 && rest[0] == "*":
		b.set("passdb_pam_service_name", "%{protocol}")
		b.cv.note(b.path("passdb_pam_service_name"), "Dovecot 2.3 wrote *")
	case len(rest) == 1:
		b.set("passdb_pam_service_name", b.cv.tmpl(b.path("passdb_pam_service_name"), b.at, rest[0]))
	}
}

// ldap: the dovecot-ldap.conf.ext that args names, in 2.4 terms; the
// block takes the settings of its kind and its fields.
func (b *block) ldap() {
	c, err := ldap.Convert24(b.src.Args)
	if err != nil {
		b.cv.problem(b.at, "%v", err)
		return
	}
	b.cv.problems = append(b.cv.problems, c.Problems...)
	b.out.DefaultPasswordScheme = strings.ToUpper(c.DefaultScheme)
	b.out.FieldsImportAll = false // 2.4's LDAP default: only fields { }
	other := map[string]string{"passdb": "userdb_", "userdb": "passdb_"}[b.kind]
	for _, s := range c.Settings {
		if !strings.HasPrefix(s.Key, other) {
			b.set(s.Key, s.Value)
		}
	}
	fields := c.UserFields
	if b.kind == "passdb" {
		fields = c.PassFields
	} else {
		for _, f := range c.IterateFields {
			b.set("userdb_ldap_iterate_fields/"+f[0], f[1])
		}
	}
	for _, f := range fields {
		b.field(f[0], f[1])
	}
	for key, notes := range c.Notes {
		if strings.HasPrefix(key, other) {
			continue
		}
		if name, ok := strings.CutPrefix(key, b.kind+"_fields/"); ok {
			key = "fields/" + name
		}
		b.cv.notes[b.path(key)] = append(b.cv.notes[b.path(key)], prefixed(notes)...)
	}
}

func prefixed(notes []string) []string {
	out := make([]string, len(notes))
	for i, n := range notes {
		out[i] = NotePrefix + n
	}
	return out
}
