package oauth2

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/conffile"
)

// Settings are the keys of a dovecot-oauth2.conf.ext (Dovecot 2.3's
// db-oauth2.c setting_defs) with Dovecot's defaults. Start from
// DefaultSettings, then ParseFile or Set.
type Settings struct {
	TokeninfoURL      string // GET this URL with the token appended
	IntrospectionURL  string // RFC 7662 style introspection endpoint
	IntrospectionMode string // "auth" (default), "get", "post" or "local"
	GrantURL          string // accepted, refused when use_grant_password is on
	UseGrantPassword  bool
	// ForceIntrospection asks the introspection endpoint even when the
	// tokeninfo answer already had every field.
	ForceIntrospection bool

	Scope             string // wanted scopes, space-separated: one must be granted
	UsernameFormat    string // template applied to both names before comparing; %Lu
	UsernameAttribute string // the token field naming the user; "email"
	ActiveAttribute   string // the token field that must equal ActiveValue when present; "active"
	ActiveValue       string // "true"
	ClientID          string
	ClientSecret      string // a secret: never logged (String hides it)
	PassAttrs         string // passdb fields to return, %{oauth2:NAME} templates
	Issuers           string // allowed iss values of a local JWT, space-separated

	// LocalValidationKeyDict is the dict holding the keys that sign JWTs:
	// "fs:posix:prefix=DIR/" or "file:PATH" (see keys.go).
	LocalValidationKeyDict string
	// OpenIDConfigurationURL is sent to a client whose token was refused
	// (RFC 7628 §3.2.2, "openid-configuration").
	OpenIDConfigurationURL string

	TLSCACertFile, TLSCACertDir string
	TLSCertFile, TLSKeyFile     string
	TLSCipherSuite              string // OpenSSL syntax: Go's TLS stack chooses its own suites
	TLSAllowInvalidCert         bool

	RawlogDir              string // refused: it would write tokens to disk
	TimeoutMsecs           int    // 0: the request's own deadline
	MaxIdleTimeMsecs       int
	MaxParallelConnections int
	MaxPipelinedRequests   int // accepted; Go's client does not pipeline
	SendAuthHeaders        bool
	Debug                  bool

	// V24 marks settings from a Dovecot 2.4 configuration
	// (FromSettings24): 2.4.1's checks and meanings apply (the user name
	// is validated with UsernameValidationFormat, a missing
	// active_attribute refuses the token, one wanted scope is enough, and
	// Fields24 replaces pass_attrs).
	V24 bool
	// UsernameValidationFormat (2.4) is applied to the token's user name
	// only (%{user}, %{username}, %{domain}); the result must equal the
	// request's user as it is.
	UsernameValidationFormat string
	// Fields24 are 2.4's oauth2_fields { name = template }: %{oauth2:NAME}
	// reads the token's fields.
	Fields24 [][2]string

	warnings []string
}

// DefaultSettings returns Dovecot 2.3's defaults (default_oauth2_settings).
func DefaultSettings() Settings {
	return Settings{
		UsernameFormat:         "%Lu",
		UsernameAttribute:      "email",
		ActiveAttribute:        "active",
		ActiveValue:            "true",
		TLSCipherSuite:         defaultCipherSuite,
		MaxIdleTimeMsecs:       60000,
		MaxParallelConnections: 10,
		MaxPipelinedRequests:   1,
	}
}

const defaultCipherSuite = "HIGH:!SSLv2"

// String renders the settings with the client secret hidden, so that a
// stray %v or slog call cannot leak it.
func (s Settings) String() string {
	secret := ""
	if s.ClientSecret != "" {
		secret = "<hidden>"
	}
	return fmt.Sprintf("tokeninfo_url=%q introspection_url=%q introspection_mode=%q client_id=%q client_secret=%s username_attribute=%q scope=%q",
		s.TokeninfoURL, s.IntrospectionURL, s.IntrospectionMode, s.ClientID, secret, s.UsernameAttribute, s.Scope)
}

// LogValue implements slog.LogValuer with the secret hidden.
func (s Settings) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Set sets one key as Dovecot's parse_setting_from_defs does: an unknown
// key is an error, a later value replaces an earlier one. Errors never
// quote values (client_secret is one).
func (s *Settings) Set(key, value string) error {
	if p := s.stringField(key); p != nil {
		*p = value
		return nil
	}
	if p := s.boolField(key); p != nil {
		b, err := conffile.ParseExtBool(value)
		if err != nil {
			return fmt.Errorf("invalid boolean for %s (want yes or no)", key)
		}
		*p = b
		return nil
	}
	if p := s.intField(key); p != nil {
		n, err := conffile.ParseExtUint(value)
		if err != nil {
			return fmt.Errorf("invalid number for %s", key)
		}
		*p = n
		return nil
	}
	if len(key) > 64 {
		key = key[:64] + "…"
	}
	return fmt.Errorf("unknown setting: %s", key)
}

func (s *Settings) stringField(key string) *string {
	return map[string]*string{
		"tokeninfo_url": &s.TokeninfoURL, "grant_url": &s.GrantURL,
		"introspection_url": &s.IntrospectionURL, "introspection_mode": &s.IntrospectionMode,
		"scope": &s.Scope, "username_format": &s.UsernameFormat,
		"username_attribute": &s.UsernameAttribute, "active_attribute": &s.ActiveAttribute,
		"active_value": &s.ActiveValue, "client_id": &s.ClientID, "client_secret": &s.ClientSecret,
		"pass_attrs": &s.PassAttrs, "local_validation_key_dict": &s.LocalValidationKeyDict,
		"issuers": &s.Issuers, "openid_configuration_url": &s.OpenIDConfigurationURL,
		"tls_ca_cert_file": &s.TLSCACertFile, "tls_ca_cert_dir": &s.TLSCACertDir,
		"tls_cert_file": &s.TLSCertFile, "tls_key_file": &s.TLSKeyFile,
		"tls_cipher_suite": &s.TLSCipherSuite, "rawlog_dir": &s.RawlogDir,
	}[key]
}

func (s *Settings) boolField(key string) *bool {
	return map[string]*bool{
		"force_introspection": &s.ForceIntrospection, "send_auth_headers": &s.SendAuthHeaders,
		"use_grant_password": &s.UseGrantPassword, "tls_allow_invalid_cert": &s.TLSAllowInvalidCert,
		"debug": &s.Debug,
	}[key]
}

func (s *Settings) intField(key string) *int {
	return map[string]*int{
		"timeout_msecs": &s.TimeoutMsecs, "max_idle_time_msecs": &s.MaxIdleTimeMsecs,
		"max_parallel_connections": &s.MaxParallelConnections, "max_pipelined_requests": &s.MaxPipelinedRequests,
	}[key]
}

// ParseFile reads a dovecot-oauth2.conf.ext with the settings reader
// (internal/conffile, as Dovecot's auth process reads its .ext files) and
// checks it. Every problem is reported, each wrapping backends.ErrConfig.
func ParseFile(path string) (Settings, error) {
	s := DefaultSettings()
	opts := conffile.ExtFile()
	res, err := conffile.ReadFile(path, &opts)
	if err != nil {
		return s, fmt.Errorf("%w: oauth2: %w", backends.ErrConfig, err)
	}
	return s, s.apply(res)
}

// ParseConf parses the text of a dovecot-oauth2.conf.ext named name;
// !include is an error. For tests and settings held in memory.
func ParseConf(name string, data []byte) (Settings, error) {
	s := DefaultSettings()
	opts := conffile.ExtFile()
	opts.NoIncludes = true
	return s, s.apply(conffile.Read(name, data, &opts))
}

func (s *Settings) apply(res *conffile.Result) error {
	problems := append([]*conffile.Error{}, res.Errors...)
	var last conffile.Pos
	for _, n := range res.Root.Children {
		if n.Section || n.IsInclude() {
			continue
		}
		last = n.Pos
		if err := s.Set(n.Key, n.Value); err != nil {
			problems = append(problems, &conffile.Error{Pos: n.Pos, Msg: err.Error()})
		}
	}
	for _, w := range res.Warnings {
		s.warnings = append(s.warnings, w.Error())
	}
	errs := make([]error, 0, len(problems)+1)
	for _, p := range res.Sort(problems) {
		errs = append(errs, fmt.Errorf("%w: %w", backends.ErrConfig, p))
	}
	if len(errs) == 0 {
		if err := s.Check(); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", backends.ErrConfig, last.File, err))
		}
	}
	return errors.Join(errs...)
}

// Check applies Dovecot's start-up checks (db_oauth2_init's fatal errors)
// and authd's own refusals.
func (s *Settings) Check() error {
	if s.V24 {
		if err := s.check24(); err != nil {
			return err
		}
	}
	switch {
	case s.UseGrantPassword:
		return errors.New("use_grant_password (the password grant) is not supported by authd")
	case s.RawlogDir != "":
		return errors.New("rawlog_dir is not supported: it would write bearer tokens to disk")
	case s.LocalValidationKeyDict == "" && s.TokeninfoURL == "" && s.IntrospectionURL == "":
		return errors.New("tokeninfo_url, introspection_url or local_validation_key_dict must be given")
	case s.ActiveAttribute != "" && s.ActiveValue == "" && !s.V24:
		return errors.New("active_value must not be empty when active_attribute is set")
	case s.ActiveAttribute == "" && s.ActiveValue != "":
		return errors.New("active_attribute must not be empty when active_value is set")
	case s.MaxParallelConnections < 1:
		return errors.New("max_parallel_connections must be at least 1")
	}
	switch s.IntrospectionMode {
	case "", "auth", "get", "post":
	case "local":
		if s.LocalValidationKeyDict == "" {
			return errors.New("introspection_mode = local needs local_validation_key_dict")
		}
	default:
		return fmt.Errorf("invalid introspection_mode %q: want auth, get, post or local", s.IntrospectionMode)
	}
	for _, u := range []struct{ key, val string }{
		{"tokeninfo_url", s.TokeninfoURL}, {"introspection_url", s.IntrospectionURL},
		{"openid_configuration_url", s.OpenIDConfigurationURL},
	} {
		if u.val == "" {
			continue
		}
		p, err := url.Parse(u.val)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("%s must be an http or https URL", u.key)
		}
	}
	if s.TLSCertFile != "" && s.TLSKeyFile == "" {
		return errors.New("tls_cert_file needs tls_key_file")
	}
	return nil
}

// mode is the introspection mode with Dovecot's default filled in.
func (s *Settings) mode() string {
	if s.IntrospectionMode == "" {
		return "auth"
	}
	return s.IntrospectionMode
}

// issuers is the allowed issuer list.
func (s *Settings) issuers() []string { return strings.Fields(s.Issuers) }
