package ldap

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/backends"
)

// productionConf is a production dovecot-ldap.conf.ext, verbatim but for
// the host.
const productionConf = `hosts = localhost
sasl_bind = no
tls = no
ldap_version = 3
base = dc=%d,dc=control,dc=isp
deref = never
scope = subtree
user_attrs = homeDirectory=home=/var/mail/%$,uidNumber=uid,gidNumber=gid,mail=mail
user_filter = (&(cn=%u)(status=valid))
pass_attrs = uid=cn,userPassword=password,\
  homeDirectory=userdb_home,uidNumber=userdb_uid,gidNumber=userdb_gid
pass_filter = (&(cn=%u)(status=valid))
default_pass_scheme = PLAIN
`

func writeConf(t testing.TB, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dovecot-ldap.conf.ext")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseProductionConf(t *testing.T) {
	c, err := parseConfigBytes("prod.conf", []byte(productionConf))
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]string{
		"hosts":               {c.hosts, "localhost"},
		"base":                {c.base, "dc=%d,dc=control,dc=isp"},
		"deref":               {c.deref, "never"},
		"scope":               {c.scope, "subtree"},
		"user_attrs":          {c.userAttrs, "homeDirectory=home=/var/mail/%$,uidNumber=uid,gidNumber=gid,mail=mail"},
		"user_filter":         {c.userFilter, "(&(cn=%u)(status=valid))"},
		"pass_attrs":          {c.passAttrs, "uid=cn,userPassword=password, homeDirectory=userdb_home,uidNumber=userdb_uid,gidNumber=userdb_gid"},
		"pass_filter":         {c.passFilter, "(&(cn=%u)(status=valid))"},
		"default_pass_scheme": {c.defaultPassScheme, "PLAIN"},
		"iterate_filter":      {c.iterateFilter, "(objectClass=posixAccount)"}, // Dovecot's default
	}
	for k, v := range checks {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", k, v[0], v[1])
		}
	}
	if c.saslBind || c.tls || c.ldapVersion != 3 || !c.baseSet {
		t.Errorf("sasl_bind=%v tls=%v ldap_version=%d baseSet=%v", c.saslBind, c.tls, c.ldapVersion, c.baseSet)
	}
	if got := c.where("pass_filter"); got != "prod.conf:12" {
		t.Errorf("pass_filter position %q", got)
	}

	// The whole file builds, and the pass_attrs continuation splits into
	// the five fields Dovecot sees.
	d, errs := build(c, nil2log())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var names []string
	for _, f := range d.pass.fields {
		names = append(names, f.attr+"="+f.name)
	}
	if got, want := strings.Join(names, ","), "uid=cn,userPassword=password,homeDirectory=userdb_home,uidNumber=userdb_uid,gidNumber=userdb_gid"; got != want {
		t.Errorf("pass fields %s, want %s", got, want)
	}
	if got := d.PassCacheKey().String(); got != "%u\t%d" {
		t.Errorf("pass cache key %q", got)
	}
	if got := d.UserCacheKey().String(); got != "%u\t%d" {
		t.Errorf("user cache key %q", got)
	}
	if d.DefaultScheme() != "PLAIN" || d.VerifiesPasswords() {
		t.Errorf("default scheme %q, auth bind %v", d.DefaultScheme(), d.VerifiesPasswords())
	}
	if len(d.dial.targets) != 1 || d.dial.targets[0].addr != "localhost:389" {
		t.Errorf("targets %+v", d.dial.targets)
	}
}

func TestParseSyntax(t *testing.T) {
	t.Setenv("AUTHD_LDAP_TEST_PW", "from-env")
	c, err := parseConfigBytes("x.conf", []byte(`
# comment
  # indented comment
dn = "cn=authd, ou=services" # trailing comment
dnpass = $ENV:AUTHD_LDAP_TEST_PW
sasl_authz_id = 'with # hash and \"escapes\"\tend'
base=dc=example,dc=com
hosts = a.example:1389 b.example \
  [::1]:636
uris =
blocking = YES
auth_bind = no
authd_pool_size = 0x10
authd_timeout = 3 secs
authd_failback_interval = 500 ms
something {
  ignored = inside a section
  nested {
    x = y
  }
}
debug_level = -1
iterate_filter = (&(objectClass=posixAccount)\

  (mail=*))
`))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string][2]string{
		"dn":     {c.dn, "cn=authd, ou=services"},
		"dnpass": {c.dnpass, "from-env"},
		// Dovecot's str_unescape has no control escapes: \t is "t".
		"sasl_authz_id":  {c.saslAuthzID, "with # hash and \"escapes\"tend"},
		"base":           {c.base, "dc=example,dc=com"},
		"hosts":          {c.hosts, "a.example:1389 b.example [::1]:636"},
		"debug_level":    {c.debugLevel, "-1"},
		"iterate_filter": {c.iterateFilter, "(&(objectClass=posixAccount) (mail=*))"},
	} {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", k, v[0], v[1])
		}
	}
	if !c.blocking || c.authBind || c.poolSize != 16 || c.timeout != 3*time.Second || c.failback != 500*time.Millisecond {
		t.Errorf("blocking=%v auth_bind=%v pool=%d timeout=%v failback=%v", c.blocking, c.authBind, c.poolSize, c.timeout, c.failback)
	}
	if len(c.warnings) != 1 || !strings.Contains(c.warnings[0], "x.conf:16") {
		t.Errorf("warnings %q", c.warnings)
	}
	ts, err := parseTargets(c.uris, c.hosts)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, tg := range ts {
		addrs = append(addrs, tg.uri)
	}
	if got := strings.Join(addrs, " "); got != "ldap://a.example:1389 ldap://b.example:389 ldap://[::1]:636" {
		t.Errorf("targets %s", got)
	}
}

func TestParseErrorsAllAtOnce(t *testing.T) {
	_, err := parseConfigBytes("bad.conf", []byte(`hosts = x
nosuchkey = 1
tls = maybe
ldap_version = three
this line has no equals
}
authd_timeout = 5
`))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		`bad.conf:2: unknown setting "nosuchkey"`,
		`bad.conf:3: tls: invalid boolean "maybe"`,
		`bad.conf:4: ldap_version: invalid number "three"`,
		`bad.conf:5: expecting '=' or '{' after "this"`,
		`bad.conf:6: unexpected '}'`,
		`bad.conf:7: authd_timeout: time interval "5" is missing units`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestNewErrors(t *testing.T) {
	p := writeConf(t, `uris = ldap://127.0.0.1:1 gopher://x
scope = everything
deref = sometimes
ldap_version = 2
default_pass_scheme = NOPE
pass_filter = (&(uid=%u)
user_filter = (uid=%z)
sasl_bind = yes
sasl_mech = GSSAPI
user_attrs = @foo=bar
tls_require_cert = perhaps
auth_bind = yes
auth_bind_userdn = uid=%u,,ou=x=
`)
	_, err := New(p, nil)
	if !errors.Is(err, backends.ErrConfig) {
		t.Fatalf("err %v does not wrap ErrConfig", err)
	}
	msg := err.Error()
	for _, want := range []string{
		":1: uris: ", "gopher",
		":2: scope: unknown scope",
		":3: deref: unknown deref",
		":4: ldap_version: only LDAPv3",
		":5: default_pass_scheme: unknown password scheme",
		":6: pass_filter: not a valid LDAP filter",
		":7: user_filter: unknown variable %z",
		":9: sasl_mech: SASL mechanism \"GSSAPI\"",
		":10: user_attrs: attrs entry \"@foo=bar\"",
		":11: tls_require_cert: unknown value",
		":13: auth_bind_userdn: not a valid DN",
		": base: no base given",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}

	if _, err := New(filepath.Join(t.TempDir(), "missing.conf"), nil); !errors.Is(err, backends.ErrConfig) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := New("  ", nil); !errors.Is(err, backends.ErrConfig) {
		t.Errorf("no args: %v", err)
	}
	if _, err := New(writeConf(t, "base = dc=x\nuris = ldaps://h\ntls = yes\n"), nil); err == nil || !strings.Contains(err.Error(), "don't use both") {
		t.Errorf("tls with ldaps: %v", err)
	}
}

func TestInclude(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "common.inc"), []byte("base = dc=inc\nhosts = h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "main.conf")
	if err := os.WriteFile(main, []byte("!include common.inc\n!include_try nothere.inc\nscope = onelevel\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig(main)
	if err != nil {
		t.Fatal(err)
	}
	if c.base != "dc=inc" || c.hosts != "h" || c.scope != "onelevel" {
		t.Errorf("base %q hosts %q scope %q", c.base, c.hosts, c.scope)
	}
	if got := c.where("base"); got != filepath.Join(dir, "common.inc")+":1" {
		t.Errorf("base set at %q", got)
	}
	if err := os.WriteFile(main, []byte("!include nothere.inc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseConfig(main); err == nil || !strings.Contains(err.Error(), "main.conf:1: !include") {
		t.Errorf("missing include: %v", err)
	}
}

func TestParseURI(t *testing.T) {
	for in, want := range map[string]target{
		"ldap://h":                       {scheme: "ldap", network: "tcp", addr: "h:389", host: "h"},
		"LDAPS://h:1636/dc=x??sub":       {scheme: "ldaps", network: "tcp", addr: "h:1636", host: "h"},
		"ldap://[::1]:10389":             {scheme: "ldap", network: "tcp", addr: "[::1]:10389", host: "::1"},
		"ldapi://%2Ftmp%2Fs%2Fldapi":     {scheme: "ldapi", network: "unix", addr: "/tmp/s/ldapi"},
		"ldapi:///":                      {scheme: "ldapi", network: "unix", addr: "/var/run/slapd/ldapi"},
		"ldap:///":                       {scheme: "ldap", network: "tcp", addr: "localhost:389", host: "localhost"},
		"ldapi://%2Frun%2Fslapd%2Fldapi": {scheme: "ldapi", network: "unix", addr: "/run/slapd/ldapi"},
	} {
		got, err := parseURI(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		got.uri = ""
		if got != want {
			t.Errorf("%s: %+v, want %+v", in, got, want)
		}
	}
	for _, bad := range []string{"h:389", "http://h", "ldap://h:99999", "ldapi://%zz"} {
		if _, err := parseURI(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestIgnoredSettingsWarn: settings Dovecot honours and authd cannot are
// accepted (the file still loads) but each gets a warning with its
// file:line, never silence.
func TestIgnoredSettingsWarn(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	p := writeConf(t, `uris = ldap://127.0.0.1:1
base = dc=x
tls_cipher_suite = HIGH
ldaprc_path = /etc/ldap.rc
sasl_realm = EXAMPLE
debug_level = 1
auth_bind_userdn = uid=%n,dc=x
`)
	d, err := New(p, log)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	for _, want := range []string{":3: tls_cipher_suite is ignored", ":4: ldaprc_path is ignored",
		":5: sasl_realm is ignored", ":6: debug_level is ignored", ":7: auth_bind_userdn is ignored"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("no warning %q in:\n%s", want, buf.String())
		}
	}
	// The defaults warn about nothing.
	buf.Reset()
	d, err = New(writeConf(t, "uris = ldap://127.0.0.1:1\nbase = dc=x\ndebug_level = 0\n"), log)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if buf.Len() != 0 {
		t.Errorf("warnings for a plain file:\n%s", buf.String())
	}
}

// TestReaderDecisions pins what changed when this file's own reader was
// replaced by internal/conffile, which reads it as Dovecot's auth process
// does (lib-settings; see that package's decision table).
func TestReaderDecisions(t *testing.T) {
	// A section left open at the end and a '\' on the last line are
	// accepted by Dovecot (silently); here they are warnings.
	c, err := parseConfigBytes("w.conf", []byte("base = dc=x\nhosts = h \\\n  h2\nsection {\n  a = b\nscope = onelevel \\\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.hosts != "h h2" || c.scope != "subtree" || len(c.warnings) != 3 {
		t.Errorf("hosts %q scope %q warnings %q", c.hosts, c.scope, c.warnings)
	}
	// Times take Dovecot's settings_get_time syntax, as in the main
	// configuration: no Go durations, no fractions.
	for v, want := range map[string]time.Duration{"2 m": 2 * time.Minute, "3s": 3 * time.Second, "1500 msecs": 1500 * time.Millisecond, "1 hour": time.Hour} {
		c, err := parseConfigBytes("t.conf", []byte("authd_timeout = "+v+"\n"))
		if err != nil || c.timeout != want {
			t.Errorf("authd_timeout = %s: %v, %v; want %v", v, c.timeout, err, want)
		}
	}
	for _, v := range []string{"1.5s", "1h30m", "10", "-1 s"} {
		if _, err := parseConfigBytes("t.conf", []byte("authd_timeout = "+v+"\n")); err == nil {
			t.Errorf("authd_timeout = %s accepted", v)
		}
	}
	// Booleans are lib-settings' yes/no only; numbers are sscanf("%i").
	if _, err := parseConfigBytes("t.conf", []byte("blocking = y\n")); err == nil || !strings.Contains(err.Error(), `t.conf:1: blocking: invalid boolean "y"`) {
		t.Errorf("blocking = y: %v", err)
	}
	if c, err := parseConfigBytes("t.conf", []byte("ldap_version = 03\nauthd_pool_size = 4 conns\n")); err != nil || c.ldapVersion != 3 || c.poolSize != 4 {
		t.Errorf("numbers: %v", err)
	}
	// !include inside a section is followed, and what it sets belongs to
	// the section (skipped); its '}' closes the section.
	dir := t.TempDir()
	for name, text := range map[string]string{
		"main.conf":  "base = dc=x\nignored {\n!include inner.inc\nhosts = after\n",
		"inner.inc":  "hosts = inside\n}\n",
		"multi.conf": "!include m/*.inc\n",
		"m/a.inc":    "hosts = a\n",
		"m/b.inc":    "hosts = b\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err = parseConfig(filepath.Join(dir, "main.conf"))
	if err != nil || c.hosts != "after" {
		t.Errorf("include in a section: hosts %q, %v", c.hosts, err)
	}
	// Dovecot reads the matches of a glob last first, so the first one
	// wins.
	c, err = parseConfig(filepath.Join(dir, "multi.conf"))
	if err != nil || c.hosts != "a" {
		t.Errorf("glob order: hosts %q, %v", c.hosts, err)
	}
}
