package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/internal/policy"
	"github.com/authd-project/authd/internal/vars"
)

// The top-level settings of a Dovecot 2.4 configuration that authd reads,
// and 2.4's defaults where they differ from 2.3's.

// DefaultUsernameFormat24 is Dovecot 2.4's auth_username_format default.
const DefaultUsernameFormat24 = "%{user | lower}"

// setters24 are the top-level settings whose values go into the Config.
// Most keep their 2.3 name and value syntax and share 2.3's setter.
var setters24 = func() map[string]setter {
	m := map[string]setter{}
	for _, name := range []string{
		"base_dir", "default_login_user", "auth_username_chars", "auth_username_translation",
		"auth_master_user_separator", "auth_anonymous_username", "auth_failure_delay",
		"auth_cache_ttl", "auth_cache_negative_ttl", "auth_cache_size",
		"auth_cache_verify_password_with_worker", "auth_ssl_require_client_cert",
		"auth_ssl_username_from_cert", "auth_verbose", "auth_debug", "auth_debug_passwords",
		"auth_verbose_passwords", "first_valid_uid", "last_valid_uid", "first_valid_gid", "last_valid_gid",
		"auth_policy_server_url", "auth_policy_server_api_header", "auth_policy_hash_mech",
		"auth_policy_hash_nonce", "auth_policy_hash_truncate", "auth_policy_reject_on_fail",
		"auth_policy_check_before_auth", "auth_policy_check_after_auth", "auth_policy_report_after_auth",
		"auth_policy_log_only", "auth_cache_password_fingerprint", "log_format", "shutdown_timeout",
	} {
		m[name] = authdSettings[name]
	}
	m["auth_default_domain"] = authdSettings["auth_default_realm"]
	m["auth_username_format"] = str(func(c *Config) *string { return &c.Auth.UsernameFormat })
	m["auth_allow_cleartext"] = boolean(func(c *Config) *bool { return &c.Auth.AllowCleartext })
	m["auth_allow_weak_schemes"] = boolean(func(c *Config) *bool { return &c.Auth.AllowWeakSchemes })
	m["auth_internal_failure_delay"] = dur(func(c *Config) *time.Duration { return &c.Auth.InternalFailureDelay }, true)
	return m
}()

// defaults24 sets what 2.4 defaults differently from 2.3.
func (b *builder) defaults24() {
	a := &b.cfg.Auth
	a.UsernameFormat = DefaultUsernameFormat24
	a.AllowCleartext = false
	a.InternalFailureDelay = 2 * time.Second
	attrs, err := policy.ParseAttributes24(defaultPolicyAttributes24)
	if err != nil {
		panic(fmt.Sprintf("config: bad 2.4 policy default: %v", err))
	}
	a.Policy.Attributes = attrs
}

// defaultPolicyAttributes24 is 2.4's auth_policy_request_attributes.
var defaultPolicyAttributes24 = [][2]string{
	{"device_id", "%{client_id}"}, {"fail_type", "%{fail_type}"}, {"login", "%{requested_username}"},
	{"protocol", "%{protocol}"}, {"pwhash", "%{hashed_password}"}, {"remote", "%{remote_ip}"},
	{"session_id", "%{session}"},
}

// rootAuth24 applies the top level's settings to the Config.
func (b *builder) rootAuth24() {
	root := b.s24.root
	for _, key := range sortedKeys(root.vals) {
		e := root.vals[key]
		set, ok := setters24[key]
		if !ok {
			continue // driver settings and the like: read per block
		}
		if err := set(b.cfg, e.value); err != nil {
			b.errs.add(e.pos, "%s: %v", key, err)
			continue
		}
		b.lastPos[key] = e.pos
		if key == "auth_username_format" {
			b.template24(e.pos, key, e.value, "")
		}
	}
	b.lists24()
	b.policy24()
	b.oauth2Settings24()
}

// lists24 applies the top level's list settings.
func (b *builder) lists24() {
	v := view24{scopes: []*scope24{b.s24.root, defaultsScope24("auth_mechanisms")}}
	if l := b.s24.root.lists["auth_mechanisms"]; l != nil {
		var on []string
		for _, e := range v.list("auth_mechanisms") {
			if e.value == "yes" {
				on = append(on, e.key)
			}
		}
		m, err := parseMechanisms(strings.Join(on, " "))
		if err != nil {
			b.errs.add(l.pos, "auth_mechanisms: %v", err)
		}
		b.cfg.Auth.Mechanisms = m
		b.lastPos["auth_mechanisms"] = l.pos
	}
	if b.s24.root.lists["auth_realms"] != nil {
		b.cfg.Auth.Realms = nil
		for _, e := range v.list("auth_realms") {
			if e.value == "yes" {
				b.cfg.Auth.Realms = append(b.cfg.Auth.Realms, e.key)
			}
		}
	}
	for key := range b.s24.root.lists {
		if !slices.Contains([]string{"auth_mechanisms", "auth_realms", "auth_policy_request_attributes",
			"passdb_fields", "userdb_fields", "passdb_mechanisms_filter"}, key) && !matchesAny24(key) {
			b.errs.add(b.s24.root.lists[key].pos, "%s: not an auth setting authd reads", key)
		}
	}
}

// defaultsScope24 is a scope holding a boolean list's default (a
// `list { name = yes }` section adds to it, as in Dovecot).
func defaultsScope24(key string) *scope24 {
	s := newScope24("", "", Pos{})
	l := s.list(key, Pos{})
	for _, w := range splitList(dovecot24Defaults[key], " \t,") {
		l.set(w, "yes", Pos{})
	}
	return s
}

// matchesAny24 reports whether a list setting belongs to some driver.
func matchesAny24(key string) bool {
	for _, fam := range driverKeys24 {
		if matches24(key, fam) {
			return true
		}
	}
	return strings.HasPrefix(key, "pgsql_") || strings.HasPrefix(key, "ldap_")
}

// policy24 reads auth_policy_request_attributes { } and auth_policy { }.
func (b *builder) policy24() {
	if l := b.s24.root.lists["auth_policy_request_attributes"]; l != nil {
		var pairs [][2]string
		for _, e := range (view24{scopes: []*scope24{b.s24.root}}).list("auth_policy_request_attributes") {
			pairs = append(pairs, [2]string{e.key, e.value})
		}
		a, err := policy.ParseAttributes24(pairs)
		if err != nil {
			b.errs.add(l.pos, "auth_policy_request_attributes: %v", err)
		} else {
			b.cfg.Auth.Policy.Attributes = a
		}
	}
	for key, e := range b.s24.policy {
		switch key {
		case "http_client_request_absolute_timeout":
			d, err := conffile.ParseDuration(e.value, true)
			if err != nil {
				b.errs.add(e.pos, "%s: %v", key, err)
				continue
			}
			b.cfg.Auth.Policy.Timeout = d
		default:
			b.ignore("auth_policy/" + key)
		}
	}
}

// oauth2Settings24 keeps the top level's oauth2_* settings.
func (b *builder) oauth2Settings24() {
	root := b.s24.root
	for _, k := range sortedKeys(root.vals) {
		if oauth2Client24(k) {
			// Kept only when written in oauth2 { } (setting24).
			e := root.vals[k]
			b.cfg.OAuth2 = append(b.cfg.OAuth2, DriverSetting{Key: "oauth2/" + k, Value: e.value, Pos: e.pos})
		}
		if strings.HasPrefix(k, "oauth2_") {
			e := root.vals[k]
			b.cfg.OAuth2 = append(b.cfg.OAuth2, DriverSetting{Key: k, Value: e.value, Pos: e.pos})
			if templates24[k] {
				b.template24(e.pos, k, e.value, "")
			}
		}
	}
	for _, k := range sortedKeys(root.lists) {
		if strings.HasPrefix(k, "oauth2_") {
			for _, e := range root.lists[k].entries {
				b.cfg.OAuth2 = append(b.cfg.OAuth2, DriverSetting{Key: k + "/" + e.key, Value: e.value, Pos: e.pos})
			}
		}
	}
}

// template24 checks a template of a 2.4 configuration: its syntax, that
// it is not 2.3's, and that every variable and provider exists (provider
// is the driver whose fields it may read, "" for none).
func (b *builder) template24(pos Pos, key, value, provider string) {
	if expr, want, found := vars.Find23(value); found {
		msg := fmt.Sprintf("%s: %s is Dovecot 2.3's variable syntax (2.4 reads it as text)", key, expr)
		if want != "" {
			msg += "; write " + want
		}
		b.errs.add(pos, "%s", msg)
		return
	}
	t, err := vars.Syntax24.Parse(value)
	if err != nil {
		b.errs.add(pos, "%s: %v", key, err)
		return
	}
	for _, u := range t.Unknown() {
		if provider != "" && u == provider+":" {
			continue
		}
		msg := fmt.Sprintf("%s: unknown variable %%{%s}", key, strings.TrimSuffix(u, ":"))
		if strings.HasSuffix(u, ":") {
			msg = fmt.Sprintf("%s: unknown provider %%{%s…}", key, u)
		}
		if w := vars.Name24(u); w != "" {
			msg += fmt.Sprintf(" (2.3's name; in 2.4 write %%{%s})", w)
		}
		b.errs.add(pos, "%s", msg)
	}
}
