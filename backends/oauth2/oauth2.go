// Package oauth2 is the oauth2 passdb: the password a client gives (the
// bearer token of OAUTHBEARER and XOAUTH2, or a token typed as a PLAIN
// password) is validated with the identity provider, as Dovecot 2.3's
// passdb-oauth2.c and db-oauth2.c do:
//
//	passdb {
//	  driver = oauth2
//	  mechanisms = xoauth2 oauthbearer
//	  args = /etc/dovecot/dovecot-oauth2.conf.ext
//	}
//
// The args file has Dovecot's keys (settings.go). A Dovecot 2.4
// configuration gives the same settings as oauth2_* settings instead
// (settings24.go: FromSettings24), with 2.4.1's checks and meanings. A token is checked in
// one of three ways: GET tokeninfo_url with the token appended (a 4xx
// answer is a refused token), the introspection endpoint (introspection_mode
// auth, get or post), or locally as a signed JWT (introspection_mode =
// local, keys from a dict: jwt.go, keys.go). The token's fields then
// decide: active_attribute must have active_value when present, the
// username_attribute must name the user who logs in (both after
// username_format), one of the wanted scopes must be granted (scope, else
// aud), and pass_attrs turns them into passdb fields.
//
// Answers follow Dovecot's results: a refused or inactive token is
// Mismatch; a token of another user is Mismatch too (Dovecot says "unknown
// user"; Mismatch keeps a foreign token from putting a negative cache
// entry on the real user, whose cache key has no token); a missing scope
// is Disabled; an unreachable endpoint, an unexpected status or answer,
// or a token without the username attribute is "could not tell".
//
// Tokens are secrets: they are never logged, never part of an error, and
// never in a cache key. The cache key is the user (%u); the engine's
// cache keeps only a keyed fingerprint of the token that last succeeded
// (docs/architecture.md §Cache semantics), where Dovecot's key is %u%w.
package oauth2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
)

// DB is an oauth2 passdb.
type DB struct {
	set       Settings
	log       *slog.Logger
	client    *http.Client
	dict      keyDict
	keys      keyCache
	userFmt   *vars.Template
	passAttrs []vars.FieldTemplate
	// templateNeedsToken: pass_attrs reads %{oauth2:…}; see haveAllFields.
	templateNeedsToken bool
	now                func() time.Time
}

// New reads the args file and builds the driver.
func New(args string, log *slog.Logger) (*DB, error) {
	path := strings.TrimSpace(args)
	if path == "" {
		return nil, fmt.Errorf("%w: oauth2: args must name a dovecot-oauth2.conf.ext", backends.ErrConfig)
	}
	s, err := ParseFile(path)
	if err != nil {
		return nil, err
	}
	return NewFromSettings(s, log)
}

// NewFromSettings builds the driver from checked settings.
func NewFromSettings(s Settings, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := s.Check(); err != nil {
		return nil, fmt.Errorf("%w: oauth2: %w", backends.ErrConfig, err)
	}
	db := &DB{set: s, log: log, now: time.Now}
	if err := db.parseTemplates(); err != nil {
		return nil, err
	}
	var err error
	if s.mode() == "local" {
		if db.dict, err = parseKeyDict(s.LocalValidationKeyDict); err != nil {
			return nil, err
		}
	}
	if db.client, err = newHTTPClient(&s); err != nil {
		return nil, err
	}
	for _, w := range s.warnings {
		log.Warn("oauth2 settings", "warning", w)
	}
	if s.TLSCipherSuite != defaultCipherSuite {
		log.Warn("oauth2: tls_cipher_suite is OpenSSL syntax and is not applied; Go's TLS defaults are used")
	}
	return db, nil
}

// parseTemplates parses the user name format and the fields templates:
// 2.3's username_format and pass_attrs, or 2.4's
// oauth2_username_validation_format and oauth2_fields.
func (db *DB) parseTemplates() error {
	s := &db.set
	var err error
	if s.V24 {
		if db.userFmt, err = vars.Syntax24.Parse(s.UsernameValidationFormat); err != nil {
			return fmt.Errorf("%w: oauth2: oauth2_username_validation_format: %w", backends.ErrConfig, err)
		}
		for _, f := range s.Fields24 {
			ft, err := vars.Syntax24.Field(f[0], f[1])
			if err != nil {
				return fmt.Errorf("%w: oauth2: oauth2_fields: %w", backends.ErrConfig, err)
			}
			db.passAttrs = append(db.passAttrs, ft)
		}
		// 2.4.1's db_oauth2_have_all_fields no longer looks at the
		// fields' templates: templateNeedsToken stays false.
		return nil
	}
	if db.userFmt, err = vars.Parse(s.UsernameFormat); err != nil {
		return fmt.Errorf("%w: oauth2: username_format: %w", backends.ErrConfig, err)
	}
	if db.passAttrs, err = vars.ParseOAuth2Fields(s.PassAttrs); err != nil {
		return fmt.Errorf("%w: oauth2: pass_attrs: %w", backends.ErrConfig, err)
	}
	for _, f := range db.passAttrs {
		db.templateNeedsToken = db.templateNeedsToken || f.Value.Uses("oauth2")
	}
	return nil
}

// Settings returns the driver's settings (client_secret included: do not
// log them other than through their String method).
func (db *DB) Settings() Settings { return db.set }

// OpenIDConfigurationURL is the URL sent to clients whose token was
// refused, "" for none.
func (db *DB) OpenIDConfigurationURL() string { return db.set.OpenIDConfigurationURL }

// Close releases idle connections to the identity provider.
func (db *DB) Close() error {
	db.client.CloseIdleConnections()
	return nil
}

// Reload forgets the loaded JWT keys (SIGHUP), so that a rotated key file
// is read again.
func (db *DB) Reload() error {
	db.keys.flush()
	return nil
}

// PassCacheKey implements backends.PassCacheKeyer: the user only. The
// token is matched through the cache's fingerprint, never put in the key.
func (db *DB) PassCacheKey() *vars.Template { return cacheKey }

var cacheKey = vars.MustParse("%u")

// VerifiesPasswords implements backends.Verifier: the token is always
// checked by the identity provider.
func (db *DB) VerifiesPasswords() bool { return true }

// LookupPass implements backends.Passdb. An oauth2 passdb cannot hand out
// a password (Dovecot's has no lookup_credentials), so credentials
// mechanisms and lookups without a token get NoCredentials.
func (db *DB) LookupPass(ctx context.Context, req *backends.Request) (backends.PassAnswer, error) {
	return backends.PassAnswer{Outcome: backends.NoCredentials}, nil
}

// verdict is the outcome of one validation before it becomes an answer.
type verdict struct {
	outcome backends.Outcome
	reason  string // why a token was refused, for the debug log
	fields  fields.Fields
}

// VerifyPass implements backends.Verifier: password is the bearer token.
func (db *DB) VerifyPass(ctx context.Context, req *backends.Request, password []byte) (backends.PassAnswer, error) {
	token := string(password)
	v, err := db.validate(ctx, req, token)
	if err != nil {
		return backends.PassAnswer{}, err
	}
	if v.outcome != backends.Found {
		db.log.Debug("oauth2: token refused", "user", req.User, "reason", v.reason)
		return backends.PassAnswer{Outcome: v.outcome}, nil
	}
	// Dovecot returns the token as the passdb field "token", which its
	// login processes receive in the OK reply.
	v.fields.Set("token", token)
	return backends.PassAnswer{Outcome: backends.Found, PassEntry: backends.PassEntry{Fields: v.fields}}, nil
}

func refused(reason string) verdict { return verdict{outcome: backends.Mismatch, reason: reason} }

// validate runs Dovecot's db_oauth2_lookup.
func (db *DB) validate(ctx context.Context, req *backends.Request, token string) (verdict, error) {
	// A token may not be empty or hold CR/LF (oauth2_valid_token); the
	// mechanisms already refuse those, PLAIN does not.
	if token == "" || strings.ContainsAny(token, "\r\n") {
		return refused("invalid token"), nil
	}
	if db.set.mode() == "local" {
		f, err := db.validateJWT(token, db.now())
		if err != nil {
			return refused("local validation failed: " + err.Error()), nil
		}
		return db.processFields(req, f)
	}
	if db.set.TokeninfoURL == "" {
		a, err := db.introspect(ctx, req, token)
		if err != nil {
			return verdict{}, err
		}
		return db.processFields(req, &a.fields)
	}
	a, err := db.do(ctx, request{
		method: http.MethodGet, url: db.set.TokeninfoURL + escapeParam(token),
		bearer: db.bearerFor(token), what: "tokeninfo_url " + redactUserinfo(db.set.TokeninfoURL),
	}, req.Vars)
	if err != nil {
		return verdict{}, err
	}
	if !a.ok {
		return refused("token validation failed: invalid token"), nil
	}
	return db.continueValid(ctx, req, token, &a.fields)
}

// continueValid follows a tokeninfo answer that accepted the token
// (db_oauth2_lookup_continue_valid): introspect unless every needed field
// is there.
func (db *DB) continueValid(ctx context.Context, req *backends.Request, token string, f *tokenFields) (verdict, error) {
	if db.haveAllFields(f) && !db.set.ForceIntrospection {
		return db.processFields(req, f)
	}
	if v, ok := db.inactive(f); !ok {
		return v, nil
	}
	if db.set.IntrospectionURL == "" {
		return db.processFields(req, f)
	}
	a, err := db.introspect(ctx, req, token)
	if err != nil {
		return verdict{}, err
	}
	f.merge(&a.fields)
	return db.processFields(req, f)
}

// haveAllFields is db_oauth2_have_all_fields. Dovecot's check of the
// %{oauth2:…} names in pass_attrs never finds them (it looks up the name
// with the rest of the template attached), so a pass_attrs that reads the
// token always leads to introspection; authd keeps that behaviour.
func (db *DB) haveAllFields(f *tokenFields) bool {
	if db.templateNeedsToken {
		return false
	}
	if _, ok := f.Lookup(db.set.UsernameAttribute); !ok {
		return false
	}
	if db.set.ActiveAttribute != "" {
		if _, ok := f.Lookup(db.set.ActiveAttribute); !ok {
			return false
		}
	}
	return true
}

// bearerFor returns the token to send as Authorization: Bearer, which
// Dovecot sends only in introspection_mode auth (also to tokeninfo_url).
func (db *DB) bearerFor(token string) string {
	if db.set.mode() == "auth" {
		return token
	}
	return ""
}

// introspect asks the introspection endpoint in the configured mode.
func (db *DB) introspect(ctx context.Context, req *backends.Request, token string) (answer, error) {
	s := &db.set
	r := request{method: http.MethodGet, url: s.IntrospectionURL, what: "introspection_url " + redactUserinfo(s.IntrospectionURL)}
	creds := "&client_id=" + escapeParam(s.ClientID) + "&client_secret=" + escapeParam(s.ClientSecret)
	switch s.mode() {
	case "get":
		r.url += escapeParam(token) + creds
	case "post":
		r.method = http.MethodPost
		r.form = "token=" + escapeParam(token)
		if !s.V24 {
			// 2.4.1 posts the token alone: the client authenticates
			// with the URL's user and password (HTTP basic auth).
			r.form += creds
		}
	default:
		r.bearer = token
	}
	if s.IntrospectionURL == "" {
		return answer{}, errors.New("oauth2: no introspection_url to ask")
	}
	return db.do(ctx, r, req.Vars)
}

// redactUserinfo hides the password of a URL's user:password@ (the
// client secret, when the client authenticates with HTTP basic auth), for
// errors and logs.
func redactUserinfo(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	if _, ok := p.User.Password(); ok {
		p.User = url.UserPassword(p.User.Username(), "xxxxx")
	}
	return p.String()
}

// inactive is db_oauth2_user_is_enabled: the token is refused when the
// active attribute is present with another value.
func (db *DB) inactive(f *tokenFields) (verdict, bool) {
	if db.set.ActiveAttribute == "" {
		return verdict{}, true
	}
	v, ok := f.Lookup(db.set.ActiveAttribute)
	switch {
	case !ok && db.set.V24:
		// 2.4.1 refuses a token without the attribute; 2.3 let it pass.
		return refused("missing active_attribute from token"), false
	case !ok, db.set.V24 && db.set.ActiveValue == "":
		// 2.4: an empty active_value asks only for the attribute.
		return verdict{}, true
	case v != db.set.ActiveValue:
		return refused("provided token is not valid"), false
	}
	return verdict{}, true
}

// processFields is db_oauth2_process_fields: active, user name, scope,
// then the pass_attrs fields.
func (db *DB) processFields(req *backends.Request, f *tokenFields) (verdict, error) {
	if v, ok := db.inactive(f); !ok {
		return v, nil
	}
	name, ok := f.Lookup(db.set.UsernameAttribute)
	if !ok {
		return verdict{}, fmt.Errorf("oauth2: the token's answer has no %s attribute: no username returned", db.set.UsernameAttribute)
	}
	// 2.3 formats both names with username_format; 2.4 formats only the
	// token's, and compares it with the request's user as it is.
	want := req.Vars.User
	if !db.set.V24 {
		want = db.userFmt.Expand(req.Vars, nil)
	}
	got := db.userFmt.Expand(&vars.Context{User: name}, nil)
	if want != got {
		return refused(fmt.Sprintf("username %q did not match %q", truncate(want, 128), truncate(got, 128))), nil
	}
	if !db.inScope(f) {
		return verdict{outcome: backends.Disabled, reason: fmt.Sprintf("token is not valid for scope %q", db.set.Scope)}, nil
	}
	vc := *req.Vars
	vc.OAuth2 = f
	if db.set.V24 {
		vc.Provider, vc.ProviderFields = "oauth2", f
	}
	out := make(fields.Fields, 0, len(db.passAttrs)+1)
	for _, t := range db.passAttrs {
		v, err := t.Value.ExpandChecked(&vc, nil)
		if err != nil {
			return verdict{}, fmt.Errorf("oauth2: pass_attrs %s: %w", t.Key, err)
		}
		switch {
		case t.Remove:
			out.Del(t.Key)
		case t.Protected:
			out.SetDefault(t.Key, v)
		default:
			out.Set(t.Key, v)
		}
	}
	return verdict{outcome: backends.Found, fields: out}, nil
}

// inScope checks scope: every word of it must be among the token's scope
// (or, without one, aud) words. Dovecot 2.3.19.1's source reads as if one
// wanted word were enough, but the packaged 2.3.19.1 refuses a token that
// lacks any of them (seen in the differential test,
// internal/sasl/oauth2_diff_test.go), and authd answers as it does.
func (db *DB) inScope(f *tokenFields) bool {
	wanted := strings.Fields(db.set.Scope)
	if len(wanted) == 0 {
		return true
	}
	have, ok := f.Lookup("scope")
	if !ok {
		have, ok = f.Lookup("aud")
	}
	if !ok {
		return false
	}
	granted := strings.Fields(have)
	if db.set.V24 {
		// 2.4.1 (db_oauth2_token_in_scope) accepts one wanted scope.
		return slices.ContainsFunc(wanted, func(w string) bool { return slices.Contains(granted, w) })
	}
	for _, w := range wanted {
		if !slices.Contains(granted, w) {
			return false
		}
	}
	return true
}

// Interface checks.
var (
	_ backends.Verifier       = (*DB)(nil)
	_ backends.PassCacheKeyer = (*DB)(nil)
	_ backends.Closer         = (*DB)(nil)
	_ backends.Reloader       = (*DB)(nil)
)
