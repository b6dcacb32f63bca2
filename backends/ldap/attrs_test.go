package ldap

import (
	"strings"
	"testing"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
)

func testEntry() *entry {
	return &entry{dn: "uid=jo,ou=people,dc=example,dc=org", attrs: map[string][]string{
		"homedirectory": {"example.org/jo"},
		"uidnumber":     {"1000"},
		"gidnumber":     {"1000"},
		"mail":          {"jo@example.org", "joe@example.org"},
		"authdgroup":    {"100", "200", "300"},
		"userpassword":  {"{SSHA}abc"},
		"quota":         {"5"},
		"empty":         {""},
		"cn":            {"Jo X"},
	}}
}

func resolveAll(t *testing.T, list string, vc *vars.Context) (map[string][]string, []string, []string) {
	t.Helper()
	m, err := parseAttrs(list, "")
	if err != nil {
		t.Fatalf("%s: %v", list, err)
	}
	got := map[string][]string{}
	var order, multi []string
	m.resolve(testEntry(), vc, func(a string) { multi = append(multi, a) }, func(name string, values []string) {
		got[name] = values
		order = append(order, name)
	})
	return got, order, multi
}

func TestAttrTemplates(t *testing.T) {
	vc := &vars.Context{User: "Jo@Example.org", Service: "imap", Passdb: vars.MapFields{"x": "from-passdb"}}
	for _, tc := range []struct {
		list, field string
		want        []string // nil: field absent
	}{
		{"homeDirectory=home", "home", []string{"example.org/jo"}},
		{"homeDirectory=home=/var/mail/%$", "home", []string{"/var/mail/example.org/jo"}},
		{"homeDirectory=home=/var/mail/", "home", []string{"/var/mail/example.org/jo"}}, // prefix form: /var/mail/%$
		{"HOMEDIRECTORY=home", "home", []string{"example.org/jo"}},                      // names are case-insensitive
		{"cn=name=%L$", "name", []string{"jo x"}},
		{"cn=name=%U{ldap:cn}", "name", []string{"JO X"}},
		{"=quota_rule=*:storage=%{ldap:quota}G", "quota_rule", []string{"*:storage=5G"}},
		{"=quota_rule=*:storage=%{ldap:nosuch:1}G", "quota_rule", []string{"*:storage=1G"}},
		{"=quota_rule=*:storage=%{ldap:empty:7}G", "quota_rule", []string{"*:storage=G"}}, // present, empty: not the default
		{"=static=fixed", "static", []string{"fixed"}},
		{"=flag", "flag", []string{""}},
		{"=mixed=%Lu/%{ldap:uidNumber}/%s/%{passdb:x}", "mixed", []string{"jo@example.org/1000/imap/from-passdb"}},
		{"=dn=%{ldap_dn}", "dn", []string{"uid=jo,ou=people,dc=example,dc=org"}},
		{"nosuch=home=/var/mail/%$", "home", nil}, // absent attribute: no field, template not used
		{"nosuch=home", "home", nil},
		{"mail=mail", "mail", []string{"jo@example.org", "joe@example.org"}}, // raw values: caller decides
		{"mail=mail=<%$>", "mail", []string{"<jo@example.org>"}},
		{"uidNumber", "uidNumber", []string{"1000"}},
		{"=percent=100%%", "percent", []string{"100%"}},
	} {
		got, _, _ := resolveAll(t, tc.list, vc)
		v, ok := got[tc.field]
		if !ok {
			t.Errorf("%s: field %s not produced", tc.list, tc.field)
			continue
		}
		if strings.Join(v, "|") != strings.Join(tc.want, "|") || (v == nil) != (tc.want == nil) {
			t.Errorf("%s: %s = %q, want %q", tc.list, tc.field, v, tc.want)
		}
	}
}

func TestAttrTemplateStaticPrefixForm(t *testing.T) {
	// "=name=text" without '%' is Dovecot's prefix form too: text%$, and
	// %$ of a static field is empty.
	got, _, _ := resolveAll(t, "=static=fixed", nil)
	if v := got["static"]; len(v) != 1 || v[0] != "fixed" {
		t.Errorf("static = %q", v)
	}
}

func TestAttrMultiValueWarnings(t *testing.T) {
	_, _, multi := resolveAll(t, "mail=m=%$,=x=%{ldap:mail},authdGroup=g", nil)
	if strings.Join(multi, ",") != "mail,mail" {
		t.Errorf("multi warnings for %q", multi)
	}
}

func TestAttrListForms(t *testing.T) {
	m, err := parseAttrs(" uid=user , !quota, =quota_rule=*:storage=%{ldap:quota}, userPassword=password,,cn=%Ln_name=%$", "password")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.attrs, ","); got != "uid,quota,cn" {
		t.Errorf("requested attributes %s", got)
	}
	got := map[string][]string{}
	m.resolve(testEntry(), &vars.Context{User: "Jo@x"}, nil, func(n string, v []string) { got[n] = v })
	if _, ok := got["password"]; ok {
		t.Error("password not skipped")
	}
	if _, ok := got["quota"]; ok || len(got) != 3 {
		t.Errorf("fields %v", got)
	}
	if v := got["jo_name"]; len(v) != 1 || v[0] != "Jo X" {
		t.Errorf("templated field name: %v", got)
	}

	for _, bad := range []string{
		"@user=manager", "manager=@mgr", "cn@mgr=name", "=x=%{ldap_ptr:manager}", "=x=%{ldap:cn@mgr}",
		"uid=", "bad attr=x", "=x=%z", "=x=%{unterminated", "!", "=x=%",
	} {
		if _, err := parseAttrs(bad, ""); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestAttrCacheKeyParts(t *testing.T) {
	m, err := parseAttrs("homeDirectory=home=/var/%Ld/%$,=x=%{ldap:a}%s", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := vars.CacheKeyOf(m.keyTemplates...).String(); got != "%d\t%s" {
		t.Errorf("key %q", got)
	}
}

func testDB(t testing.TB, conf string) *DB {
	t.Helper()
	d, err := New(writeConf(t, conf), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestPassEntryMapping(t *testing.T) {
	d := testDB(t, `hosts = 127.0.0.1:1
base = dc=example,dc=org
default_pass_scheme = ssha
pass_attrs = uid=user,userPassword=password,mail=userdb_mail,nosuch=nologin,empty=nodelay,authdGroup=userdb_gid
`)
	req := &backends.Request{User: "jo"}
	pe := d.passEntry(testEntry(), req)
	if !pe.HasPassword || pe.Scheme != "SSHA" || pe.Data != "abc" {
		t.Errorf("password {%s}%s (has %v)", pe.Scheme, pe.Data, pe.HasPassword)
	}
	want := fields.Fields{{Key: "userdb_mail", Value: "jo@example.org"}, {Key: "nodelay"}, {Key: "userdb_gid", Value: "100"}}
	if pe.Fields.String() != want.String() {
		t.Errorf("fields %s, want %s", pe.Fields, want)
	}

	// A value without {…} gets the default scheme; password_noscheme never
	// parses a prefix (docs/schemes.md §2.1).
	e := &entry{attrs: map[string][]string{"p": {"{x"}, "q": {"{PLAIN}y"}}}
	for list, want := range map[string]string{
		"p=password":          "SSHA:{x",
		"q=password":          "PLAIN:y",
		"q=password_noscheme": "SSHA:{PLAIN}y",
	} {
		m, _ := parseAttrs(list, "")
		d.pass = m
		pe := d.passEntry(e, req)
		if got := pe.Scheme + ":" + pe.Data; got != want {
			t.Errorf("%s: %s, want %s", list, got, want)
		}
	}
}

func TestUserFieldsMapping(t *testing.T) {
	d := testDB(t, `hosts = 127.0.0.1:1
base = dc=example,dc=org
user_attrs = homeDirectory=home=/var/mail/%$,uidNumber=uid,authdGroup=gid,mail=mail,nosuch=quota_rule
`)
	fs := d.userFields(testEntry(), &backends.Request{User: "jo"})
	// gid: every value, comma-separated; other multi-valued fields: the
	// first value (Dovecot 2.3's auth_request_set_userdb_field_values).
	want := "home=/var/mail/example.org/jo uid=1000 gid=100,200,300 mail=jo@example.org"
	if fs.String() != want {
		t.Errorf("fields %s, want %s", fs, want)
	}
}

// TestFields24Default: 2.4's name:default sets a field only when no entry
// before it did, whatever the order (authd convert writes 2.3's
// default_fields that way); name:remove is refused.
func TestFields24Default(t *testing.T) {
	for _, list := range [][][2]string{
		{{"uid", "%{ldap:uidNumber}"}, {"uid:default", "nobody"}, {"gid:default", "nogroup"}},
		{{"uid:default", "nobody"}, {"uid", "%{ldap:uidNumber}"}, {"gid:default", "nogroup"}},
	} {
		m, err := parseFields24(list, "")
		if err != nil {
			t.Fatal(err)
		}
		got := fields.Fields{}
		m.resolve(testEntry(), &vars.Context{User: "jo"}, nil, func(n string, v []string) {
			if len(v) > 0 {
				got.Set(n, v[0])
			}
		})
		if u, _ := got.Get("uid"); u != "1000" || got.String() != "uid=1000 gid=nogroup" && got.String() != "gid=nogroup uid=1000" {
			t.Errorf("%v: %s", list, got)
		}
	}
	if _, err := parseFields24([][2]string{{"uid:remove", ""}}, ""); err == nil {
		t.Error(":remove accepted")
	}
}
