package oauth2

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/vars"
)

// Bounds on what an identity provider can make authd read or wait for.
const (
	maxBody        = 64 << 10 // an introspection answer is a few hundred bytes
	maxFields      = 256
	defaultTimeout = 60 * time.Second // Dovecot's http-client request timeout
	maxCAFiles     = 1000
	maxCAFileSize  = 1 << 20
)

// errUnexpected marks an answer that could not be read: the status was
// neither 2xx nor 4xx, the body was too large or not a JSON object. It is
// a temporary failure, as in Dovecot (INTERNAL_FAILURE).
var errUnexpected = errors.New("unexpected answer")

// tokenFields are the fields of a token (introspection, tokeninfo or JWT
// claims) in arrival order; a later duplicate replaces an earlier one, as
// Dovecot's auth_fields_add does.
type tokenFields struct {
	keys []string
	vals map[string]string
}

func (f *tokenFields) add(k, v string) {
	if f.vals == nil {
		f.vals = map[string]string{}
	}
	if _, ok := f.vals[k]; !ok {
		f.keys = append(f.keys, k)
	}
	f.vals[k] = v
}

// Lookup implements vars.FieldLookup for %{oauth2:…}.
func (f *tokenFields) Lookup(k string) (string, bool) {
	v, ok := f.vals[k]
	return v, ok
}

func (f *tokenFields) merge(o *tokenFields) {
	for _, k := range o.keys {
		f.add(k, o.vals[k])
	}
}

var _ vars.FieldLookup = (*tokenFields)(nil)

// answer is one HTTP exchange's result: the status class and the fields.
type answer struct {
	ok     bool // 2xx; 4xx answers are read too, and ok is false
	fields tokenFields
}

// newHTTPClient builds the client for the settings' TLS and connection
// limits. It never uses a proxy from the environment and never follows a
// redirect (Dovecot's client does neither): the token goes only to the
// configured endpoint.
func newHTTPClient(s *Settings) (*http.Client, error) {
	tc, err := tlsConfig(s)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		MaxConnsPerHost:       s.MaxParallelConnections,
		MaxIdleConnsPerHost:   s.MaxParallelConnections,
		IdleConnTimeout:       time.Duration(s.MaxIdleTimeMsecs) * time.Millisecond,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 0, // the request's context bounds it
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// tlsConfig turns the tls_* settings into a client configuration.
// tls_cipher_suite is OpenSSL syntax and is not applied: Go's defaults
// offer only modern suites.
func tlsConfig(s *Settings) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.TLSAllowInvalidCert} //nolint:gosec // an explicit admin choice, as in Dovecot
	if s.TLSCACertFile != "" || s.TLSCACertDir != "" {
		pool := x509.NewCertPool()
		if s.TLSCACertFile != "" {
			if err := addCAFile(pool, s.TLSCACertFile); err != nil {
				return nil, err
			}
		}
		if s.TLSCACertDir != "" {
			if err := addCADir(pool, s.TLSCACertDir); err != nil {
				return nil, err
			}
		}
		tc.RootCAs = pool
	}
	if s.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.TLSCertFile, s.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: oauth2: tls_cert_file/tls_key_file: %w", backends.ErrConfig, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func addCAFile(pool *x509.CertPool, path string) error {
	b, err := readBounded(path, maxCAFileSize)
	if err != nil {
		return fmt.Errorf("%w: oauth2: tls_ca_cert_file: %w", backends.ErrConfig, err)
	}
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("%w: oauth2: tls_ca_cert_file %s holds no PEM certificate", backends.ErrConfig, path)
	}
	return nil
}

// addCADir adds every PEM certificate of the directory's regular files
// (OpenSSL's hashed names or any other).
func addCADir(pool *x509.CertPool, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%w: oauth2: tls_ca_cert_dir: %w", backends.ErrConfig, err)
	}
	for i, e := range ents {
		if i >= maxCAFiles {
			break
		}
		if b, err := readBounded(filepath.Join(dir, e.Name()), maxCAFileSize); err == nil {
			pool.AppendCertsFromPEM(b)
		}
	}
	return nil
}

// readBounded reads a regular file of at most max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBoundedFile(f, max)
}

// readBoundedFile reads an open regular file of at most max bytes.
func readBoundedFile(f *os.File, max int64) ([]byte, error) {
	path := f.Name()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

// request describes one call to the identity provider.
type request struct {
	method, url string
	form        string // POST body (application/x-www-form-urlencoded)
	bearer      string // sent as "Authorization: Bearer …" when set
	// what names the endpoint in errors: the configured URL, never the
	// one with the token or the client secret appended.
	what string
}

// do runs one request within ctx and the configured timeout, and reads
// the answer as Dovecot's oauth2-request.c does: 2xx and 4xx carry a JSON
// object whose scalar members become fields (an empty body is no
// fields), anything else is a temporary failure.
func (db *DB) do(ctx context.Context, r request, vc *vars.Context) (answer, error) {
	timeout := defaultTimeout
	if db.set.TimeoutMsecs > 0 {
		timeout = time.Duration(db.set.TimeoutMsecs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if r.method == http.MethodPost {
		body = strings.NewReader(r.form)
	}
	hr, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return answer{}, fmt.Errorf("oauth2: %s: invalid request URL", r.what)
	}
	hr.Header.Set("User-Agent", "authd-oauth2-passdb")
	hr.Header.Set("Accept", "application/json")
	if r.method == http.MethodPost {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if r.bearer != "" && hr.URL.User == nil {
		hr.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if db.set.SendAuthHeaders {
		addAuthHeaders(hr.Header, vc)
	}
	resp, err := db.client.Do(hr)
	if err != nil {
		// *url.Error quotes the URL, which may hold the token or the
		// client secret: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return answer{}, fmt.Errorf("oauth2: %s %s: %w", r.method, r.what, err)
	}
	defer resp.Body.Close()
	return readAnswer(resp, r.what)
}

func readAnswer(resp *http.Response, what string) (answer, error) {
	class := resp.StatusCode / 100
	if class != 2 && class != 4 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return answer{}, fmt.Errorf("oauth2: %s: %w: HTTP status %d", what, errUnexpected, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return answer{}, fmt.Errorf("oauth2: %s: reading the answer: %w", what, err)
	}
	if len(b) > maxBody {
		return answer{}, fmt.Errorf("oauth2: %s: %w: answer larger than %d bytes", what, errUnexpected, maxBody)
	}
	a := answer{ok: class == 2}
	if len(b) > 0 {
		if err := parseObject(b, &a.fields); err != nil {
			return answer{}, fmt.Errorf("oauth2: %s: %w: %w", what, errUnexpected, err)
		}
	}
	if err := checkTokenFields(&a.fields); err != nil {
		return answer{}, fmt.Errorf("oauth2: %s: %w", what, err)
	}
	return a, nil
}

// checkTokenFields refuses what Dovecot's oauth2_request_field_parse
// refuses: a token that is not a bearer token, an expires_in that is not
// a number.
func checkTokenFields(f *tokenFields) error {
	for _, k := range f.keys {
		v := f.vals[k]
		switch strings.ToLower(k) {
		case "expires_in":
			if _, err := strconv.ParseUint(v, 10, 32); err != nil {
				return fmt.Errorf("malformed number in expires_in")
			}
		case "token_type":
			if !strings.EqualFold(v, "bearer") {
				return fmt.Errorf("expected a Bearer token")
			}
		}
	}
	return nil
}

// parseObject reads a JSON object's members into f. Scalars become
// fields (strings unquoted, numbers as written, true/false as words);
// nested objects and arrays are skipped and null is no value, as in
// Dovecot's oauth2_request_parse_json.
func parseObject(b []byte, f *tokenFields) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return errors.New("invalid JSON")
		}
		key, _ := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return errors.New("invalid JSON")
		}
		if v, ok := scalar(raw); ok {
			if len(f.keys) >= maxFields {
				return errors.New("too many fields")
			}
			f.add(key, v)
		}
	}
	if _, err := dec.Token(); err != nil {
		return errors.New("invalid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// scalar returns a JSON value as Dovecot's field text.
func scalar(raw json.RawMessage) (string, bool) {
	var v any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// addAuthHeaders adds send_auth_headers' X-Dovecot-Auth-* headers.
func addAuthHeaders(h http.Header, vc *vars.Context) {
	if vc == nil {
		return
	}
	if vc.Service != "" {
		h.Set("X-Dovecot-Auth-Service", vc.Service)
	}
	if vc.LocalIP != "" {
		h.Set("X-Dovecot-Auth-Local", net.JoinHostPort(vc.LocalIP, portOrZero(vc.LocalPort)))
	}
	if vc.RemoteIP != "" {
		h.Set("X-Dovecot-Auth-Remote", net.JoinHostPort(vc.RemoteIP, portOrZero(vc.RemotePort)))
	}
}

func portOrZero(p string) string {
	if p == "" {
		return "0"
	}
	return p
}

// escapeParam appends a value to a URL query or form the way Dovecot's
// http_url_escape_param does: RFC 3986 query characters stay, and
// "&;/?=+" and everything else are percent-encoded.
func escapeParam(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isQueryChar(c) && !strings.ContainsRune("&;/?=+", rune(c)) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// isQueryChar reports RFC 3986 pchar / "/" / "?" characters.
func isQueryChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@/?", c) >= 0
}
