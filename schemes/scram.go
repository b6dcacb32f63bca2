package schemes

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"math"
	"strconv"
	"strings"
	"sync"
)

// SCRAM-SHA-1 / SCRAM-SHA-256 stored keys (§3, RFC 5802 §3, RFC 7677):
// "<iter>,<b64 salt>,<b64 StoredKey>,<b64 ServerKey>" with
// SaltedPassword = PBKDF2(pass, salt, iter), StoredKey =
// H(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword,
// "Server Key"). No SASLprep (Dovecot does none, §2.4).

const (
	scramMinIterations     = 4096
	scramDefaultIterations = 4096
	scramSaltLen           = 16
)

// SCRAMCredentials is a parsed {SCRAM-SHA-*} value, as the SASL SCRAM
// mechanisms need it.
type SCRAMCredentials struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// ParseSCRAMCredentials parses stored SCRAM data (the text Credentials
// returns for "SCRAM-SHA-1" or "SCRAM-SHA-256"), checking it as Dovecot
// does: four fields, 4096 ≤ iterations ≤ INT_MAX, base64 fields, keys of
// the hash's size.
func ParseSCRAMCredentials(schemeName string, data string) (SCRAMCredentials, error) {
	_, size, err := scramHash(schemeName)
	if err != nil {
		return SCRAMCredentials{}, err
	}
	return parseSCRAM(schemeName, size, data)
}

func scramHash(name string) (func() hash.Hash, int, error) {
	switch strings.ToUpper(name) {
	case "SCRAM-SHA-1":
		return sha1.New, sha1.Size, nil
	case "SCRAM-SHA-256":
		return sha256.New, sha256.Size, nil
	}
	return nil, 0, fmt.Errorf("%w %q", ErrUnknownScheme, clip(name))
}

func parseSCRAM(name string, size int, raw string) (c SCRAMCredentials, err error) {
	f := strings.Split(raw, ",")
	if len(f) != 4 {
		return c, fmt.Errorf("%w: invalid %s passdb entry format", ErrMalformed, name)
	}
	iter, ok := parseUintStrict(f[0])
	if !ok || iter < scramMinIterations || iter > math.MaxInt32 {
		return c, fmt.Errorf("%w: invalid %s iteration count", ErrMalformed, name)
	}
	c.Iterations = int(iter)
	if c.Salt, err = decodeDovecotBase64(f[1]); err != nil {
		return c, fmt.Errorf("%w: invalid %s salt", ErrMalformed, name)
	}
	if c.StoredKey, err = decodeDovecotBase64(f[2]); err != nil || len(c.StoredKey) != size {
		return c, fmt.Errorf("%w: invalid %s StoredKey", ErrMalformed, name)
	}
	if c.ServerKey, err = decodeDovecotBase64(f[3]); err != nil || len(c.ServerKey) != size {
		return c, fmt.Errorf("%w: invalid %s ServerKey", ErrMalformed, name)
	}
	return c, nil
}

// scramKeys derives (StoredKey, ServerKey).
func scramKeys(h func() hash.Hash, pw, salt []byte, iter int) (stored, server []byte, err error) {
	salted, err := pbkdf2Key(h, pw, salt, iter, h().Size())
	if err != nil {
		return nil, nil, err
	}
	mac := hmac.New(h, salted)
	mac.Write([]byte("Client Key"))
	clientKey := mac.Sum(nil)
	hh := h()
	hh.Write(clientKey)
	stored = hh.Sum(nil)
	mac = hmac.New(h, salted)
	mac.Write([]byte("Server Key"))
	server = mac.Sum(nil)
	clear(salted)
	clear(clientKey)
	return stored, server, nil
}

func verifySCRAM(c call, name string, raw string, pw []byte) (bool, error) {
	h, size, err := scramHash(name)
	if err != nil {
		return false, err
	}
	cred, err := parseSCRAM(name, size, raw)
	if err != nil {
		return false, err
	}
	// The count comes from the stored value (Dovecot accepts up to
	// INT_MAX, hours of work).
	if err := c.within(budgetSCRAM, bound{"iterations", uint64(cred.Iterations), uint64(c.limits().SCRAMMaxIterations)}); err != nil {
		return false, err
	}
	if err := c.begin(budgetSCRAM); err != nil {
		return false, err
	}
	stored, _, err := scramKeys(h, pw, cred.Salt, cred.Iterations)
	if err != nil {
		return false, err
	}
	// Only StoredKey is checked against a plaintext password (§3).
	return hmac.Equal(stored, cred.StoredKey), nil
}

// generateSCRAM writes a fresh salt of 16 bytes and 4096 iterations, or
// rounds iterations if given (Dovecot 2.3 ignores -r here; 2.4 honours it).
func generateSCRAM(name string, pw []byte, rounds int) (string, error) {
	h, _, err := scramHash(name)
	if err != nil {
		return "", err
	}
	iter := scramDefaultIterations
	if rounds != 0 {
		if rounds < scramMinIterations || rounds > maxKDFIterations {
			return "", fmt.Errorf("schemes: %s iterations must be %d..%d", name, scramMinIterations, maxKDFIterations)
		}
		iter = rounds
	}
	return scramValue(h, pw, randomBytes(scramSaltLen), iter)
}

// scramValue is the stored form of pw's keys under salt and iter.
func scramValue(h func() hash.Hash, pw, salt []byte, iter int) (string, error) {
	stored, server, err := scramKeys(h, pw, salt, iter)
	if err != nil {
		return "", err
	}
	b := base64.StdEncoding
	return strconv.Itoa(iter) + "," + b.EncodeToString(salt) + "," + b.EncodeToString(stored) + "," + b.EncodeToString(server), nil
}

// deriveSCRAM makes the credentials of a SCRAM exchange from a plaintext
// password, salted with UserSalt: a user's salt is the same on every try,
// as a stored one is, and as the made-up exchange of an unknown user
// announces it.
func deriveSCRAM(name string, pw []byte, user string) (string, error) {
	h, _, err := scramHash(name)
	if err != nil {
		return "", err
	}
	return scramValue(h, pw, UserSalt(name, user), scramDefaultIterations)
}

// userSaltKey keys UserSalt for the life of the process.
var userSaltKey = sync.OnceValue(func() []byte { return randomBytes(32) })

// UserSalt is the 16-byte salt a SCRAM exchange announces for a user
// without a stored one: credentials derived from a plaintext password,
// and the made-up exchange that answers for an unknown user (so that the
// two cannot be told apart). A keyed hash of scheme and user name: stable
// while the process runs, not computable outside it.
func UserSalt(scheme, user string) []byte {
	mac := hmac.New(sha256.New, userSaltKey())
	mac.Write([]byte(strings.ToUpper(scheme)))
	mac.Write([]byte{0})
	mac.Write([]byte(user))
	return mac.Sum(nil)[:scramSaltLen]
}

func verifySCRAMSHA1(c call, raw string, pw []byte, _ string) (bool, error) {
	return verifySCRAM(c, "SCRAM-SHA-1", raw, pw)
}

func verifySCRAMSHA256(c call, raw string, pw []byte, _ string) (bool, error) {
	return verifySCRAM(c, "SCRAM-SHA-256", raw, pw)
}

func generateSCRAMSHA1(pw []byte, _ string, rounds int) (string, error) {
	return generateSCRAM("SCRAM-SHA-1", pw, rounds)
}

func generateSCRAMSHA256(pw []byte, _ string, rounds int) (string, error) {
	return generateSCRAM("SCRAM-SHA-256", pw, rounds)
}
