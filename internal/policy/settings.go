package policy

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/vars"
)

// Settings are Dovecot 2.3's auth_policy_* settings, parsed; internal/config
// fills them with Dovecot's defaults (DefaultAttributes and the rest).
type Settings struct {
	URL       string        // auth_policy_server_url; "" turns the hook off
	APIHeader string        // auth_policy_server_api_header: "Name:value", or a bare X-API-Key value
	Timeout   time.Duration // auth_policy_server_timeout_msecs; 0 means Dovecot's HTTP default, 60 s
	HashMech  string        // auth_policy_hash_mech (a Dovecot hash name)
	Nonce     string        // auth_policy_hash_nonce
	// HashTruncate is auth_policy_hash_truncate: bits of the hash kept
	// (0 keeps all).
	HashTruncate int
	// Attributes is auth_policy_request_attributes, parsed.
	Attributes *Attributes

	RejectOnFail    bool // auth_policy_reject_on_fail
	CheckBeforeAuth bool // auth_policy_check_before_auth
	CheckAfterAuth  bool // auth_policy_check_after_auth
	ReportAfterAuth bool // auth_policy_report_after_auth
	LogOnly         bool // auth_policy_log_only
}

// DefaultAttributes is Dovecot 2.3's auth_policy_request_attributes.
const DefaultAttributes = "login=%{requested_username} pwhash=%{hashed_password} remote=%{rip} device_id=%{client_id} protocol=%s session_id=%{session}"

// httpDefaultTimeout is what Dovecot's HTTP client waits when
// auth_policy_server_timeout_msecs is 0 (no absolute timeout: its per
// request default, HTTP_CLIENT_DEFAULT_REQUEST_TIMEOUT_MSECS).
const httpDefaultTimeout = time.Minute

// CheckURL checks an auth_policy_server_url: an http or https URL with a
// host. Dovecot finds a bad one only when a request is made.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	for _, cmd := range []string{"allow", "report"} {
		if _, err := url.Parse(commandURL(s, cmd)); err != nil {
			return fmt.Errorf("invalid URL with the command added: %w", err)
		}
	}
	return nil
}

// commandURL adds the command as Dovecot does: after '&' when the URL ends
// with one, else after '?' (even when the URL has a query already).
func commandURL(base, cmd string) string {
	if strings.HasSuffix(base, "&") {
		return base + "command=" + cmd
	}
	return base + "?command=" + cmd
}

// HashBits returns the output size in bits of a Dovecot hash method; false
// when there is no such method (Dovecot: "invalid auth_policy_hash_mech").
func HashBits(mech string) (int, bool) {
	newHash, ok := vars.HashMethod(mech)
	if !ok {
		return 0, false
	}
	return newHash().Size() * 8, true
}

// Check makes the checks Dovecot's auth settings make when a policy server
// is set, with its messages, and the ones Dovecot makes only per request.
func (s Settings) Check() error {
	if s.URL == "" {
		return nil
	}
	var errs []error
	if err := CheckURL(s.URL); err != nil {
		errs = append(errs, fmt.Errorf("auth_policy_server_url: %w", err))
	}
	if s.Nonce == "" {
		errs = append(errs, errors.New("auth_policy_hash_nonce must be set when policy server is used"))
	}
	if bits, ok := HashBits(s.HashMech); !ok {
		errs = append(errs, fmt.Errorf("invalid auth_policy_hash_mech %q given", s.HashMech))
	} else if s.HashTruncate >= bits {
		errs = append(errs, fmt.Errorf("auth_policy_hash_truncate is not smaller than digest size (%d >= %d)", s.HashTruncate, bits))
	}
	if _, _, err := SplitAPIHeader(s.APIHeader); err != nil {
		errs = append(errs, fmt.Errorf("auth_policy_server_api_header: %w", err))
	}
	if s.Attributes == nil {
		errs = append(errs, errors.New("auth_policy_request_attributes missing"))
	}
	return errors.Join(errs...)
}

// SplitAPIHeader splits auth_policy_server_api_header as Dovecot does:
// "Name:value" sends that header (the value as written, leading blanks
// included), anything else is the value of X-API-Key. Empty sends none.
func SplitAPIHeader(s string) (name, value string, err error) {
	if s == "" {
		return "", "", nil
	}
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		name, value = "X-API-Key", s
	}
	if !validToken(name) {
		return "", "", fmt.Errorf("%q is not a valid header name", name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return "", "", errors.New("the header value has a line break or NUL")
	}
	return name, value, nil
}

// validToken reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Attributes is a parsed auth_policy_request_attributes: the JSON object a
// request carries, before expansion.
type Attributes struct {
	src   string
	attrs []attribute // sorted by key, as Dovecot sorts them
}

// attribute is one key=value pair. A key "group/name" is name inside the
// object group.
type attribute struct {
	key         string
	group, name string
	nested      bool
	value       *vars.Template
}

// String returns the setting as written.
func (a *Attributes) String() string { return a.src }

// ParseAttributes parses auth_policy_request_attributes: key=value pairs
// separated by blanks (Dovecot splits at every run of blanks and '=', so
// "key value" is a pair too, and a value cannot hold '=' or a blank). An
// odd number of words, a key with more than one '/' or with '%', bad
// template syntax and unknown variables are errors.
func ParseAttributes(s string) (*Attributes, error) {
	words := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '=' })
	if len(words)%2 != 0 {
		return nil, fmt.Errorf("%q is not a list of key=value pairs (the last key has no value)", words[len(words)-1])
	}
	a := &Attributes{src: s}
	for i := 0; i < len(words); i += 2 {
		at, err := parseAttribute(words[i], words[i+1])
		if err != nil {
			return nil, err
		}
		a.attrs = append(a.attrs, at)
	}
	// Dovecot sorts with strcmp: byte order.
	slices.SortStableFunc(a.attrs, func(x, y attribute) int { return cmp.Compare(x.key, y.key) })
	return a, nil
}

// ParseAttributes24 parses Dovecot 2.4's auth_policy_request_attributes, a
// list of key = template pairs in 2.4 template syntax.
func ParseAttributes24(pairs [][2]string) (*Attributes, error) {
	a := &Attributes{}
	var src []string
	for _, p := range pairs {
		at, err := parseAttributeIn(vars.Syntax24, p[0], p[1])
		if err != nil {
			return nil, err
		}
		a.attrs = append(a.attrs, at)
		src = append(src, p[0]+"="+p[1])
	}
	a.src = strings.Join(src, " ")
	slices.SortStableFunc(a.attrs, func(x, y attribute) int { return cmp.Compare(x.key, y.key) })
	return a, nil
}

// Pairs returns the key/template pairs, sorted by key.
func (a *Attributes) Pairs() [][2]string {
	out := make([][2]string, len(a.attrs))
	for i, at := range a.attrs {
		out[i] = [2]string{at.key, at.value.String()}
	}
	return out
}

func parseAttribute(key, value string) (attribute, error) {
	return parseAttributeIn(vars.Syntax23, key, value)
}

func parseAttributeIn(syntax vars.Syntax, key, value string) (attribute, error) {
	at := attribute{key: key, name: key}
	if strings.Count(key, "/") > 1 {
		return at, fmt.Errorf("key %q: objects nest one level deep (group/name)", key)
	}
	if strings.Contains(key, "%") {
		return at, fmt.Errorf("key %q: keys cannot hold '%%'", key)
	}
	if g, n, ok := strings.Cut(key, "/"); ok {
		at.group, at.name, at.nested = g, n, true
	}
	t, err := syntax.ParsePolicy(value)
	if err != nil {
		return at, fmt.Errorf("%s: %w", key, err)
	}
	if u := t.Unknown(); len(u) > 0 {
		return at, fmt.Errorf("%s: unknown variable %s in %q", key, strings.Join(u, ", "), value)
	}
	at.value = t
	return at, nil
}
