package oauth2

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/internal/vars"
)

// Dovecot 2.4 configures the oauth2 passdb with oauth2_* settings (at the
// top level, in the passdb block, or in an oauth2 { } filter of either)
// and the HTTP client's and TLS client's own settings, instead of 2.3's
// dovecot-oauth2.conf.ext. They fill the same Settings; Set24 maps the 2.4
// names onto its fields, V24 switches the checks whose meaning changed in
// 2.4.1 (docs/operations.md "The oauth2 passdb").

// Setting24 is one Dovecot 2.4 setting as the configuration reader found
// it: Key as written in the file after the filter prefix was added
// (oauth2_tokeninfo_url, oauth2_scope/NAME for a list entry,
// ssl_client_ca_file), Origin where it was set ("file:line"), for errors.
type Setting24 struct {
	Key, Value, Origin string
}

// DefaultSettings24 returns Dovecot 2.4.1's defaults (`doveconf -d`: the
// oauth2_* settings, and the oauth2 { } filter's http_client_* overrides;
// http_client_request_timeout keeps the global 1 min).
func DefaultSettings24() Settings {
	return Settings{
		V24:                      true,
		UsernameValidationFormat: "%{user}",
		UsernameAttribute:        "email",
		TLSCipherSuite:           defaultCipherSuite, // not applied: see NewFromSettings
		TimeoutMsecs:             60000,
		MaxIdleTimeMsecs:         60000,
		MaxParallelConnections:   10,
		MaxPipelinedRequests:     1,
	}
}

// FromSettings24 builds Settings from 2.4 settings over DefaultSettings24,
// checked as Dovecot 2.4.1 checks them. Every problem is reported with
// its origin; values are never quoted (oauth2_client_secret is one).
func FromSettings24(list []Setting24) (Settings, error) {
	s := DefaultSettings24()
	var errs []error
	for _, x := range list {
		if err := s.Set24(x.Key, x.Value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", x.Origin, x.Key, err))
		}
	}
	if len(errs) == 0 {
		if err := s.Check(); err != nil {
			errs = append(errs, err)
		}
	}
	return s, errors.Join(errs...)
}

// string24 maps the 2.4 string settings to their fields.
func (s *Settings) string24(key string) *string {
	return map[string]*string{
		"oauth2_tokeninfo_url": &s.TokeninfoURL, "oauth2_grant_url": &s.GrantURL,
		"oauth2_introspection_url": &s.IntrospectionURL, "oauth2_introspection_mode": &s.IntrospectionMode,
		"oauth2_username_validation_format": &s.UsernameValidationFormat,
		"oauth2_username_attribute":         &s.UsernameAttribute, "oauth2_active_attribute": &s.ActiveAttribute,
		"oauth2_active_value": &s.ActiveValue, "oauth2_client_id": &s.ClientID, "oauth2_client_secret": &s.ClientSecret,
		"oauth2_openid_configuration_url": &s.OpenIDConfigurationURL,
		"ssl_client_ca_file":              &s.TLSCACertFile, "ssl_client_ca_dir": &s.TLSCACertDir,
		"ssl_client_cert_file": &s.TLSCertFile, "ssl_client_key_file": &s.TLSKeyFile,
		"ssl_cipher_list": &s.TLSCipherSuite, "http_client_rawlog_dir": &s.RawlogDir,
	}[key]
}

// Set24 sets one 2.4 setting. A list entry is "LIST/NAME": oauth2_scope
// and oauth2_issuers are boolean lists (NAME = yes adds it), oauth2_fields
// a list of passdb fields. Settings authd cannot apply are errors that
// name them.
func (s *Settings) Set24(key, value string) error {
	if list, name, ok := strings.Cut(key, "/"); ok {
		return s.setList24(list, name, value)
	}
	if p := s.string24(key); p != nil {
		*p = value
		return nil
	}
	switch key {
	case "oauth2_force_introspection", "oauth2_send_auth_headers", "ssl_client_require_valid_cert", "oauth2_use_worker_with_mech":
		b, err := conffile.ParseBool(value)
		if err != nil {
			return err
		}
		switch key {
		case "oauth2_force_introspection":
			s.ForceIntrospection = b
		case "oauth2_send_auth_headers":
			s.SendAuthHeaders = b
		case "ssl_client_require_valid_cert":
			s.TLSAllowInvalidCert = !b
		}
		// oauth2_use_worker_with_mech: authd has no auth workers.
		return nil
	case "http_client_request_timeout", "http_client_max_idle_time":
		return s.setDuration24(key, value)
	case "http_client_max_parallel_connections", "http_client_max_pipelined_requests":
		n, err := conffile.ParseUint32(value)
		if err != nil {
			return err
		}
		if key == "http_client_max_parallel_connections" {
			s.MaxParallelConnections = int(n)
		} else {
			s.MaxPipelinedRequests = int(n)
		}
		return nil
	case "oauth2_scope", "oauth2_issuers", "oauth2_audience", "oauth2_fields":
		if value != "" {
			return fmt.Errorf("%s is a list: write %s { … }", key, key)
		}
		return nil
	}
	return unsupported24(key, value)
}

func (s *Settings) setDuration24(key, value string) error {
	d, err := conffile.ParseDuration(value, true)
	if err != nil {
		return err
	}
	ms := int(d / time.Millisecond)
	if key == "http_client_request_timeout" {
		s.TimeoutMsecs = ms
	} else {
		s.MaxIdleTimeMsecs = ms
	}
	return nil
}

// unsupported24 names a setting of the oauth2 filter authd does not apply.
// The HTTP and TLS client settings left at their default are accepted
// (doveconf -n writes some of them); anything set is an error, so that a
// file never silently means something else in authd.
func unsupported24(key, value string) error {
	switch {
	case strings.HasPrefix(key, "http_client_") || strings.HasPrefix(key, "ssl_client_"):
		if value == "" || value == "0" || value == "no" {
			return nil
		}
		return errors.New("this HTTP/TLS client setting is not applied by authd's oauth2 client")
	}
	return errors.New("not an oauth2 setting authd reads")
}

// setList24 adds one entry of a 2.4 list setting.
func (s *Settings) setList24(list, name, value string) error {
	add := func(dst *string) error {
		b, err := conffile.ParseBool(value)
		if err != nil {
			return err
		}
		words := strings.Fields(*dst)
		if b {
			words = append(words, name)
		} else {
			words = slices.DeleteFunc(words, func(w string) bool { return w == name })
		}
		*dst = strings.Join(words, " ")
		return nil
	}
	switch list {
	case "oauth2_scope":
		return add(&s.Scope)
	case "oauth2_issuers":
		return add(&s.Issuers)
	case "oauth2_fields":
		s.Fields24 = append(s.Fields24, [2]string{name, value})
		return nil
	case "oauth2_audience":
		// Listed by doveconf in 2.4.1 but not read by its oauth2 code.
		return errors.New("oauth2_audience is not applied by authd (nor checked by Dovecot 2.4.1's oauth2 passdb)")
	}
	return errors.New("not an oauth2 list authd reads")
}

// check24 applies Dovecot 2.4.1's checks of the oauth2 settings
// (auth_oauth2_settings_check and db_oauth2_setup's errors).
func (s *Settings) check24() error {
	switch {
	case s.IntrospectionMode == "":
		return errors.New("oauth2_introspection_mode is not set (Dovecot 2.4 has no default: auth, get, post or local)")
	case s.IntrospectionMode != "local" && s.TokeninfoURL == "" && s.IntrospectionURL == "":
		return errors.New("oauth2_introspection_mode = " + s.IntrospectionMode + " needs oauth2_tokeninfo_url or oauth2_introspection_url")
	case s.IntrospectionMode == "local":
		return errors.New("oauth2_introspection_mode = local (oauth2_local_validation { dict … }) is not supported by authd with a Dovecot 2.4 configuration; use a 2.3 args file's local_validation_key_dict")
	case s.GrantURL != "" && s.ClientID == "":
		return errors.New("oauth2_client_id is required with oauth2_grant_url")
	case (s.ClientID == "") != (s.ClientSecret == ""):
		return errors.New("oauth2_client_id and oauth2_client_secret must be given together")
	}
	if _, err := vars.Syntax24.Parse(s.UsernameValidationFormat); err != nil {
		return fmt.Errorf("oauth2_username_validation_format: %w", err)
	}
	for _, f := range s.Fields24 {
		if _, err := vars.Syntax24.Field(f[0], f[1]); err != nil {
			return fmt.Errorf("oauth2_fields: %w", err)
		}
	}
	return nil
}
