package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/internal/policy"
)

// secret24 reports whether a 2.4 setting holds a secret: passwords (not
// the password scheme, and not auth_verbose_passwords), secrets, nonces.
func secret24(key string) bool {
	k := strings.ToLower(key)
	switch {
	case strings.Contains(k, "scheme") || k == "auth_verbose_passwords":
		return false
	case strings.Contains(k, "password"), strings.Contains(k, "secret"), strings.Contains(k, "nonce"):
		return true
	}
	return false
}

// kv24 writes key = value with a secret's value hidden (empty values and
// booleans stay: there is nothing to hide).
func (d *dumper) kv24(key, value string) {
	if d.o.Minimal && d.isDefault24(key, value) {
		return
	}
	d.notes(key)
	switch {
	case d.o.Secrets && strings.ContainsAny(value, "\r\n"):
		d.line(key + " = " + quoteValue(value)) // a multi-line value is quoted on one line
	case d.o.Secrets:
		d.line(key + " = " + quoteValue(value))
	case secret24(key) && value != "" && value != "yes" && value != "no":
		d.line(key + " = # hidden")
	case strings.ContainsAny(value, "\r\n"):
		d.line(key + " = # multi-line value not shown")
	default:
		d.line(key + " = " + quoteValue(value))
	}
}

// authdKV24 writes one of authd's own top-level settings, unless only
// Dovecot's are wanted.
func (d *dumper) authdKV24(key, value string) {
	if !d.o.DovecotOnly {
		d.kv24(key, value)
	}
}

// dump24 writes the effective configuration of a Dovecot 2.4 file in 2.4
// syntax. Secrets are not printed (see secret24).
func (d *dumper) dump24(c *Config) {
	a := &c.Auth
	d.line(conffile.ConfigVersionKey + " = " + c.ConfigVersion)
	if d.o.Minimal {
		for _, h := range d.o.Header {
			d.line("# " + h)
		}
	} else {
		d.line("# authd effective configuration (Dovecot 2.4 syntax)")
	}
	d.kv24("base_dir", c.BaseDir)
	d.kv24("default_login_user", c.LoginUser)
	d.kv24("auth_mechanisms", strings.ToLower(strings.Join(a.Mechanisms, " ")))
	d.kv24("auth_realms", strings.Join(a.Realms, " "))
	d.kv24("auth_default_domain", a.DefaultRealm)
	d.kv24("auth_username_chars", a.UsernameChars)
	d.kv24("auth_username_translation", a.UsernameTranslation)
	d.kv24("auth_username_format", a.UsernameFormat)
	for _, proto := range sortedKeys(a.ProtocolUsernameFormat) {
		d.open("protocol", proto)
		d.kv24("auth_username_format", a.ProtocolUsernameFormat[proto])
		d.close()
	}
	d.kv24("auth_master_user_separator", a.MasterUserSeparator)
	d.kv24("auth_anonymous_username", a.AnonymousUsername)
	d.kv24("auth_allow_cleartext", yesNo(a.AllowCleartext))
	d.kv24("auth_allow_weak_schemes", yesNo(a.AllowWeakSchemes))
	d.kv24("auth_failure_delay", conffile.FormatDuration(a.FailureDelay))
	d.kv24("auth_internal_failure_delay", conffile.FormatDuration(a.InternalFailureDelay))
	d.kv24("auth_cache_size", conffile.FormatSize(a.CacheSize))
	d.kv24("auth_cache_ttl", conffile.FormatDuration(a.CacheTTL))
	d.kv24("auth_cache_negative_ttl", conffile.FormatDuration(a.CacheNegativeTTL))
	d.kv24("auth_cache_verify_password_with_worker", yesNo(a.CacheVerifyPasswordWithWorker))
	d.authdKV24("auth_cache_password_fingerprint", yesNo(a.CacheVerifyPasswordFingerprint))
	d.kv24("auth_ssl_require_client_cert", yesNo(a.SSLRequireClientCert))
	d.kv24("auth_ssl_username_from_cert", yesNo(a.SSLUsernameFromCert))
	d.kv24("auth_verbose", yesNo(a.Verbose))
	d.kv24("auth_debug", yesNo(a.Debug))
	d.kv24("auth_debug_passwords", yesNo(a.DebugPasswords))
	d.kv24("auth_verbose_passwords", a.VerbosePasswords)
	d.kv24("first_valid_uid", fmt.Sprint(a.FirstValidUID))
	d.kv24("last_valid_uid", fmt.Sprint(a.LastValidUID))
	d.kv24("first_valid_gid", fmt.Sprint(a.FirstValidGID))
	d.kv24("last_valid_gid", fmt.Sprint(a.LastValidGID))
	d.policy24(a.Policy)
	d.authdKV24("log_format", c.Log.Format)
	d.authdKV24("shutdown_timeout", conffile.FormatDuration(c.ShutdownTimeout))
	d.settings24(c.OAuth2)
	for _, db := range c.Passdbs {
		d.db24("passdb", db, true)
	}
	for _, db := range c.Userdbs {
		d.db24("userdb", db, false)
	}
	d.authdSections(c)
}

// settings24 writes driver settings: `key = value`, and the entries of a
// list setting (key/name) in one section per run of entries.
func (d *dumper) settings24(l []DriverSetting) {
	open := ""
	for _, s := range l {
		list, name, isList := strings.Cut(s.Key, "/")
		if open != "" && (!isList || list != open) {
			d.close()
			open = ""
		}
		if !isList {
			d.kv24(s.Key, s.Value)
			continue
		}
		if open == "" {
			d.open(list, "")
			open = list
		}
		d.kv24(name, s.Value)
	}
	if open != "" {
		d.close()
	}
}

// oauth2Dump24 is an oauth2 block's settings as they are written: the
// HTTP/TLS client's in an oauth2 { } section, the only place they are
// read back from (setting24), after the others.
func oauth2Dump24(db DB) []DriverSetting {
	if db.Driver != "oauth2" {
		return db.DriverSettings
	}
	var own, client []DriverSetting
	for _, s := range db.DriverSettings {
		if oauth2Client24(s.Key) {
			s.Key = "oauth2/" + s.Key
			client = append(client, s)
			continue
		}
		own = append(own, s)
	}
	return append(own, client...)
}

// policy24 writes the auth_policy_* settings in 2.4's form.
func (d *dumper) policy24(p policy.Settings) {
	hidden := func(v string) string {
		if v == "" || d.o.Secrets {
			return v
		}
		return "<hidden>"
	}
	url := p.URL
	if !d.o.Secrets {
		url = redactURL(url)
	}
	d.kv24("auth_policy_server_url", url)
	d.kv24("auth_policy_server_api_header", hidden(p.APIHeader))
	d.kv24("auth_policy_hash_mech", p.HashMech)
	d.kv24("auth_policy_hash_nonce", hidden(p.Nonce))
	d.kv24("auth_policy_hash_truncate", strconv.Itoa(p.HashTruncate))
	d.kv24("auth_policy_reject_on_fail", yesNo(p.RejectOnFail))
	d.kv24("auth_policy_check_before_auth", yesNo(p.CheckBeforeAuth))
	d.kv24("auth_policy_check_after_auth", yesNo(p.CheckAfterAuth))
	d.kv24("auth_policy_report_after_auth", yesNo(p.ReportAfterAuth))
	d.kv24("auth_policy_log_only", yesNo(p.LogOnly))
	d.open("auth_policy", "")
	d.kv24("http_client_request_absolute_timeout", conffile.FormatDuration(p.Timeout))
	d.close()
	if p.Attributes != nil && !(d.o.Minimal && slices.Equal(p.Attributes.Pairs(), defaultPolicyAttributes24)) {
		d.open("auth_policy_request_attributes", "")
		for _, kv := range p.Attributes.Pairs() {
			d.kv24(kv[0], kv[1])
		}
		d.close()
	}
}

func (d *dumper) db24(kind string, db DB, passdb bool) {
	if db.Name == "" && db.Pos == (Pos{}) {
		return // the stand-in userdb of a configuration without one
	}
	d.open(kind, db.Name)
	d.flush() // a block is written even when every setting is a default
	d.driver = db.Driver
	if !d.o.Minimal || db.Driver != db.Name {
		d.line("driver = " + quoteValue(db.Driver))
	}
	if passdb {
		d.kv24("default_password_scheme", db.DefaultPasswordScheme)
	}
	d.kv24("skip", db.Skip.String())
	d.kv24("result_success", db.ResultSuccess.String())
	d.kv24("result_failure", db.ResultFailure.String())
	d.kv24("result_internalfail", db.ResultInternalfail.String())
	d.kv24("fields_import_all", yesNo(db.FieldsImportAll))
	d.kv24("use_cache", yesNo(db.UseCache))
	d.kv24("use_worker", yesNo(db.UseWorker))
	if db.AuthVerbose != VerboseDefault {
		d.kv24("auth_verbose", db.AuthVerbose.String())
	}
	if passdb {
		d.kv24("mechanisms_filter", strings.ToLower(strings.Join(db.Mechanisms, " ")))
		d.kv24("username_filter", strings.Join(db.UsernameFilter, " "))
		d.kv24("deny", yesNo(db.Deny))
		d.kv24("master", yesNo(db.Master))
	}
	d.settings24(oauth2Dump24(db))
	if db.SQL != nil {
		d.sql24(db.SQL)
	}
	d.open("fields", "")
	for _, f := range db.Fields {
		if strings.Contains(f.Value, "%{") {
			// A template (password = %{ldap:userPassword}) is no secret.
			d.notes(f.Key)
			d.line(f.Key + " = " + quoteValue(f.Value))
			continue
		}
		d.kv24(f.Key, f.Value)
	}
	d.close()
	d.close()
	d.driver = ""
}

// blockKeys24 are the block settings whose full 2.4 name is
// passdb_KEY or userdb_KEY.
var blockKeys24 = map[string]bool{
	"default_password_scheme": true, "skip": true, "result_success": true, "result_failure": true,
	"result_internalfail": true, "fields_import_all": true, "use_cache": true, "use_worker": true,
	"mechanisms_filter": true, "username_filter": true, "deny": true, "master": true,
}

// isDefault24 reports whether value is Dovecot 2.4's default for key
// where the dumper is (the top level, a passdb/userdb block with its
// driver's defaults, an SQL host section).
func (d *dumper) isDefault24(key, value string) bool {
	name := key
	if len(d.path) > 0 {
		kind, _, _ := strings.Cut(d.path[0], " ")
		block := kind == "passdb" || kind == "userdb"
		switch {
		case block && len(d.path) == 1:
			if blockKeys24[key] {
				name = kind + "_" + key
			}
			dk := kind + "_" + strings.ReplaceAll(d.driver, "-", "_")
			if def, ok := driverDefaults24[dk][name]; ok {
				return sameValue24(value, def)
			}
		case block && len(d.path) == 2 && (strings.HasPrefix(d.path[1], "mysql ") || strings.HasPrefix(d.path[1], "pgsql ")):
		case kind == "auth_policy" && len(d.path) == 1:
			return sameValue24(value, "2s") // http_client_request_absolute_timeout
		default:
			return false
		}
	}
	def, ok := dovecot24Defaults[name]
	if !ok && len(d.path) == 0 {
		def, ok = authdDefaults[name] // authd's own top-level settings
	}
	return ok && sameValue24(value, def)
}

// sameValue24 compares a value with a default as Dovecot reads both: the
// same text, boolean, duration or size.
func sameValue24(v, def string) bool {
	if v == def || strings.EqualFold(v, def) {
		return true
	}
	if a, err := conffile.ParseBool(v); err == nil {
		b, err := conffile.ParseBool(def)
		return err == nil && a == b
	}
	if a, err := conffile.ParseDuration(v, true); err == nil {
		b, err := conffile.ParseDuration(def, true)
		return err == nil && a == b
	}
	if a, err := conffile.ParseSize(v); err == nil {
		b, err := conffile.ParseSize(def)
		return err == nil && a == b
	}
	return false
}

func (d *dumper) sql24(c *SQLConnection) {
	d.kv24("sql_driver", c.Driver)
	d.settings24(c.Settings)
	for _, h := range c.Hosts {
		d.notes(c.Driver + " " + h.Host)
		d.open(c.Driver, h.Host)
		d.flush() // the section names the host even when it holds nothing else
		d.settings24(h.Settings)
		d.close()
	}
}
