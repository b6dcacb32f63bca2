package oauth2

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Local validation of a JWT access token (introspection_mode = local), with
// Dovecot 2.3's rules (oauth2-jwt.c):
//
//   - the header's typ must be "JWT" and alg one of the allowlist below
//     ("none" and anything else are refused before a key is looked up);
//   - the claims need sub and exp; exp, nbf and iat are seconds since the
//     epoch or ISO 8601 dates; the token must not be expired, not yet
//     valid, or issued in the future, and exp may not precede nbf or iat
//     (no leeway, as in Dovecot);
//   - with issuers set, iss must be one of them;
//   - the signature is checked with the key of (azp, alg, kid) from the
//     key dict (keys.go).
//
// Signature checking is go-jose's (github.com/go-jose/go-jose/v4): a
// maintained JOSE implementation that parses JWKs as well as it verifies
// signatures, so keys can be stored as JWK (as Dovecot's dcrypt accepts)
// or PEM. It requires HMAC secrets at least as long as the hash (RFC 7518
// §3.2), where Dovecot takes any length; a shorter secret refuses every
// token, which docs/operations.md notes.
//
// Every failure here is a wrong token (PASSWORD_MISMATCH in Dovecot),
// including a key that cannot be found or read.

var allowedAlgs = map[string]jose.SignatureAlgorithm{
	"HS256": jose.HS256, "HS384": jose.HS384, "HS512": jose.HS512,
	"RS256": jose.RS256, "RS384": jose.RS384, "RS512": jose.RS512,
	"PS256": jose.PS256, "PS384": jose.PS384, "PS512": jose.PS512,
	"ES256": jose.ES256, "ES384": jose.ES384, "ES512": jose.ES512,
}

// jwtHeader is the part of the JOSE header Dovecot reads.
type jwtHeader struct {
	typ, alg, kid string
	hasKid        bool
}

// validateJWT checks token and returns its claims as fields. The error
// says why it was refused and never contains the token.
func (db *DB) validateJWT(token string, now time.Time) (*tokenFields, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT token")
	}
	h, err := parseHeader(parts[0])
	if err != nil {
		return nil, err
	}
	kid := "default"
	if h.hasKid {
		if h.kid == "" {
			return nil, errors.New("'kid' field is empty")
		}
		kid = escapeIdentifier(h.kid)
	}
	claims, err := decodeSegment(parts[1])
	if err != nil {
		return nil, errors.New("invalid JWT payload")
	}
	var body map[string]any
	if err := unmarshalNumbers(claims, &body); err != nil {
		return nil, errors.New("invalid JWT payload")
	}
	if err := db.checkClaims(body, now); err != nil {
		return nil, err
	}
	azp := "default"
	if v, ok := claimString(body, "azp"); ok {
		azp = escapeIdentifier(v)
	}
	if err := db.checkSignature(token, azp, h.alg, kid); err != nil {
		return nil, err
	}
	f := &tokenFields{}
	flatten(body, f)
	return f, nil
}

func parseHeader(seg string) (jwtHeader, error) {
	b, err := decodeSegment(seg)
	if err != nil || len(b) == 0 {
		return jwtHeader{}, errors.New("not a JWT token")
	}
	var m map[string]any
	if err := unmarshalNumbers(b, &m); err != nil {
		return jwtHeader{}, errors.New("not a JWT token")
	}
	var h jwtHeader
	h.typ, _ = claimString(m, "typ")
	if h.typ != "JWT" {
		return h, errors.New("cannot find 'typ' field")
	}
	alg, ok := claimString(m, "alg")
	if !ok {
		return h, errors.New("cannot find 'alg' field")
	}
	h.alg = strings.ToUpper(alg)
	h.kid, h.hasKid = claimString(m, "kid")
	return h, nil
}

// decodeSegment decodes base64url without padding (tolerating padding).
func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func unmarshalNumbers(b []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

// claimString returns a scalar claim as text, as Dovecot's get_field
// does (objects and arrays are not values).
func claimString(m map[string]any, k string) (string, bool) {
	switch v := m[k].(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// claimTime reads exp/nbf/iat: 0 when absent, an error when malformed.
func claimTime(m map[string]any, k string) (int64, bool, error) {
	v, ok := claimString(m, k)
	if !ok {
		return 0, false, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, true, fmt.Errorf("malformed '%s' field", k)
		}
		return n, true, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil && t.Unix() >= 0 {
			return t.Unix(), true, nil
		}
	}
	return 0, true, fmt.Errorf("malformed '%s' field", k)
}

func (db *DB) checkClaims(body map[string]any, now time.Time) error {
	if _, ok := claimString(body, "sub"); !ok {
		return errors.New("missing 'sub' field")
	}
	t0 := now.Unix()
	exp, ok, err := claimTime(body, "exp")
	switch {
	case err != nil:
		return err
	case !ok:
		return errors.New("missing 'exp' field")
	}
	nbf, _, err := claimTime(body, "nbf")
	if err != nil {
		return err
	}
	iat, _, err := claimTime(body, "iat")
	if err != nil {
		return err
	}
	if nbf == 0 {
		nbf = t0
	}
	if iat == 0 {
		iat = t0
	}
	switch {
	case nbf > t0:
		return errors.New("token is not valid yet")
	case iat > t0:
		return errors.New("token is issued in future")
	case exp < t0:
		return errors.New("token has expired")
	case exp < iat || exp < nbf:
		return errors.New("token time values are conflicting")
	}
	if iss := db.set.issuers(); len(iss) > 0 {
		v, ok := claimString(body, "iss")
		if !ok {
			return errors.New("token is missing 'iss' field")
		}
		found := false
		for _, i := range iss {
			found = found || i == v
		}
		if !found {
			return fmt.Errorf("issuer %q is not allowed", truncate(v, 128))
		}
	}
	return nil
}

// checkSignature verifies the token with the key of (azp, alg, kid).
func (db *DB) checkSignature(token, azp, alg, kid string) error {
	sa, ok := allowedAlgs[alg]
	if !ok {
		return fmt.Errorf("unsupported algorithm %q", truncate(alg, 16))
	}
	key, err := db.verificationKey(azp, alg, kid)
	if err != nil {
		return err
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{sa})
	if err != nil {
		return fmt.Errorf("invalid JWS: %w", err)
	}
	if _, err := jws.Verify(key); err != nil {
		return errors.New("incorrect JWT signature")
	}
	return nil
}

// verificationKey returns the cached or dict-loaded key for the triple.
func (db *DB) verificationKey(azp, alg, kid string) (any, error) {
	id := azp + "/" + alg + "/" + kid
	if k, ok := db.keys.get(id); ok {
		return k, nil
	}
	text, err := db.dict.lookup("shared/" + id)
	if errors.Is(err, errKeyNotFound) {
		return nil, fmt.Errorf("%s key %q not found", alg, truncate(kid, 64))
	}
	if err != nil {
		return nil, err
	}
	var key any
	if strings.HasPrefix(alg, "HS") {
		key, err = decodeHMACKey(text)
	} else {
		key, err = parsePublicKey(text)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot load key %q: %w", truncate(kid, 64), err)
	}
	db.keys.put(id, key)
	return key, nil
}

// parsePublicKey reads a PEM "PUBLIC KEY" (PKIX) or a JWK.
func parsePublicKey(text string) (any, error) {
	text = strings.TrimSpace(text)
	if strings.HasPrefix(text, "{") {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON([]byte(text)); err != nil {
			return nil, errors.New("invalid JWK")
		}
		return jwk.Public().Key, nil
	}
	blk, _ := pem.Decode([]byte(text))
	if blk == nil {
		return nil, errors.New("missing public key header")
	}
	switch blk.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(blk.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(blk.Bytes)
	}
	return nil, fmt.Errorf("unexpected PEM block %q", truncate(blk.Type, 32))
}

// flatten copies the claims into fields as Dovecot's
// oauth2_jwt_copy_fields does: scalars by name, the members of nested
// objects by their own names, breadth first. Arrays, which Dovecot cannot
// represent, become their string elements joined by spaces, so that an
// "aud" list can satisfy scope.
func flatten(root map[string]any, f *tokenFields) {
	queue := []map[string]any{root}
	for len(queue) > 0 && len(f.keys) < maxFields {
		m := queue[0]
		queue = queue[1:]
		for _, k := range sortedKeys(m) {
			switch v := m[k].(type) {
			case map[string]any:
				queue = append(queue, v)
			case []any:
				var parts []string
				for _, e := range v {
					if s, ok := e.(string); ok {
						parts = append(parts, s)
					}
				}
				f.add(k, strings.Join(parts, " "))
			default:
				if s, ok := claimString(m, k); ok {
					f.add(k, s)
				}
			}
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }
