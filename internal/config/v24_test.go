package config

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/vars"
)

const head24 = "dovecot_config_version = 2.4.1\ndovecot_storage_version = 2.4.1\n"

func load24(t *testing.T, body string) *Config {
	t.Helper()
	c, err := LoadBytes("t.conf", []byte(head24+body))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestV24Defaults: a 2.4 file gets 2.4's language and the defaults in
// which 2.4 differs from 2.3; a file without dovecot_config_version stays
// 2.3.
func TestV24Defaults(t *testing.T) {
	c := load24(t, "passdb static {\n  password = x\n}\n")
	a := c.Auth
	switch {
	case c.Syntax != vars.Syntax24 || c.ConfigVersion != "2.4.1":
		t.Errorf("syntax %v version %q", c.Syntax, c.ConfigVersion)
	case a.UsernameFormat != "%{user | lower}":
		t.Errorf("auth_username_format %q", a.UsernameFormat)
	case a.AllowCleartext || a.AllowWeakSchemes || a.InternalFailureDelay != 2*time.Second:
		t.Errorf("cleartext %v weak %v internal delay %v", a.AllowCleartext, a.AllowWeakSchemes, a.InternalFailureDelay)
	case !slices.Equal(a.Mechanisms, []string{"PLAIN"}) || a.FailureDelay != 2*time.Second || a.CacheTTL != time.Hour:
		t.Errorf("mechanisms %v failure delay %v ttl %v", a.Mechanisms, a.FailureDelay, a.CacheTTL)
	}
	if got := a.Policy.Attributes.Pairs(); len(got) != 7 || got[1] != [2]string{"fail_type", "%{fail_type}"} {
		t.Errorf("policy attributes %v", got)
	}
	c23, err := LoadBytes("t.conf", []byte("passdb {\n  driver = static\n  args = password=x\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c23.Syntax != vars.Syntax23 || c23.Auth.UsernameFormat != "%Lu" || c23.ConfigVersion != "" {
		t.Errorf("2.3: syntax %v format %q", c23.Syntax, c23.Auth.UsernameFormat)
	}
}

// TestV24Settings: the top-level auth settings under their 2.4 names and
// forms (boolean lists as words and as sections, $SET:, auth_policy { }).
func TestV24Settings(t *testing.T) {
	c := load24(t, `auth_mechanisms = plain, login
auth_mechanisms {
  cram-md5 = yes
  login = no
}
auth_realms = a.example b.example
auth_default_domain = example.com
auth_allow_cleartext = yes
auth_allow_weak_schemes = yes
auth_internal_failure_delay = 500ms
auth_username_format = %{user | username | lower}
auth_master_user_separator = *
auth_cache_size = 10M
auth_cache_ttl = 5 mins
auth_verbose = yes
first_valid_uid = 1000
auth_anonymous_username = $SET:auth_master_user_separator
auth_policy_server_url = http://127.0.0.1:4001/
auth_policy_hash_nonce = n
auth_policy_request_attributes {
  login = %{requested_username}
  remote = %{remote_ip}
}
auth_policy {
  http_client_request_absolute_timeout = 3s
}
protocol lmtp {
  auth_username_format = %{user | username}
  mail_plugins = quota
}
passdb static {
  password = x
}
`)
	a := c.Auth
	if !slices.Equal(a.Mechanisms, []string{"PLAIN", "CRAM-MD5"}) {
		t.Errorf("mechanisms %v", a.Mechanisms)
	}
	if !slices.Equal(a.Realms, []string{"a.example", "b.example"}) || a.DefaultRealm != "example.com" {
		t.Errorf("realms %v default %q", a.Realms, a.DefaultRealm)
	}
	if !a.AllowCleartext || !a.AllowWeakSchemes || a.InternalFailureDelay != 500*time.Millisecond {
		t.Errorf("cleartext %v weak %v delay %v", a.AllowCleartext, a.AllowWeakSchemes, a.InternalFailureDelay)
	}
	if a.UsernameFormat != "%{user | username | lower}" || a.CacheSize != 10<<20 || a.CacheTTL != 5*time.Minute {
		t.Errorf("format %q cache %d %v", a.UsernameFormat, a.CacheSize, a.CacheTTL)
	}
	if !a.Verbose || a.FirstValidUID != 1000 || a.AnonymousUsername != "*" {
		t.Errorf("verbose %v uid %d anonymous %q", a.Verbose, a.FirstValidUID, a.AnonymousUsername)
	}
	if a.Policy.Timeout != 3*time.Second || len(a.Policy.Attributes.Pairs()) != 2 {
		t.Errorf("policy timeout %v attributes %v", a.Policy.Timeout, a.Policy.Attributes.Pairs())
	}
	if a.ProtocolUsernameFormat["lmtp"] != "%{user | username}" {
		t.Errorf("protocol formats %v", a.ProtocolUsernameFormat)
	}
	if !slices.Contains(c.Ignored, "protocol lmtp") {
		t.Errorf("ignored %v", c.Ignored)
	}
}

// TestV24Blocks: named blocks, the driver taken from the name, settings
// given at the top level applying to every block, per-driver defaults,
// fields { }, SQL hosts, and two blocks of one name being one block.
func TestV24Blocks(t *testing.T) {
	c := load24(t, `passdb_default_password_scheme = SHA512-CRYPT
passdb_fields {
  nodelay = yes
}
ldap_uris = ldap://127.0.0.1
ldap_base = dc=example,dc=com
sql_driver = mysql
mysql db1 {
  user = u
  password = p
  dbname = mail
}
passdb_ldap {
  passdb_fields_import_all = yes
}
passdb deny {
  driver = passwd-file
  deny = yes
  passwd_file_path = /etc/dovecot/deny
  mechanisms_filter = plain login
}
passdb ldap {
  filter = (uid=%{user | username})
  ldap_bind = yes
}
passdb sql {
  query = SELECT password FROM users WHERE user = '%{user}'
  skip = authenticated
  fields {
    nodelay = no
    userdb_home = /home/%{sql:home | default('x')}
  }
}
passdb deny {
  result_internalfail = return-fail
}
userdb ldap {
  filter = (uid=%{user | username})
  fields {
    home = %{ldap:homeDirectory}
  }
}
userdb passwd-file {
  passwd_file_path = /etc/users
  auth_username_format = %{user}
  use_cache = no
}
`)
	if len(c.Passdbs) != 3 || len(c.Userdbs) != 2 {
		t.Fatalf("passdbs %d userdbs %d", len(c.Passdbs), len(c.Userdbs))
	}
	deny, ld, sq := c.Passdbs[0], c.Passdbs[1], c.Passdbs[2]
	if deny.Name != "deny" || deny.Driver != "passwd-file" || !deny.Deny || deny.ResultInternalfail != RuleReturnFail ||
		!slices.Equal(deny.Mechanisms, []string{"PLAIN", "LOGIN"}) || deny.DefaultPasswordScheme != "SHA512-CRYPT" {
		t.Errorf("deny %+v", deny)
	}
	if got := settingsMap(deny.DriverSettings); got["passwd_file_path"] != "/etc/dovecot/deny" {
		t.Errorf("deny settings %v", got)
	}
	if ld.Driver != "ldap" || !ld.FieldsImportAll || ld.DefaultPasswordScheme != "SHA512-CRYPT" {
		t.Errorf("ldap %+v", ld)
	}
	if got := settingsMap(ld.DriverSettings); got["ldap_uris"] != "ldap://127.0.0.1" ||
		got["passdb_ldap_filter"] != "(uid=%{user | username})" || got["passdb_ldap_bind"] != "yes" {
		t.Errorf("ldap settings %v", got)
	}
	if sq.Skip != SkipAuthenticated || sq.SQL == nil || sq.SQL.Driver != "mysql" || len(sq.SQL.Hosts) != 1 {
		t.Fatalf("sql %+v", sq)
	}
	if h := sq.SQL.Hosts[0]; h.Host != "db1" || settingsMap(h.Settings)["mysql_dbname"] != "mail" {
		t.Errorf("sql host %+v", h)
	}
	if want := []Field{{Key: "nodelay", Value: "no"}, {Key: "userdb_home", Value: "/home/%{sql:home | default('x')}"}}; !fieldsEqual(sq.Fields, want) {
		t.Errorf("sql fields %+v", sq.Fields)
	}
	uld, upf := c.Userdbs[0], c.Userdbs[1]
	if uld.FieldsImportAll || !fieldsEqual(uld.Fields, []Field{{Key: "home", Value: "%{ldap:homeDirectory}"}}) {
		t.Errorf("userdb ldap %+v", uld)
	}
	if upf.UseCache || settingsMap(upf.DriverSettings)["auth_username_format"] != "%{user}" {
		t.Errorf("userdb passwd-file %+v", upf)
	}
}

func settingsMap(l []DriverSetting) map[string]string {
	m := map[string]string{}
	for _, s := range l {
		m[s.Key] = s.Value
	}
	return m
}

func fieldsEqual(a, b []Field) bool {
	return slices.EqualFunc(a, b, func(x, y Field) bool { return x.Key == y.Key && x.Value == y.Value })
}

// TestV24BadInput: every mistake of a 2.4 file is reported in one run,
// each with its file:line, and nothing is returned.
func TestV24BadInput(t *testing.T) {
	c, err := LoadBytes("bad.conf", []byte(head24+`auth_username_format = %Lu
passdb passwd-file {
  passwd_file_path = /etc/%{user | domian}/passwd
}
passdb other {
  skip = authenticated
}
passdb {
  driver = static
}
userdb static {
  fields {
    home = /home/%{user
  }
}
userdb x {
  driver = passwd-file
  passwd_file_path = /etc/users
  args = /etc/users
  fields {
    home = /home/%d/%n
  }
}
disable_plaintext_auth = no
`))
	if c != nil {
		t.Error("a configuration with errors was returned")
	}
	checkErrs(t, err, []string{
		"bad.conf:3: auth_username_format: %Lu is Dovecot 2.3's variable syntax (2.4 reads it as text); write %{user | lower}",
		`bad.conf:5: passwd_file_path: template "/etc/%{user | domian}/passwd": at offset 14: unknown filter "domian"`,
		`bad.conf:7: passdb other has no driver: "other" is not a Dovecot 2.4 driver name`,
		"bad.conf:10: passdb { } is missing its name",
		`bad.conf:15: userdb_fields/home: template "/home/%{user": at offset 6: unterminated %{`,
		`bad.conf:21: "args" is Dovecot 2.3's; in this 2.4 configuration write the driver's own settings`,
		"bad.conf:23: userdb_fields/home: %d is Dovecot 2.3's variable syntax (2.4 reads it as text); write %{user | domain}",
		`bad.conf:26: "disable_plaintext_auth" is Dovecot 2.3's; in this 2.4 configuration write auth_allow_cleartext`,
	})
}

// TestV24Counterparts: a name of the other language gets an error naming
// its counterpart, in both directions.
func TestV24Counterparts(t *testing.T) {
	tests := []struct{ name, conf, want string }{
		{"2.3 in 2.4", head24 + "auth_default_realm = x\npassdb static {\n password = x\n}\n", "write auth_default_domain"},
		{"2.3 block key in 2.4", head24 + "passdb static {\n  override_fields = a=b\n}\n", "write fields { name = value }"},
		{"2.3 $name in 2.4", head24 + "auth_realms = a\nauth_default_domain = $auth_realms\npassdb static {\n password = x\n}\n", "write $SET:auth_realms"},
		{"2.3-only in 2.4", head24 + "director_servers = x\npassdb static {\n password = x\n}\n", "Dovecot 2.4 has no such setting"},
		{"2.4 in 2.3", "auth_allow_cleartext = yes\npassdb {\n  driver = static\n  args = password=x\n}\n", "in 2.3 write disable_plaintext_auth"},
		{"2.4 block key in 2.3", "passdb {\n  driver = passwd-file\n  passwd_file_path = /x\n}\n", "in 2.3 write args = PATH"},
		{"2.4 fields in 2.3", "passdb {\n  driver = static\n  fields {\n  }\n}\n", "write default_fields / override_fields"},
		{"version not first", "auth_verbose = yes\ndovecot_config_version = 2.4.1\n", "dovecot_config_version must be the first setting"},
		{"bad version", "dovecot_config_version = 2.3.0\n", `"2.3.0" is not a Dovecot 2.4 configuration version`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadBytes("t.conf", []byte(tt.conf))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestV24DumpRoundTrip: what `authd check` prints for a 2.4 file is 2.4
// syntax and loads back into the same configuration (secrets aside).
func TestV24DumpRoundTrip(t *testing.T) {
	for _, f := range []string{"passwd-file.conf", "sql.conf", "ldap-bind.conf", "ldap-password.conf"} {
		t.Run(f, func(t *testing.T) {
			c, err := Load("testdata/dovecot24-examples/" + f)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			c.Dump(&out)
			if !strings.HasPrefix(out.String(), "dovecot_config_version = 2.4.1\n") {
				t.Fatalf("dump does not start with the version:\n%.200s", out.String())
			}
			c2, err := LoadBytes("dump.conf", out.Bytes())
			if err != nil {
				t.Fatalf("dump does not load: %v\n%s", err, out.String())
			}
			for _, cc := range []*Config{c, c2} {
				cc.Files, cc.Warnings, cc.Ignored, cc.SettingPos = nil, nil, nil, nil
				for _, dbs := range [][]DB{cc.Passdbs, cc.Userdbs} {
					for i := range dbs {
						clearPos(&dbs[i])
					}
				}
				cc.Metrics.Pos, cc.GRPC.Pos, cc.Penalty.Pos = Pos{}, Pos{}, Pos{}
				for i := range cc.Listeners {
					cc.Listeners[i].Pos = Pos{}
				}
			}
			v1, v2 := reflect.ValueOf(*c), reflect.ValueOf(*c2)
			for i := range v1.NumField() {
				if !reflect.DeepEqual(v1.Field(i).Interface(), v2.Field(i).Interface()) {
					t.Errorf("round trip changes %s:\n%+v\n%+v", v1.Type().Field(i).Name, v1.Field(i).Interface(), v2.Field(i).Interface())
				}
			}
		})
	}
}

// clearPos drops positions and the secrets the dump hides.
func clearPos(d *DB) {
	d.Pos = Pos{}
	for i := range d.DriverSettings {
		d.DriverSettings[i].Pos = Pos{}
		if secret24(d.DriverSettings[i].Key) {
			d.DriverSettings[i].Value = ""
		}
	}
	for i := range d.Fields {
		d.Fields[i].Pos = Pos{}
	}
	if d.SQL != nil {
		d.SQL.Pos = Pos{}
		for i := range d.SQL.Hosts {
			d.SQL.Hosts[i].Pos = Pos{}
			for j := range d.SQL.Hosts[i].Settings {
				s := &d.SQL.Hosts[i].Settings[j]
				s.Pos = Pos{}
				if secret24(s.Key) {
					s.Value = ""
				}
			}
		}
	}
}

// TestV24Listeners: 2.4's unix_listener keys may carry their prefix, and
// a type gives the role whatever the name.
func TestV24Listeners(t *testing.T) {
	c := load24(t, `service auth {
  unix_listener my-socket {
    unix_listener_mode = 0660
    type = userdb
  }
}
passdb static {
  password = x
}
`)
	var found bool
	for _, l := range c.Listeners {
		if l.Name == "my-socket" {
			found = true
			if l.Role != RoleUserdb || l.Mode != 0o660 {
				t.Errorf("%+v", l)
			}
		}
	}
	if !found {
		t.Errorf("listeners %+v", c.Listeners)
	}
	_, err := LoadBytes("t.conf", []byte("service auth {\n  unix_listener x {\n    type = userdb\n  }\n}\npassdb {\n  driver = static\n  args = password=x\n}\n"))
	if err == nil || !strings.Contains(err.Error(), `unknown setting "type"`) {
		t.Errorf("2.3 type: %v", err)
	}
}

// TestLDAPBindWithoutFilter24: bind_userdn without passdb_ldap_filter loads
// (authd needs no filter to bind) with a warning, because Dovecot 2.4.1
// fails every login of such a passdb (cmd/authd's differential found it).
func TestLDAPBindWithoutFilter24(t *testing.T) {
	const head = "dovecot_config_version = 2.4.1\nldap_uris = ldap://127.0.0.1\nldap_base = dc=example,dc=com\n"
	block := func(filter string) string {
		return "passdb ldap {\n  bind = yes\n  bind_userdn = uid=%{user | username},dc=example,dc=com\n" + filter + "}\n"
	}
	c, err := LoadBytes("t.conf", []byte(head+block("")))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].Error(), "t.conf:4: passdb ldap: bind_userdn without passdb_ldap_filter") {
		t.Errorf("warnings %v", c.Warnings)
	}
	c, err = LoadBytes("t.conf", []byte(head+block("  filter = (uid=%{user | username})\n")))
	if err != nil || len(c.Warnings) != 0 {
		t.Errorf("with a filter: %v %v", err, c.Warnings)
	}
}
