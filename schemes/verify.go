package schemes

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/sync/semaphore"
)

// Verifier checks passwords against stored values within a cost budget
// (Limits): a stored value asking for more than the limits allow is
// ErrOverBudget before any work, and concurrent argon2, scrypt and yescrypt
// verifications share a memory budget. It is safe for concurrent use; a
// process (or each engine) builds one with NewVerifier and keeps it (the
// zero Verifier has no memory budget and must not be used).
type Verifier struct {
	limits Limits // with defaults filled in
	mem    *semaphore.Weighted
	hooks  hooks
}

// NewVerifier returns a Verifier with the given limits; zero fields take
// their defaults (DefaultLimits).
func NewVerifier(l Limits) *Verifier {
	l = l.WithDefaults()
	return &Verifier{limits: l, mem: semaphore.NewWeighted(l.MemoryBudgetKiB)}
}

// Limits returns the limits in force, defaults filled in.
func (v *Verifier) Limits() Limits { return v.limits }

// Verify checks password against data stored under scheme. scheme may carry
// an encoding suffix (.HEX, .B64, .BASE64) and be in any case; data is the
// value after the "{SCHEME}" prefix (see Split). user is the original login
// name as the client sent it; only DIGEST-MD5 uses it (§3).
//
// It returns (true, nil) on a match, (false, nil) on a mismatch and
// (false, err) when it cannot tell; err wraps ErrUnknownScheme,
// ErrMalformed, ErrUnsupported or ErrOverBudget (then it is also an
// *OverBudgetError), or is the context's error when ctx ended while the
// verification waited for memory or before it started hashing. ctx does
// not interrupt hashing once it runs: the limits bound that. It never
// panics on any input.
func (v *Verifier) Verify(ctx context.Context, schemeName, data string, password []byte, user string) (bool, error) {
	s, enc, suffix, err := lookup(schemeName)
	if err != nil {
		return false, fmt.Errorf("%w %q", ErrUnknownScheme, clip(schemeName))
	}
	raw, err := decodeStored(data, s, enc, suffix != "")
	if err != nil {
		return false, err
	}
	// Dovecot handles passwords as C strings, so a password can never hold
	// a NUL (§2.4); C code would silently cut it there. Refusing is the safe
	// reading.
	if bytes.IndexByte(password, 0) >= 0 {
		return false, nil
	}
	return s.verify(call{ctx: ctx, v: v}, raw, password, user)
}

// Shape describes the cost of verifying data stored under scheme: the
// scheme family and its cost parameters ("SHA-CRYPT rounds=5000",
// "BLF-CRYPT cost=10", "ARGON2 m=65536 t=3 p=1 …"), or the scheme's name
// for a scheme whose cost is fixed. Two values of the same shape cost the
// same to verify, which is what the engine needs to make an unknown user
// cost what a known one costs. Nothing is hashed for a costly scheme (the
// measure stops at its limit check); a fixed-cost scheme is verified with
// an empty password, which costs microseconds.
func (v *Verifier) Shape(schemeName, data string) (string, error) {
	s, enc, suffix, err := lookup(schemeName)
	if err != nil {
		return "", fmt.Errorf("%w %q", ErrUnknownScheme, clip(schemeName))
	}
	raw, err := decodeStored(data, s, enc, suffix != "")
	if err != nil {
		return "", err
	}
	var shape string
	_, err = s.verify(call{ctx: context.Background(), v: v, shape: &shape}, raw, nil, "")
	switch {
	case errors.Is(err, errMeasured):
		return shape, nil
	case err != nil:
		return "", err
	}
	return s.name, nil
}

// defaultVerifier serves the package-level Verify. Its limits are the
// defaults and never change; it only holds the memory budget that
// concurrent callers of Verify share.
var defaultVerifier = NewVerifier(Limits{})

// Verify is Verifier.Verify with the default limits (DefaultLimits) and
// no deadline, for tools and tests. The daemon's engine uses its own
// Verifier with the configured limits and each request's context.
func Verify(schemeName, data string, password []byte, user string) (bool, error) {
	return defaultVerifier.Verify(context.Background(), schemeName, data, password, user)
}

// Generate produces the stored form of password for scheme, without the
// "{SCHEME}" prefix, encoded as the scheme's suffix or default encoding
// asks. rounds 0 means the scheme default (what doveadm pw writes without
// -r); where Dovecot ignores -r (SCRAM in 2.3) authd honours it. user is
// needed by DIGEST-MD5.
func Generate(schemeName string, password []byte, user string, rounds int) (string, error) {
	s, enc, _, err := lookup(schemeName)
	if err != nil {
		return "", fmt.Errorf("%w %q", ErrUnknownScheme, clip(schemeName))
	}
	if rounds < 0 {
		return "", fmt.Errorf("schemes: negative rounds %d", rounds)
	}
	if bytes.IndexByte(password, 0) >= 0 {
		return "", fmt.Errorf("schemes: password contains a NUL byte")
	}
	raw, err := s.generate(password, user, rounds)
	if err != nil {
		return "", err
	}
	return encodeStored(raw, enc), nil
}

// clip shortens a (non-secret) stored fragment for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// ctEqual compares a stored string with computed bytes in time that depends
// only on their lengths (lengths of stored hashes are not secret).
func ctEqual(stored string, computed []byte) bool {
	if len(stored) != len(computed) {
		return false
	}
	var v byte
	for i := 0; i < len(computed); i++ {
		v |= stored[i] ^ computed[i]
	}
	return subtle.ConstantTimeByteEq(v, 0) == 1
}

// randomBytes fills n bytes from crypto/rand.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never fails on supported platforms (Go ≥ 1.24).
	_, _ = rand.Read(b)
	return b
}

// randomCryptSalt returns n random characters of the crypt alphabet.
func randomCryptSalt(n int) string {
	b := randomBytes(n)
	for i := range b {
		b[i] = cryptAlphabet[b[i]&0x3f]
	}
	return string(b)
}
