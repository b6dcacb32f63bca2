package ldap

import (
	"testing"

	"github.com/authd-project/authd/internal/vars"
)

// FuzzParseConfig feeds arbitrary bytes to the dovecot-ldap.conf.ext
// reader and to the interpretation that follows it (templates, filters,
// DNs, attribute lists, URIs). Neither may panic; whatever builds must
// have a usable cache key. Seeds: testdata/fuzz/FuzzParseConfig.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(productionConf))
	f.Add([]byte("uris = ldapi://%2Ftmp%2Fx ldaps://[::1]:636\nbase = \"dc=a\\,b\"\nsasl_bind = yes\nsasl_mech = external\n"))
	f.Add([]byte("base = x\\\n\\\n"))
	f.Add([]byte("a {\n b {\n}\n}\n}\n#\n'\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfigBytes("fuzz.conf", data)
		if err != nil {
			return
		}
		d, errs := build(c, nil2log())
		if len(errs) > 0 {
			return
		}
		_ = d.PassCacheKey().String()
		_ = d.UserCacheKey().String()
		d.Close()
	})
}

// FuzzParseAttrs feeds arbitrary attribute lists (user_attrs, pass_attrs,
// iterate_attrs) to the parser and resolves whatever parses against an
// entry. Seeds: testdata/fuzz/FuzzParseAttrs.
func FuzzParseAttrs(f *testing.F) {
	f.Add("homeDirectory=home=/var/mail/%$,uidNumber=uid,gidNumber=gid,mail=mail")
	f.Add("=quota_rule=*:storage=%{ldap:quota:1}G,!quota,cn=%Ln=%L$")
	f.Add("=x=%{ldap_dn}%{if;%u;eq;x;a;b}%2.1M$")
	f.Fuzz(func(t *testing.T, list string) {
		m, err := parseAttrs(list, "password")
		if err != nil {
			return
		}
		vc := &vars.Context{User: "fuzz@example.org", Passdb: vars.MapFields{"a": "b"}}
		m.resolve(testEntry(), vc, func(string) {}, func(name string, values []string) {})
		_ = vars.CacheKeyOf(m.keyTemplates...).String()
	})
}
