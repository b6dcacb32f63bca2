package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/policy"
)

const minimal = "passdb {\n  driver = pam\n}\n"

func mustLoad(t *testing.T, conf string) *Config {
	t.Helper()
	c, err := LoadBytes("t.conf", []byte(conf))
	if err != nil {
		t.Fatalf("LoadBytes: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, minimal)
	a := c.Auth
	want := Auth{
		Mechanisms:                     []string{"PLAIN"},
		UsernameChars:                  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@",
		UsernameFormat:                 "%Lu",
		AnonymousUsername:              "anonymous",
		FailureDelay:                   2 * time.Second,
		CacheTTL:                       time.Hour,
		CacheNegativeTTL:               time.Hour,
		CacheVerifyPasswordFingerprint: true,
		VerbosePasswords:               "no",
		FirstValidUID:                  500,
		FirstValidGID:                  1,
		WorkerMaxCount:                 30,
		Policy:                         defaultPolicy(t),
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("Auth defaults:\n got %+v\nwant %+v", a, want)
	}
	if c.BaseDir != "/run/authd" || c.ShutdownTimeout != 10*time.Second || c.Log.Format != "text" {
		t.Errorf("BaseDir %q ShutdownTimeout %v Log %+v", c.BaseDir, c.ShutdownTimeout, c.Log)
	}
	if !reflect.DeepEqual(c.GRPC, DefaultGRPC()) || c.Metrics != (Metrics{}) {
		t.Errorf("GRPC %+v Metrics %+v", c.GRPC, c.Metrics)
	}
	wantL := []Listener{
		{Name: "auth-client", Path: "/run/authd/auth-client", Role: RoleClient, Mode: 0o600},
		{Name: "auth-login", Path: "/run/authd/auth-login", Role: RoleLogin, Mode: 0o600},
		{Name: "auth-master", Path: "/run/authd/auth-master", Role: RoleMaster, Mode: 0o600},
		{Name: "auth-userdb", Path: "/run/authd/auth-userdb", Role: RoleUserdb, Mode: 0o666},
		{Name: "login/login", Path: "/run/authd/login/login", Role: RoleLogin, Mode: 0o660},
	}
	if !reflect.DeepEqual(c.Listeners, wantL) {
		t.Errorf("Listeners:\n got %+v\nwant %+v", c.Listeners, wantL)
	}
	wantP := DB{Driver: "pam", Skip: SkipNever, ResultSuccess: RuleReturnOK, ResultFailure: RuleContinue,
		ResultInternalfail: RuleContinue, AuthVerbose: VerboseDefault, Pos: Pos{File: "t.conf", Line: 1}}
	if !reflect.DeepEqual(c.Passdbs, []DB{wantP}) {
		t.Errorf("Passdbs %+v", c.Passdbs)
	}
	// No userdb: Dovecot's dummy static userdb.
	if len(c.Userdbs) != 1 || c.Userdbs[0].Driver != "static" || c.Userdbs[0].Pos != (Pos{}) {
		t.Errorf("Userdbs %+v", c.Userdbs)
	}
	if len(c.Ignored) != 0 || len(c.Warnings) != 0 || len(c.Files) != 0 {
		t.Errorf("Ignored %v Warnings %v Files %v", c.Ignored, c.Warnings, c.Files)
	}
}

func defaultPolicy(t *testing.T) policy.Settings {
	t.Helper()
	attrs, err := policy.ParseAttributes(policy.DefaultAttributes)
	if err != nil {
		t.Fatal(err)
	}
	return policy.Settings{
		Timeout: 2 * time.Second, HashMech: "sha256", HashTruncate: 12, Attributes: attrs,
		CheckBeforeAuth: true, CheckAfterAuth: true, ReportAfterAuth: true,
	}
}

func TestPolicySettings(t *testing.T) {
	c := mustLoad(t, minimal+`
auth_policy_server_url = https://wforce:secret@policy.example.com:8084/?
auth_policy_server_api_header = Authorization:Basic d2ZvcmNlOnNlY3JldA==
auth_policy_server_timeout_msecs = 500
auth_policy_hash_mech = sha512
auth_policy_hash_nonce = cluster-nonce
auth_policy_hash_truncate = 16
auth_policy_request_attributes = login=%{requested_username} pwhash=%{hashed_password} remote=%{rip} attrs/tls=%c
auth_policy_reject_on_fail = yes
auth_policy_check_before_auth = no
auth_policy_check_after_auth = no
auth_policy_report_after_auth = no
auth_policy_log_only = yes
`)
	attrs, err := policy.ParseAttributes("login=%{requested_username} pwhash=%{hashed_password} remote=%{rip} attrs/tls=%c")
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Settings{
		URL: "https://wforce:secret@policy.example.com:8084/?", APIHeader: "Authorization:Basic d2ZvcmNlOnNlY3JldA==",
		Timeout: 500 * time.Millisecond, HashMech: "sha512", Nonce: "cluster-nonce", HashTruncate: 16, Attributes: attrs,
		RejectOnFail: true, LogOnly: true,
	}
	if !reflect.DeepEqual(c.Auth.Policy, want) {
		t.Errorf("Policy:\n got %+v\nwant %+v", c.Auth.Policy, want)
	}
	if err := c.Auth.Policy.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
	if slices.ContainsFunc(c.Ignored, func(s string) bool { return strings.HasPrefix(s, "auth_policy") }) {
		t.Errorf("auth_policy_* listed as ignored: %v", c.Ignored)
	}
	// authd check shows the settings without their secrets, and what it
	// shows loads back.
	var out bytes.Buffer
	c.Dump(&out)
	for _, secret := range []string{"secret", "cluster-nonce", "d2ZvcmNl"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("dump shows %q:\n%s", secret, out.String())
		}
	}
	back, err := LoadBytes("dump.conf", out.Bytes())
	if err != nil {
		t.Fatalf("dump does not load: %v\n%s", err, out.String())
	}
	bp := back.Auth.Policy
	if bp.URL != "https://wforce:xxxxx@policy.example.com:8084/?" || bp.Nonce != "<hidden>" || bp.HashTruncate != 16 ||
		bp.Attributes.String() != attrs.String() || !bp.LogOnly || bp.CheckBeforeAuth {
		t.Errorf("loaded back %+v", bp)
	}
}

func TestAuthSettings(t *testing.T) {
	c := mustLoad(t, minimal+`
base_dir = /var/run/authd/
auth_mechanisms = plain Login,cram-md5   scram-sha-256 PLAIN
auth_realms = example.com  example.org
auth_default_realm = example.com
auth_username_chars =
auth_username_translation = %@
auth_username_format = %Ln
auth_master_user_separator = *
auth_anonymous_username = guest
auth_failure_delay = 0
auth_cache_size = 10M
auth_cache_ttl = 30 mins
auth_cache_negative_ttl = 1 min
auth_cache_verify_password_with_worker = yes
auth_cache_password_fingerprint = no
auth_ssl_require_client_cert = y
auth_ssl_username_from_cert = 1
auth_debug_passwords = yes
auth_verbose_passwords = yes
first_valid_uid = 1000
last_valid_uid = 60000
first_valid_gid = 100
last_valid_gid = 70000
auth_worker_max_count = 5
log_format = json
shutdown_timeout = 500 ms
`)
	a := c.Auth
	want := Auth{
		Mechanisms:                     []string{"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"},
		Realms:                         []string{"example.com", "example.org"},
		DefaultRealm:                   "example.com",
		UsernameTranslation:            "%@",
		UsernameFormat:                 "%Ln",
		MasterUserSeparator:            "*",
		AnonymousUsername:              "guest",
		CacheSize:                      10 << 20,
		CacheTTL:                       30 * time.Minute,
		CacheNegativeTTL:               time.Minute,
		CacheVerifyPasswordWithWorker:  true,
		SSLRequireClientCert:           true,
		SSLUsernameFromCert:            true,
		Verbose:                        true, // implied, as in Dovecot
		Debug:                          true, // implied
		DebugPasswords:                 true,
		VerbosePasswords:               "plain", // yes is an alias
		FirstValidUID:                  1000,
		LastValidUID:                   60000,
		FirstValidGID:                  100,
		LastValidGID:                   70000,
		WorkerMaxCount:                 5,
		CacheVerifyPasswordFingerprint: false,
		Policy:                         defaultPolicy(t),
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("Auth:\n got %+v\nwant %+v", a, want)
	}
	if c.BaseDir != "/var/run/authd" || c.Log.Format != "json" || c.ShutdownTimeout != 500*time.Millisecond {
		t.Errorf("BaseDir %q Log %q ShutdownTimeout %v", c.BaseDir, c.Log.Format, c.ShutdownTimeout)
	}
	if c.Listeners[0].Path != "/var/run/authd/auth-client" {
		t.Errorf("listener path %q", c.Listeners[0].Path)
	}
}

func TestBadValues(t *testing.T) {
	_, err := LoadBytes("t.conf", []byte(minimal+`auth_cache_size = 10 X
auth_cache_ttl = 30
auth_failure_delay = 2500 ms
auth_debug = true
first_valid_uid = -1
auth_worker_max_count = 0
auth_mechanisms = plain gssapi foo
auth_verbose_passwords = sha1:0
log_format = xml
base_dir = run/authd
auth_mechanisms_typo = plain
auth_cache_ttl = $nope
ssl_cert = $nope2
`))
	checkErrs(t, err, []string{
		`t.conf:4: auth_cache_size: invalid size "10 X"`,
		`t.conf:5: auth_cache_ttl: time interval "30" is missing units`,
		`t.conf:6: auth_failure_delay: milliseconds are not supported`,
		`t.conf:7: auth_debug: invalid boolean value "true" (use yes or no)`,
		`t.conf:8: first_valid_uid: invalid number "-1"`,
		`t.conf:9: auth_worker_max_count: must be above zero`,
		`t.conf:10: auth_mechanisms: mechanism GSSAPI is not supported by authd; unknown authentication mechanism "FOO"`,
		`t.conf:11: auth_verbose_passwords: invalid truncation number "0"`,
		`t.conf:12: log_format: invalid value "xml"`,
		`t.conf:13: base_dir: must be an absolute path`,
		`t.conf:14: unknown setting "auth_mechanisms_typo" (did you mean "auth_mechanisms"?)`,
		`t.conf:15: auth_cache_ttl: unknown variable: $nope`,
		`t.conf:16: ssl_cert: unknown variable: $nope2`,
	})
}

func TestSemanticChecks(t *testing.T) {
	tests := []struct {
		name, conf string
		errs       []string
	}{
		{"no passdb", "auth_mechanisms = plain\n", []string{"t.conf: no passdb configured"}},
		{"only master passdb", "passdb {\n driver = pam\n master = yes\n}\n", []string{"t.conf: no passdb configured"}},
		{"anonymous only needs no passdb", "auth_mechanisms = anonymous\n", nil},
		{"anonymous without user", minimal + "auth_mechanisms = anonymous\nauth_anonymous_username =\n",
			[]string{"t.conf:4: ANONYMOUS is listed in auth_mechanisms, but auth_anonymous_username is empty"}},
		{"cache too small", minimal + "auth_cache_size = 100B\n", []string{"t.conf:4: auth_cache_size value is too small (100 bytes)"}},
		{"missing driver", "passdb {\n args = x\n}\nuserdb {\n}\n", []string{"t.conf:1: passdb is missing driver", "t.conf:4: userdb is missing driver"}},
		{"driver not a name", "passdb {\n driver = a\rb\n}\nuserdb {\n driver = pass wd\n}\n", []string{"t.conf:1: passdb: driver \"a\\rb\" is not a driver name (letters, digits, - and _)", "t.conf:4: userdb: driver \"pass wd\" is not a driver name (letters, digits, - and _)"}},
		{"last pass=yes", "passdb {\n driver = pam\n pass = yes\n}\n", []string{"t.conf:1: the last passdb can't have pass=yes"}},
		{"pass with result_success", "passdb {\n driver = pam\n pass = yes\n result_success = return\n}\n" + minimal,
			[]string{"t.conf:1: obsolete pass=yes mixed with non-default result_success"}},
		{"master deny", minimal + "passdb {\n driver = x\n master = yes\n deny = yes\n}\n", []string{"t.conf:4: a master passdb can't have deny=yes"}},
		{"master pass without normal", "auth_mechanisms = anonymous\npassdb {\n driver = x\n master = yes\n pass = yes\n}\n",
			[]string{"t.conf:2: a master passdb can't have pass=yes if there are no other passdbs"}},
		{"bad passdb values", `passdb foo {
  driver = sql
  skip = found
  result_success = ok
  result_failure = continue-ok
  result_internalfail = Return
  auth_verbose = maybe
  deny = 0
  mechanisms = plain foo
  bogus = 1
  unix_listener x {
  }
}
`, []string{
			`t.conf:3: skip: invalid value "found" (use never, authenticated, unauthenticated)`,
			`t.conf:4: result_success: invalid value "ok" (use return, return-ok, return-fail, continue, continue-ok, continue-fail)`,
			`t.conf:6: result_internalfail: invalid value "Return"`,
			`t.conf:7: auth_verbose: invalid value "maybe" (use default, yes, no)`,
			`t.conf:8: deny: invalid boolean value "0"`,
			`t.conf:9: mechanisms: unknown authentication mechanism "FOO"`,
			`t.conf:10: unknown setting "bogus" in passdb { }`,
			`t.conf:11: section "unix_listener" is not allowed in passdb { }`,
		}},
		{"passdb-only keys in userdb", minimal + "userdb {\n driver = passwd\n skip = authenticated\n deny = yes\n master = no\n}\n", []string{
			`t.conf:6: skip: invalid value "authenticated" (use never, found, notfound)`,
			`t.conf:7: unknown setting "deny" in userdb { }`,
			`t.conf:8: unknown setting "master" in userdb { }`,
		}},
		{"auth in protocol", minimal + "protocol imap {\n auth_mechanisms = login\n passdb {\n  driver = x\n }\n mail_plugins = $mail_plugins quota\n}\n", []string{
			"t.conf:5: auth_mechanisms inside protocol imap { }: authd does not support per-protocol auth settings",
			"t.conf:6: passdb inside protocol imap { }: authd does not support per-protocol auth settings",
		}},
		{"auth in local", minimal + "local 10.0.0.0/8 {\n auth_verbose = yes\n}\n", []string{
			"t.conf:5: auth_verbose inside local 10.0.0.0/8 { }: auth settings are not supported inside local/remote blocks",
		}},
		{"filter nesting", minimal + "protocol imap {\n protocol pop3 {\n }\n remote 1.2.3.4 {\n }\n}\nremote 1.2.3.4 {\n local 1.2.3.4 {\n }\n}\nlocal {\n}\n", []string{
			"t.conf:5: nested protocol { protocol { } } is not allowed",
			"t.conf:7: protocol { remote { } } is not allowed",
			"t.conf:11: remote { local { } } is not allowed",
			"t.conf:14: local { } needs a name",
		}},
		{"unknown things", minimal + "frobnicate {\n}\nservice {\n}\nservice imap-login {\n bogus = 1\n inet_listener imap {\n  port = 0\n  nope = 1\n }\n}\nplugin {\n anything = goes\n sub {\n }\n}\nnamespace inbox {\n mailbox Sent {\n  special_use = \\Sent\n  bad = 1\n }\n}\n", []string{
			`t.conf:4: unknown section "frobnicate"`,
			`t.conf:6: service { } needs a name`,
			`t.conf:9: unknown setting "bogus" in service { }`,
			`t.conf:12: unknown setting "nope" in inet_listener { }`,
			`t.conf:17: section "sub" is not allowed in plugin { }`,
			`t.conf:23: unknown setting "bad" in mailbox { }`,
		}},
		{"dovecot 1.x auth section", minimal + "auth default {\n mechanisms = plain\n}\n", []string{"t.conf:4: the Dovecot 1.x auth { } section is not supported"}},
		{"policy server without nonce", minimal + "auth_policy_hash_mech = md5\n\nauth_policy_server_url = http://x/\n", []string{"t.conf:6: auth_policy_hash_nonce must be set"}},
		{"policy hash", minimal + "auth_policy_server_url = https://x/\nauth_policy_hash_nonce = n\nauth_policy_hash_mech = SHA256\n", []string{`t.conf:6: auth_policy_hash_mech: unknown hash "SHA256"`}},
		{"policy truncate", minimal + "auth_policy_server_url = https://x/\nauth_policy_hash_nonce = n\nauth_policy_hash_mech = md5\nauth_policy_hash_truncate = 128\n", []string{"t.conf:7: auth_policy_hash_truncate is not smaller than the digest size (128 >= 128)"}},
		{"policy values", minimal + "auth_policy_server_url = ftp://x/\nauth_policy_server_timeout_msecs = 2s\nauth_policy_request_attributes = login=%u pwhash\nauth_policy_server_api_header = Bad Name:v\nauth_policy_log_only = maybe\nauth_policy_request_attributes = login=%{nosuch}\n", []string{
			`t.conf:4: auth_policy_server_url: "ftp://x/" is not an http:// or https:// URL`,
			`t.conf:5: auth_policy_server_timeout_msecs:`,
			`t.conf:6: auth_policy_request_attributes: "pwhash" is not a list of key=value pairs`,
			`t.conf:7: auth_policy_server_api_header: "Bad Name" is not a valid header name`,
			`t.conf:8: auth_policy_log_only:`,
			`t.conf:9: auth_policy_request_attributes: login: unknown variable nosuch`,
		}},
		// Checked only when a server is set, as Dovecot checks them.
		{"policy off", minimal + "auth_policy_hash_mech = nonsense\nauth_policy_hash_truncate = 9999\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadBytes("t.conf", []byte(tt.conf))
			checkErrs(t, err, tt.errs)
		})
	}
}

func TestDBs(t *testing.T) {
	c := mustLoad(t, `
passdb master {
  driver = passwd-file
  master = yes
  pass = yes
  args = /etc/dovecot/master-users
}
passdb {
  driver = sql
  name = main
  args = /etc/dovecot/dovecot-sql.conf.ext
  mechanisms = plain, login none
  username_filter = *@example.com !root@*
  skip = unauthenticated
  result_success = continue-ok
  result_failure = return-fail
  result_internalfail = return
  default_fields = home=/var/vmail/%d/%n quota_rule=*:storage=1G
  override_fields = mail=maildir:~/Maildir
  auth_verbose = yes
}
passdb {
  driver = passwd-file
  deny = yes
  args = /etc/dovecot/deny-users
}
userdb "static one" {
  driver = static
  args = uid=vmail gid=vmail home=/var/vmail/%d/%n
  skip = found
}
`)
	if len(c.Passdbs) != 3 || len(c.Userdbs) != 1 {
		t.Fatalf("passdbs %d userdbs %d", len(c.Passdbs), len(c.Userdbs))
	}
	m := c.Passdbs[0]
	if m.Name != "master" || !m.Master || !m.Pass || m.ResultSuccess != RuleContinue || m.Pos.Line != 2 {
		t.Errorf("master passdb %+v", m)
	}
	p := c.Passdbs[1]
	want := DB{
		Name: "main", Driver: "sql", Args: "/etc/dovecot/dovecot-sql.conf.ext",
		Mechanisms: []string{"PLAIN", "LOGIN", "NONE"}, UsernameFilter: []string{"*@example.com", "!root@*"},
		Skip: SkipUnauthenticated, ResultSuccess: RuleContinueOK, ResultFailure: RuleReturnFail, ResultInternalfail: RuleReturn,
		DefaultFields: "home=/var/vmail/%d/%n quota_rule=*:storage=1G", OverrideFields: "mail=maildir:~/Maildir",
		AuthVerbose: VerboseYes, Pos: Pos{File: "t.conf", Line: 8},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("passdb:\n got %+v\nwant %+v", p, want)
	}
	if !c.Passdbs[2].Deny {
		t.Errorf("deny passdb %+v", c.Passdbs[2])
	}
	u := c.Userdbs[0]
	if u.Name != "static one" || u.Driver != "static" || u.Skip != SkipFound || u.Args != "uid=vmail gid=vmail home=/var/vmail/%d/%n" {
		t.Errorf("userdb %+v", u)
	}
}

func TestListeners(t *testing.T) {
	c := mustLoad(t, minimal+`
service auth {
  user = $default_internal_user
  client_limit = 1000
  unix_listener auth-userdb {
    mode = 0660
    user = vmail
    group = mail
  }
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
  unix_listener sub/auth-master {
  }
  unix_listener custom {
    path = other-userdb
    user = $default_internal_user
  }
}
service auth {
  unix_listener auth-userdb {
    mode = 0666
  }
}
base_dir = /srv/authd
`)
	byName := map[string]Listener{}
	for _, l := range c.Listeners {
		byName[l.Name] = l
	}
	check := func(name string, want Listener) {
		t.Helper()
		got, ok := byName[name]
		if !ok {
			t.Errorf("no listener %q in %+v", name, c.Listeners)
			return
		}
		want.Name = name
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
	// A default listener modified by two blocks, resolved with the final
	// base_dir (set after the blocks), keeps the position of its first block.
	check("auth-userdb", Listener{Path: "/srv/authd/auth-userdb", Role: RoleUserdb, Mode: 0o666, User: "vmail", Group: "mail", Pos: Pos{File: "t.conf", Line: 8}})
	check("/var/spool/postfix/private/auth", Listener{Path: "/var/spool/postfix/private/auth", Role: RoleClient, Mode: 0o660, User: "postfix", Group: "postfix", Pos: Pos{File: "t.conf", Line: 13}})
	check("sub/auth-master", Listener{Path: "/srv/authd/sub/auth-master", Role: RoleMaster, Mode: 0o600, Pos: Pos{File: "t.conf", Line: 18}})
	check("other-userdb", Listener{Path: "/srv/authd/other-userdb", Role: RoleUserdb, Mode: 0o600, User: "dovecot", Pos: Pos{File: "t.conf", Line: 20}})
	check("auth-client", Listener{Path: "/srv/authd/auth-client", Role: RoleClient, Mode: 0o600})
	if len(c.Listeners) != 8 {
		t.Errorf("%d listeners: %+v", len(c.Listeners), c.Listeners)
	}
	for _, want := range []string{"service auth/client_limit", "service auth/user"} {
		if !slices.Contains(c.Ignored, want) {
			t.Errorf("Ignored %v lacks %q", c.Ignored, want)
		}
	}
}

func TestListenerErrors(t *testing.T) {
	_, err := LoadBytes("t.conf", []byte(minimal+`service auth {
  inet_listener auth-login {
    port = 1234
  }
  fifo_listener x {
  }
  unix_listener {
  }
  unix_listener a {
    mode = 666
    owner = x
  }
  unix_listener /run/authd/auth-master {
  }
  bogus = 1
}
`))
	checkErrs(t, err, []string{
		"t.conf:5: inet_listener auth-login: authd serves only the client protocol over TCP",
		"t.conf:8: fifo_listener in service auth is not supported",
		"t.conf:10: unix_listener needs a name",
		"t.conf:13: mode: 666 is 01232, which is not a permission mode",
		`t.conf:14: unknown setting "owner" in unix_listener { }`,
		"t.conf:16: unix_listener /run/authd/auth-master: socket path /run/authd/auth-master is already used by unix_listener auth-master",
		`t.conf:18: unknown setting "bogus" in service auth { }`,
	})
}

func TestListenerWarnings(t *testing.T) {
	c := mustLoad(t, minimal+`service auth {
  unix_listener token-login/tokenlogin {
    mode = 0666
  }
  unix_listener decimal {
    mode = 384
  }
}
`)
	for _, l := range c.Listeners {
		if strings.Contains(l.Name, "token") {
			t.Errorf("token listener kept: %+v", l)
		}
		if l.Name == "decimal" && l.Mode != 0o600 {
			t.Errorf("decimal mode = %o", l.Mode)
		}
	}
	if len(c.Warnings) != 2 ||
		!strings.Contains(c.Warnings[0].Error(), "t.conf:5: unix_listener token-login/tokenlogin: Dovecot's token sockets are not supported") ||
		!strings.Contains(c.Warnings[1].Error(), "t.conf:9: mode 384 has no leading 0 and is read as decimal (0600)") {
		t.Errorf("warnings: %v", c.Warnings)
	}
}

func TestVariables(t *testing.T) {
	t.Setenv("AUTHD_TEST_SQL", "/etc/authd/sql.conf")
	c := mustLoad(t, minimal+`
auth_mechanisms = $auth_mechanisms login
auth_realms = $auth_mechanisms
auth_mechanisms = $auth_mechanisms cram-md5
default_internal_user = mailer
mail_plugins = $mail_plugins quota
protocol imap {
  mail_plugins = $mail_plugins imap_quota
}
auth_default_realm = $hostname
userdb {
  driver = sql
  args = $ENV:AUTHD_TEST_SQL
  default_fields = uid=$default_internal_user   home=/x pass$word
}
`)
	if got := strings.Join(c.Auth.Mechanisms, " "); got != "PLAIN LOGIN CRAM-MD5" {
		t.Errorf("mechanisms %q", got)
	}
	// A reference takes the value at that point of the file.
	if got := strings.Join(c.Auth.Realms, " "); got != "plain login" {
		t.Errorf("realms %q", got)
	}
	if c.Auth.DefaultRealm != "" { // Dovecot's default hostname is empty
		t.Errorf("default realm %q", c.Auth.DefaultRealm)
	}
	u := c.Userdbs[0]
	if u.Args != "/etc/authd/sql.conf" || u.DefaultFields != "uid=$default_internal_user home=/x pass$word" {
		t.Errorf("userdb %+v", u)
	}
}

func TestFileValues(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"authd.conf": `!include conf.d/auth.conf
ssl_cert = </nonexistent/cert.pem
ssl_key = <private/missing.key
`,
		"conf.d/auth.conf": `auth_username_chars = <chars.txt
passdb {
  driver = passwd-file
  args = < args.txt
}
`,
		"conf.d/chars.txt": "abc@\n\n",
		"conf.d/args.txt":  "scheme=SHA512-CRYPT /etc/users\n",
	})
	c, err := Load(filepath.Join(dir, "authd.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.UsernameChars != "abc@" || c.Passdbs[0].Args != "scheme=SHA512-CRYPT /etc/users" {
		t.Errorf("chars %q args %q", c.Auth.UsernameChars, c.Passdbs[0].Args)
	}
	wantFiles := []string{
		filepath.Join(dir, "authd.conf"), filepath.Join(dir, "conf.d/auth.conf"),
		filepath.Join(dir, "conf.d/chars.txt"), filepath.Join(dir, "conf.d/args.txt"),
	}
	if !reflect.DeepEqual(c.Files, wantFiles) {
		t.Errorf("Files %v", c.Files)
	}
	if !slices.Contains(c.Ignored, "ssl_cert") || !slices.Contains(c.Ignored, "ssl_key") {
		t.Errorf("Ignored %v", c.Ignored)
	}

	_, err = LoadBytes(filepath.Join(dir, "x.conf"), []byte(minimal+"auth_realms = <nope.txt\n"))
	checkErrs(t, err, []string{"x.conf:4: auth_realms: can't read " + filepath.Join(dir, "nope.txt") + ": no such file or directory"})
}

// TestCheckReportsAllMistakes is what `authd check` relies on: mistakes in
// several files are all reported, each at its own file:line.
func TestCheckReportsAllMistakes(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"authd.conf": `# authd
auth_mechanisms = plain login
auth_cache_ttl = 1 hour
!include auth-sql.conf.ext

auth_failure_delay = 2 sex
auth_verbos = yes
`,
		"auth-sql.conf.ext": `passdb {
  driver = sql
  args = /etc/dovecot/dovecot-sql.conf.ext
  result_failure = contine
}
`,
	})
	main := filepath.Join(dir, "authd.conf")
	_, err := Load(main)
	list := AsErrorList(err)
	want := []string{
		main + `:6: auth_failure_delay: invalid time interval "2 sex"`,
		main + `:7: unknown setting "auth_verbos" (did you mean "auth_verbose"?)`,
		filepath.Join(dir, "auth-sql.conf.ext") + `:4: result_failure: invalid value "contine" (use return, return-ok, return-fail, continue, continue-ok, continue-fail)`,
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The list is an error whose text has one problem per line.
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestDesignSample(t *testing.T) {
	design, err := os.ReadFile(filepath.Join("testdata", "design-sample.conf"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(filepath.Join("testdata", "design-sample.conf"))
	if err != nil {
		t.Fatalf("%v\n%s", err, design)
	}
	if got := strings.Join(c.Auth.Mechanisms, " "); got != "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256" {
		t.Errorf("mechanisms %q", got)
	}
	if c.Auth.CacheSize != 10<<20 || c.Auth.CacheTTL != 30*time.Minute || c.Auth.CacheNegativeTTL != 30*time.Minute || c.Auth.FailureDelay != 2*time.Second {
		t.Errorf("auth %+v", c.Auth)
	}
	if len(c.Passdbs) != 1 || c.Passdbs[0].Driver != "sql" || c.Passdbs[0].Pos.File != filepath.Join("testdata", "auth-sql.conf.ext") {
		t.Errorf("passdbs %+v", c.Passdbs)
	}
	if len(c.Userdbs) != 1 || c.Userdbs[0].OverrideFields != "uid=vmail gid=vmail home=/var/mail/%n/" {
		t.Errorf("userdbs %+v", c.Userdbs)
	}
	var postfix *Listener
	for i, l := range c.Listeners {
		if l.Name == "/var/spool/postfix/private/auth" {
			postfix = &c.Listeners[i]
		}
		if l.Name == "auth-userdb" && l.Mode != 0o666 {
			t.Errorf("auth-userdb %+v", l)
		}
	}
	if postfix == nil || postfix.Role != RoleClient || postfix.Mode != 0o660 || postfix.User != "postfix" || postfix.Group != "postfix" {
		t.Errorf("postfix listener %+v", postfix)
	}
	wantG := DefaultGRPC()
	wantG.Listen, wantG.TLSCertFile, wantG.TLSKeyFile = "127.0.0.1:9389", "/etc/authd/tls.crt", "/etc/authd/tls.key"
	wantG.TLSClientCAFile, wantG.Pos = "/etc/authd/clients-ca.crt", c.GRPC.Pos
	if !reflect.DeepEqual(c.GRPC, wantG) || c.Metrics.Listen != "127.0.0.1:9390" {
		t.Errorf("grpc %+v metrics %+v", c.GRPC, c.Metrics)
	}
}

func TestGRPC(t *testing.T) {
	tests := []struct {
		conf string
		errs []string
	}{
		{"grpc {\n listen = 127.0.0.1:9389\n}\n", nil},
		{"grpc {\n listen = [::1]:9389\n}\n", nil},
		{"grpc {\n listen = localhost:9389\n}\n", nil},
		{"grpc {\n listen = :9389\n}\n", []string{"grpc: listen = :9389 is not a loopback address and TLS is off"}},
		{"grpc {\n listen = 0.0.0.0:9389\n allow_plaintext_remote = yes\n}\n", nil},
		{"grpc {\n listen = 0.0.0.0:9389\n tls_cert_file = a\n tls_key_file = b\n}\n", nil},
		{"grpc {\n listen = 127.0.0.1:9389\n tls_cert_file = a\n}\n", []string{"grpc: tls_cert_file and tls_key_file must be set together"}},
		{"grpc {\n listen = 127.0.0.1:9389\n tls_client_ca_file = a\n}\n", []string{"grpc: tls_client_ca_file needs tls_cert_file"}},
		{"grpc {\n listen = 9389\n}\n", []string{`listen: "9389" is not host:port`}},
		{"grpc {\n listen = x:99999999\n}\n", []string{`listen: "x:99999999" has an invalid port`}},
		{"grpc x {\n tls = yes\n}\nmetrics {\n listen = nope\n path = /m\n}\n", []string{
			"grpc { } takes no name", `unknown setting "tls" in grpc { }`, `listen: "nope" is not host:port`, `unknown setting "path" in metrics { }`}},
	}
	for _, tt := range tests {
		_, err := LoadBytes("t.conf", []byte(minimal+tt.conf))
		t.Run(tt.conf, func(t *testing.T) { checkErrs(t, err, tt.errs) })
	}
}

func TestObsoleteAndIgnored(t *testing.T) {
	c := mustLoad(t, minimal+`auth_cache_size = 10
ssl_protocols = !SSLv3
mail_cache_compress_min_size = 1k
auth_socket_path = /run/dovecot/auth-userdb
protocol lda {
  auth_socket_path = /run/authd/auth-userdb
  first_valid_uid = 1000
}
`)
	if c.Auth.CacheSize != 10<<20 {
		t.Errorf("CacheSize %d", c.Auth.CacheSize)
	}
	if c.Auth.FirstValidUID != 500 {
		t.Errorf("first_valid_uid inside protocol lda changed authd's: %d", c.Auth.FirstValidUID)
	}
	wantIgnored := []string{"auth_socket_path", "mail_cache_compress_min_size", "protocol lda", "ssl_protocols"}
	if !reflect.DeepEqual(c.Ignored, wantIgnored) {
		t.Errorf("Ignored %v", c.Ignored)
	}
	if len(c.Warnings) != 3 || !strings.Contains(c.Warnings[0].Error(), "t.conf:4: auth_cache_size = 10 is read as 10M") {
		t.Errorf("Warnings %v", c.Warnings)
	}
}

func TestDumpRoundTrip(t *testing.T) {
	conf := `base_dir = /srv/authd
auth_mechanisms = plain login anonymous
auth_realms = a b
auth_username_chars =
auth_username_format = "%Lu"
auth_master_user_separator = *
auth_cache_size = 10M
auth_cache_ttl = 90 secs
auth_verbose = yes
auth_verbose_passwords = sha1:8
shutdown_timeout = 1500 ms
passdb master {
  driver = passwd-file
  master = yes
  pass = yes
  args = /etc/master-users
}
passdb "with space" {
  driver = static
  args = password=s3cr#t$x nopassword=y
  mechanisms = plain
  default_fields = userdb_password=x quota_rule=*:storage=1G
}
userdb {
  driver = static
  args = uid=vmail gid=vmail home=/var/vmail/%d/%n
  skip = notfound
}
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
  }
}
grpc {
  listen = 127.0.0.1:9389
}
metrics {
  listen = 127.0.0.1:9390
}
`
	c := mustLoad(t, conf)
	var out bytes.Buffer
	c.Dump(&out)
	dump := out.String()
	for _, secret := range []string{"s3cr", "userdb_password=x"} {
		if strings.Contains(dump, secret) {
			t.Errorf("dump shows %q:\n%s", secret, dump)
		}
	}
	for _, want := range []string{"password=<hidden>", "userdb_password=<hidden>", "auth_debug_passwords = no", "pass = yes", "mode = 0660"} {
		if !strings.Contains(dump, want) {
			t.Errorf("dump lacks %q:\n%s", want, dump)
		}
	}
	back, err := LoadBytes("dump.conf", out.Bytes())
	if err != nil {
		t.Fatalf("dump does not load: %v\n%s", err, dump)
	}
	// Equal apart from positions and the hidden secrets.
	strip := func(c *Config) {
		c.Warnings, c.Files, c.SettingPos = nil, nil, nil
		c.GRPC.Pos, c.Metrics.Pos, c.Penalty.Pos = Pos{}, Pos{}, Pos{}
		for i := range c.Passdbs {
			c.Passdbs[i].Pos = Pos{}
			c.Passdbs[i].Args = hideWords(c.Passdbs[i].Args)
			c.Passdbs[i].DefaultFields = hideWords(c.Passdbs[i].DefaultFields)
		}
		for i := range c.Userdbs {
			c.Userdbs[i].Pos = Pos{}
		}
		for i := range c.Listeners {
			c.Listeners[i].Pos = Pos{}
		}
	}
	strip(c)
	strip(back)
	if !reflect.DeepEqual(c, back) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v\ndump:\n%s", back, c, dump)
	}
}
