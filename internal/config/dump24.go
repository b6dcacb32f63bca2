package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/internal/policy"
)

// dump24 writes the effective configuration of a Dovecot 2.4 file in 2.4
// syntax, with the same rules for secrets as Dump.
func (d *dumper) dump24(c *Config) {
	a := &c.Auth
	d.kv(conffile.ConfigVersionKey, c.ConfigVersion)
	d.line("# authd effective configuration (Dovecot 2.4 syntax)")
	d.kv("base_dir", c.BaseDir)
	d.kv("default_login_user", c.LoginUser)
	d.kv("auth_mechanisms", strings.ToLower(strings.Join(a.Mechanisms, " ")))
	d.kv("auth_realms", strings.Join(a.Realms, " "))
	d.kv("auth_default_domain", a.DefaultRealm)
	d.kv("auth_username_chars", a.UsernameChars)
	d.kv("auth_username_translation", a.UsernameTranslation)
	d.kv("auth_username_format", a.UsernameFormat)
	for _, proto := range sortedKeys(a.ProtocolUsernameFormat) {
		d.open("protocol", proto)
		d.kv("auth_username_format", a.ProtocolUsernameFormat[proto])
		d.close()
	}
	d.kv("auth_master_user_separator", a.MasterUserSeparator)
	d.kv("auth_anonymous_username", a.AnonymousUsername)
	d.kv("auth_allow_cleartext", yesNo(a.AllowCleartext))
	d.kv("auth_allow_weak_schemes", yesNo(a.AllowWeakSchemes))
	d.kv("auth_failure_delay", conffile.FormatDuration(a.FailureDelay))
	d.kv("auth_internal_failure_delay", conffile.FormatDuration(a.InternalFailureDelay))
	d.kv("auth_cache_size", conffile.FormatSize(a.CacheSize))
	d.kv("auth_cache_ttl", conffile.FormatDuration(a.CacheTTL))
	d.kv("auth_cache_negative_ttl", conffile.FormatDuration(a.CacheNegativeTTL))
	d.kv("auth_cache_verify_password_with_worker", yesNo(a.CacheVerifyPasswordWithWorker))
	d.kv("auth_cache_password_fingerprint", yesNo(a.CacheVerifyPasswordFingerprint))
	d.kv("auth_ssl_require_client_cert", yesNo(a.SSLRequireClientCert))
	d.kv("auth_ssl_username_from_cert", yesNo(a.SSLUsernameFromCert))
	d.kv("auth_verbose", yesNo(a.Verbose))
	d.kv("auth_debug", yesNo(a.Debug))
	d.kv("auth_debug_passwords", yesNo(a.DebugPasswords))
	d.kv("auth_verbose_passwords", a.VerbosePasswords)
	d.kv("first_valid_uid", fmt.Sprint(a.FirstValidUID))
	d.kv("last_valid_uid", fmt.Sprint(a.LastValidUID))
	d.kv("first_valid_gid", fmt.Sprint(a.FirstValidGID))
	d.kv("last_valid_gid", fmt.Sprint(a.LastValidGID))
	d.policy24(a.Policy)
	d.kv("log_format", c.Log.Format)
	d.kv("shutdown_timeout", conffile.FormatDuration(c.ShutdownTimeout))
	for _, s := range c.OAuth2 {
		d.listOrKV(s)
	}
	for _, db := range c.Passdbs {
		d.db24("passdb", db, true)
	}
	for _, db := range c.Userdbs {
		d.db24("userdb", db, false)
	}
	d.authdSections(c)
}

// listOrKV writes a driver setting: `key = value`, or for an entry of a
// list setting (key/name) a one-entry section.
func (d *dumper) listOrKV(s DriverSetting) {
	if list, name, ok := strings.Cut(s.Key, "/"); ok {
		d.open(list, "")
		d.kv(name, s.Value)
		d.close()
		return
	}
	d.kv(s.Key, s.Value)
}

// policy24 writes the auth_policy_* settings in 2.4's form.
func (d *dumper) policy24(p policy.Settings) {
	hidden := func(v string) string {
		if v == "" {
			return ""
		}
		return "<hidden>"
	}
	d.kv("auth_policy_server_url", redactURL(p.URL))
	d.kv("auth_policy_server_api_header", hidden(p.APIHeader))
	d.kv("auth_policy_hash_mech", p.HashMech)
	d.kv("auth_policy_hash_nonce", hidden(p.Nonce))
	d.kv("auth_policy_hash_truncate", strconv.Itoa(p.HashTruncate))
	d.kv("auth_policy_reject_on_fail", yesNo(p.RejectOnFail))
	d.kv("auth_policy_check_before_auth", yesNo(p.CheckBeforeAuth))
	d.kv("auth_policy_check_after_auth", yesNo(p.CheckAfterAuth))
	d.kv("auth_policy_report_after_auth", yesNo(p.ReportAfterAuth))
	d.kv("auth_policy_log_only", yesNo(p.LogOnly))
	d.open("auth_policy", "")
	d.kv("http_client_request_absolute_timeout", conffile.FormatDuration(p.Timeout))
	d.close()
	if p.Attributes != nil {
		d.open("auth_policy_request_attributes", "")
		for _, kv := range p.Attributes.Pairs() {
			d.kv(kv[0], kv[1])
		}
		d.close()
	}
}

func (d *dumper) db24(kind string, db DB, passdb bool) {
	d.open(kind, db.Name)
	d.kv("driver", db.Driver)
	if passdb {
		d.kv("default_password_scheme", db.DefaultPasswordScheme)
	}
	d.kv("skip", db.Skip.String())
	d.kv("result_success", db.ResultSuccess.String())
	d.kv("result_failure", db.ResultFailure.String())
	d.kv("result_internalfail", db.ResultInternalfail.String())
	d.kv("fields_import_all", yesNo(db.FieldsImportAll))
	d.kv("use_cache", yesNo(db.UseCache))
	d.kv("use_worker", yesNo(db.UseWorker))
	if db.AuthVerbose != VerboseDefault {
		d.kv("auth_verbose", db.AuthVerbose.String())
	}
	if passdb {
		d.kv("mechanisms_filter", strings.ToLower(strings.Join(db.Mechanisms, " ")))
		d.kv("username_filter", strings.Join(db.UsernameFilter, " "))
		d.kv("deny", yesNo(db.Deny))
		d.kv("master", yesNo(db.Master))
	}
	for _, s := range db.DriverSettings {
		d.listOrKV(s)
	}
	if db.SQL != nil {
		d.sql24(db.SQL)
	}
	d.open("fields", "")
	for _, f := range db.Fields {
		d.kv(f.Key, f.Value)
	}
	d.close()
	d.close()
}

func (d *dumper) sql24(c *SQLConnection) {
	d.kv("sql_driver", c.Driver)
	for _, s := range c.Settings {
		d.listOrKV(s)
	}
	for _, h := range c.Hosts {
		d.open(c.Driver, h.Host)
		for _, s := range h.Settings {
			d.listOrKV(s)
		}
		d.close()
	}
}
