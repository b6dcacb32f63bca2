package ldap

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/vars"
)

// Settings24 configure an LDAP passdb or userdb from a Dovecot 2.4
// configuration, which writes ldap_* settings (at the top level or in the
// block) instead of 2.3's dovecot-ldap.conf.ext, and fields { } instead of
// pass_attrs/user_attrs.
type Settings24 struct {
	Name     string    // for messages: "passdb ldap"
	Settings []Setting // by their full 2.4 names, with where they were set
	// DefaultScheme is the block's default_password_scheme.
	DefaultScheme string
	// PassFields, UserFields and IterateFields are fields { } of the
	// passdb, of the userdb, and userdb_ldap_iterate_fields { }.
	PassFields, UserFields, IterateFields [][2]string
}

// Setting is one 2.4 setting and where it was set ("file:line").
type Setting struct {
	Key, Value, Origin string
}

// keys24 maps Dovecot 2.4's LDAP settings to the 2.3 ones this package
// reads (db-ldap-settings.c vs db-ldap.c).
var keys24 = map[string]string{
	"ldap_uris": "uris", "ldap_auth_dn": "dn", "ldap_auth_dn_password": "dnpass",
	"ldap_auth_sasl_realm": "sasl_realm", "ldap_auth_sasl_authz_id": "sasl_authz_id",
	"ldap_starttls": "tls", "ldap_deref": "deref", "ldap_scope": "scope", "ldap_base": "base",
	"ldap_version": "ldap_version", "ldap_debug_level": "debug_level",
	"passdb_ldap_bind": "auth_bind", "passdb_ldap_bind_userdn": "auth_bind_userdn",
	"passdb_ldap_filter": "pass_filter", "userdb_ldap_filter": "user_filter",
	"userdb_ldap_iterate_filter": "iterate_filter",
	"ssl_client_ca_file":         "tls_ca_cert_file", "ssl_client_ca_dir": "tls_ca_cert_dir",
	"ssl_client_cert_file": "tls_cert_file", "ssl_client_key_file": "tls_key_file",
}

// ignored24 are 2.4 LDAP settings that change nothing in authd.
var ignored24 = map[string]bool{
	"ldap_connection_group": true, "ldap_max_idle_time": true, "ldap_timeout": true,
}

// New24 builds the driver from 2.4 settings; like New, nothing connects
// yet.
func New24(s Settings24, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := defaultConfig()
	c.path = s.Name
	c.syntax = vars.Syntax24
	c.passFields, c.userFields, c.iterFlds = s.PassFields, s.UserFields, s.IterateFields
	var errs []error
	for _, st := range s.Settings {
		if msg := c.set24(st); msg != "" {
			errs = append(errs, fmt.Errorf("%s: %s", st.Origin, msg))
		}
	}
	if s.DefaultScheme != "" {
		c.defaultPassScheme = s.DefaultScheme
	}
	d, berrs := build(c, log)
	errs = append(errs, berrs...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: ldap: %w", backends.ErrConfig, errors.Join(errs...))
	}
	for _, w := range c.warnings {
		log.Warn("ldap: " + w)
	}
	return d, nil
}

// set24 sets one 2.4 setting and returns what is wrong, or "".
func (c *config) set24(st Setting) string {
	key, value := st.Key, st.Value
	switch {
	case ignored24[key] || strings.HasPrefix(key, "ssl_client_") && keys24[key] == "":
		return ""
	case strings.HasPrefix(key, "ldap_auth_sasl_mechanisms/"):
		// The boolean list arrives one mechanism per entry.
		if value == "yes" {
			c.saslBind = true
			c.saslMech = strings.TrimSpace(c.saslMech + " " + strings.TrimPrefix(key, "ldap_auth_sasl_mechanisms/"))
		}
		c.pos["sasl_mech"] = st.Origin
		return ""
	case key == "ssl_client_require_valid_cert":
		c.tlsRequireCert = map[string]string{"yes": "demand", "no": "allow"}[value]
		c.pos["tls_require_cert"] = st.Origin
		return ""
	}
	old, ok := keys24[key]
	if !ok {
		return fmt.Sprintf("%s: not an LDAP setting authd reads", key)
	}
	if msg := c.set(old, value); msg != "" {
		return strings.Replace(msg, old, key, 1)
	}
	c.pos[old] = st.Origin
	return ""
}
