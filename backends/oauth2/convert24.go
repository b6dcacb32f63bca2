package oauth2

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/authd-project/authd/internal/vars"
)

// Conversion is a dovecot-oauth2.conf.ext in Dovecot 2.4 terms, for
// authd convert. Settings holds 2.4 keys, those of the oauth2 { } filter
// as "oauth2/KEY" and list entries as "LIST/NAME"; Notes says, per key,
// where the meaning changed; Problems lists what has no 2.4 counterpart,
// each "file: …".
type Conversion struct {
	Settings []Setting24
	Notes    map[string][]string
	Problems []string
}

func (c *Conversion) set(key, value string, notes ...string) {
	c.Settings = append(c.Settings, Setting24{Key: key, Value: value})
	if len(notes) > 0 {
		c.Notes[key] = append(c.Notes[key], notes...)
	}
}

// Convert24 reads the 2.3 args file at path and converts it; settings at
// Dovecot 2.4.1's defaults are left out. The error is the file's own.
func Convert24(path string) (*Conversion, error) {
	s, err := ParseFile(strings.TrimSpace(path))
	if err != nil {
		return nil, err
	}
	c := &Conversion{Notes: map[string][]string{}}
	problem := func(format string, args ...any) {
		c.Problems = append(c.Problems, path+": "+fmt.Sprintf(format, args...))
	}
	c.convertEndpoints(&s, problem)
	c.convertChecks(&s)
	c.convertFields(&s, problem)
	c.convertClient(&s)
	if s.Debug {
		problem("debug = yes: Dovecot 2.4 has no oauth2 debug setting (its counterpart is log_debug = category=oauth2)")
	}
	return c, nil
}

// convertEndpoints: the URLs, the introspection mode, the client's
// credentials.
func (c *Conversion) convertEndpoints(s *Settings, problem func(string, ...any)) {
	for _, kv := range [][2]string{
		{"oauth2_tokeninfo_url", s.TokeninfoURL}, {"oauth2_introspection_url", s.IntrospectionURL},
		{"oauth2_openid_configuration_url", s.OpenIDConfigurationURL},
	} {
		if kv[1] != "" {
			c.set(kv[0], kv[1])
		}
	}
	if s.GrantURL != "" {
		c.set("oauth2_grant_url", s.GrantURL, "Dovecot 2.4's oauth2 passdb asks this URL for a password grant (2.3 did only with use_grant_password = yes); authd does no password grant")
	}
	switch {
	case s.mode() == "local" || s.LocalValidationKeyDict != "":
		problem("local_validation_key_dict: authd reads JWT validation keys only from a 2.3 args file, not from Dovecot 2.4's oauth2_local_validation { dict … }")
	case s.IntrospectionMode == "":
		c.set("oauth2_introspection_mode", "auth", "Dovecot 2.3's default (auth) written out: 2.4 has none")
	default:
		c.set("oauth2_introspection_mode", s.IntrospectionMode)
	}
	if s.ForceIntrospection {
		c.set("oauth2_force_introspection", "yes")
	}
	if s.SendAuthHeaders {
		c.set("oauth2_send_auth_headers", "yes")
	}
	if (s.ClientID == "") != (s.ClientSecret == "") {
		problem("client_id and client_secret: Dovecot 2.4 needs both or neither")
	}
	if s.ClientID != "" && s.mode() == "post" {
		c.set("oauth2_client_id", s.ClientID, "Dovecot 2.4.1 posts the token alone: with introspection_mode = post the client_id and client_secret are not sent; write them in oauth2_introspection_url (https://ID:SECRET@host/…) for HTTP basic auth")
		c.set("oauth2_client_secret", s.ClientSecret)
	} else if s.ClientID != "" {
		c.set("oauth2_client_id", s.ClientID)
		c.set("oauth2_client_secret", s.ClientSecret)
	}
}

// convertChecks: the user name, active and scope checks, whose meaning
// changed in 2.4.1.
func (c *Conversion) convertChecks(s *Settings) {
	if s.UsernameAttribute != "email" {
		c.set("oauth2_username_attribute", s.UsernameAttribute)
	}
	if f, ok := vars.Convert23(s.UsernameFormat); ok && f != "%{user}" {
		c.set("oauth2_username_validation_format", f, "Dovecot 2.3's username_format "+s.UsernameFormat+
			" formatted both names; 2.4 formats only the token's, and compares it with the login name after auth_username_format")
	} else if !ok {
		c.Problems = append(c.Problems, "username_format "+s.UsernameFormat+": no Dovecot 2.4 template equivalent")
	}
	if s.ActiveAttribute != "" {
		c.set("oauth2_active_attribute", s.ActiveAttribute, "Dovecot 2.3 let a token without "+s.ActiveAttribute+" pass; 2.4 refuses it")
		c.set("oauth2_active_value", s.ActiveValue)
	}
	words := strings.Fields(s.Scope)
	for i, w := range words {
		var notes []string
		if len(words) > 1 && i == 0 {
			notes = append(notes, "Dovecot 2.3.19 wanted every one of "+s.Scope+"; 2.4 accepts a token with any one of them")
		}
		c.set("oauth2_scope/"+w, "yes", notes...)
	}
	for _, w := range s.issuers() {
		c.set("oauth2_issuers/"+w, "yes")
	}
}

// convertFields turns pass_attrs into oauth2_fields { }.
func (c *Conversion) convertFields(s *Settings, problem func(string, ...any)) {
	for _, tok := range strings.Split(s.PassAttrs, " ") {
		if tok == "" {
			continue
		}
		key, value, _ := strings.Cut(tok, "=")
		name, protected := strings.CutSuffix(key, ":protected")
		if protected {
			name += ":default"
		}
		out, ok := vars.ConvertOAuth2Field23(key, value)
		if !ok {
			problem("pass_attrs %s: template %q has no Dovecot 2.4 equivalent", key, value)
			continue
		}
		var notes []string
		if out != value {
			notes = append(notes, "Dovecot 2.3 wrote pass_attrs "+tok)
		}
		c.set("oauth2_fields/"+name, out, notes...)
	}
}

// convertClient: 2.3's tls_* and HTTP client keys are the oauth2 { }
// filter's ssl_client_* and http_client_* settings in 2.4.
func (c *Conversion) convertClient(s *Settings) {
	for _, kv := range [][2]string{
		{"ssl_client_ca_file", s.TLSCACertFile}, {"ssl_client_ca_dir", s.TLSCACertDir},
		{"ssl_client_cert_file", s.TLSCertFile}, {"ssl_client_key_file", s.TLSKeyFile},
	} {
		if kv[1] != "" {
			c.set("oauth2/"+kv[0], kv[1])
		}
	}
	if s.TLSAllowInvalidCert {
		c.set("oauth2/ssl_client_require_valid_cert", "no")
	}
	if s.TLSCipherSuite != defaultCipherSuite {
		c.set("oauth2/ssl_cipher_list", s.TLSCipherSuite, "OpenSSL's syntax: Dovecot applies it, authd uses Go's TLS defaults")
	}
	if s.TimeoutMsecs != 0 {
		c.set("oauth2/http_client_request_timeout", strconv.Itoa(s.TimeoutMsecs)+"ms")
	} else {
		c.Notes["oauth2_introspection_mode"] = append(c.Notes["oauth2_introspection_mode"],
			"timeout_msecs was 0 (authd: the request's own deadline); with 2.4 settings authd applies http_client_request_timeout, 1 min by default")
	}
	if s.MaxIdleTimeMsecs != 60000 {
		c.set("oauth2/http_client_max_idle_time", strconv.Itoa(s.MaxIdleTimeMsecs)+"ms")
	}
	if s.MaxParallelConnections != 10 {
		c.set("oauth2/http_client_max_parallel_connections", strconv.Itoa(s.MaxParallelConnections))
	}
	if s.MaxPipelinedRequests != 1 {
		c.set("oauth2/http_client_max_pipelined_requests", strconv.Itoa(s.MaxPipelinedRequests))
	}
}
