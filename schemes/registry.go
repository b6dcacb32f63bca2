package schemes

import (
	"errors"
	"strings"
)

// Sentinel errors. Verify, Generate and Credentials wrap them with %w and a
// description of what was wrong (never the password).
var (
	// ErrUnknownScheme: the scheme name (or its encoding suffix) is not known.
	ErrUnknownScheme = errors.New("unknown password scheme")
	// ErrMalformed: the stored value cannot be decoded or parsed for its
	// scheme (bad base64/hex, wrong length, missing fields, cost out of range).
	ErrMalformed = errors.New("malformed stored password")
	// ErrSchemeUnavailable: the wanted credentials cannot be produced from the
	// stored scheme (e.g. CRAM-MD5 asked of a {SHA512-CRYPT} user, §6).
	ErrSchemeUnavailable = errors.New("credentials scheme not available")
	// ErrUnsupported: the stored value is a format Dovecot (via libxcrypt)
	// would check but authd does not implement. Verify can then not tell
	// whether the password is right. (A value asking for more work or
	// memory than the Limits allow is ErrOverBudget, budget.go.)
	ErrUnsupported = errors.New("stored password format not supported")
)

// encoding is how the raw bytes of a scheme are written in the passdb (§2.3).
type encoding uint8

const (
	encNone encoding = iota
	encHex
	encBase64
)

// scheme describes one password scheme. raw is the stored value after
// decoding (binary for digests, the text itself for crypt-style schemes).
type scheme struct {
	name string
	enc  encoding // default encoding (§3 tables)
	// rawLen is the fixed decoded length, 0 when variable. A non-zero rawLen
	// with a non-NONE encoding enables hex/base64 guessing (§2.3).
	rawLen int
	// verify checks a password; c carries the limits, the memory budget
	// and the request's context (schemes without a stored cost ignore it).
	verify   verifyFunc
	generate func(password []byte, user string, rounds int) (string, error)
	// family groups names Dovecot treats as one scheme because they share a
	// generate function (§1 aliases); used by Credentials (§6).
	family string
	// extra marks schemes Dovecot 2.3.19 does not have (authd extensions).
	extra bool
	// costly marks schemes whose verification is slow on purpose (a work
	// factor, or md5crypt's thousand rounds): a millisecond of CPU or
	// more, where a digest takes a microsecond.
	costly bool
}

type verifyFunc func(c call, raw string, password []byte, user string) (bool, error)

// fixedCost adapts a verifier whose cost does not depend on the stored
// value (a digest, a salted digest, md5crypt's fixed 1000 rounds): it has
// nothing to check against the Limits.
func fixedCost(f func(raw string, password []byte, user string) (bool, error)) verifyFunc {
	return func(_ call, raw string, pw []byte, user string) (bool, error) { return f(raw, pw, user) }
}

// registry is the single literal table of schemes (house rule: no init()
// registration). Keys are canonical upper-case names.
var registry = map[string]*scheme{
	// crypt(3) family: one verifier for all four names (§3 "crypt family").
	"SHA512-CRYPT": {name: "SHA512-CRYPT", enc: encNone, verify: verifyCryptFamily, generate: generateSHA512Crypt, family: "SHA512-CRYPT", costly: true},
	"SHA256-CRYPT": {name: "SHA256-CRYPT", enc: encNone, verify: verifyCryptFamily, generate: generateSHA256Crypt, family: "SHA256-CRYPT", costly: true},
	"CRYPT":        {name: "CRYPT", enc: encNone, verify: verifyCryptFamily, generate: generateBcrypt, family: "BLF-CRYPT", costly: true},
	"DES-CRYPT":    {name: "DES-CRYPT", enc: encNone, verify: verifyCryptFamily, generate: generateDESCrypt, family: "DES-CRYPT"},
	"BLF-CRYPT":    {name: "BLF-CRYPT", enc: encNone, verify: verifyBcrypt, generate: generateBcrypt, family: "BLF-CRYPT", costly: true},
	"MD5-CRYPT":    {name: "MD5-CRYPT", enc: encNone, verify: fixedCost(verifyMD5Crypt), generate: generateMD5Crypt, family: "MD5-CRYPT", costly: true},
	"MD5":          {name: "MD5", enc: encNone, verify: fixedCost(verifyMD5), generate: generateMD5Crypt, family: "MD5-CRYPT", costly: true},

	"ARGON2I":  {name: "ARGON2I", enc: encNone, verify: verifyArgon2, generate: generateArgon2I, family: "ARGON2I", costly: true},
	"ARGON2ID": {name: "ARGON2ID", enc: encNone, verify: verifyArgon2, generate: generateArgon2ID, family: "ARGON2ID", costly: true},

	"PBKDF2": {name: "PBKDF2", enc: encNone, verify: verifyPBKDF2, generate: generatePBKDF2, family: "PBKDF2", costly: true},

	"SCRAM-SHA-1":   {name: "SCRAM-SHA-1", enc: encNone, verify: verifySCRAMSHA1, generate: generateSCRAMSHA1, family: "SCRAM-SHA-1", costly: true},
	"SCRAM-SHA-256": {name: "SCRAM-SHA-256", enc: encNone, verify: verifySCRAMSHA256, generate: generateSCRAMSHA256, family: "SCRAM-SHA-256", costly: true},

	"SSHA512": {name: "SSHA512", enc: encBase64, verify: fixedCost(verifySSHA512), generate: generateSSHA512, family: "SSHA512"},
	"SSHA256": {name: "SSHA256", enc: encBase64, verify: fixedCost(verifySSHA256), generate: generateSSHA256, family: "SSHA256"},
	"SSHA":    {name: "SSHA", enc: encBase64, verify: fixedCost(verifySSHA), generate: generateSSHA, family: "SSHA"},
	"SMD5":    {name: "SMD5", enc: encBase64, verify: fixedCost(verifySMD5), generate: generateSMD5, family: "SMD5"},

	"SHA512": {name: "SHA512", enc: encBase64, rawLen: 64, verify: fixedCost(verifySHA512), generate: generateSHA512, family: "SHA512"},
	"SHA256": {name: "SHA256", enc: encBase64, rawLen: 32, verify: fixedCost(verifySHA256), generate: generateSHA256, family: "SHA256"},
	"SHA":    {name: "SHA", enc: encBase64, rawLen: 20, verify: fixedCost(verifySHA1), generate: generateSHA1, family: "SHA1"},
	"SHA1":   {name: "SHA1", enc: encBase64, rawLen: 20, verify: fixedCost(verifySHA1), generate: generateSHA1, family: "SHA1"},

	"PLAIN-MD5":  {name: "PLAIN-MD5", enc: encHex, rawLen: 16, verify: fixedCost(verifyPlainMD5), generate: generatePlainMD5, family: "PLAIN-MD5"},
	"LDAP-MD5":   {name: "LDAP-MD5", enc: encBase64, rawLen: 16, verify: fixedCost(verifyPlainMD5), generate: generatePlainMD5, family: "PLAIN-MD5"},
	"PLAIN-MD4":  {name: "PLAIN-MD4", enc: encHex, rawLen: 16, verify: fixedCost(verifyPlainMD4), generate: generatePlainMD4, family: "PLAIN-MD4"},
	"CRAM-MD5":   {name: "CRAM-MD5", enc: encHex, rawLen: 32, verify: fixedCost(verifyCRAMMD5), generate: generateCRAMMD5, family: "CRAM-MD5"},
	"HMAC-MD5":   {name: "HMAC-MD5", enc: encHex, rawLen: 32, verify: fixedCost(verifyCRAMMD5), generate: generateCRAMMD5, family: "CRAM-MD5"},
	"DIGEST-MD5": {name: "DIGEST-MD5", enc: encHex, rawLen: 16, verify: fixedCost(verifyDigestMD5), generate: generateDigestMD5, family: "DIGEST-MD5"},

	"PLAIN":       {name: "PLAIN", enc: encNone, verify: fixedCost(verifyPlain), generate: generatePlain, family: "PLAIN"},
	"CLEAR":       {name: "CLEAR", enc: encNone, verify: fixedCost(verifyPlain), generate: generatePlain, family: "PLAIN"},
	"CLEARTEXT":   {name: "CLEARTEXT", enc: encNone, verify: fixedCost(verifyPlain), generate: generatePlain, family: "PLAIN"},
	"PLAIN-TRUNC": {name: "PLAIN-TRUNC", enc: encNone, verify: fixedCost(verifyPlainTrunc), generate: generatePlainTrunc, family: "PLAIN"},

	"OTP": {name: "OTP", enc: encNone, verify: verifyOTP, generate: generateOTP, family: "OTP"},

	// authd extensions (not in Dovecot 2.3.19).
	// {ARGON2}: Dovecot 2.4's name for "either argon2 variant"; 389-DS uses it too.
	"ARGON2": {name: "ARGON2", enc: encNone, verify: verifyArgon2, generate: generateArgon2ID, family: "ARGON2", extra: true, costly: true},
	// OpenLDAP pw-pbkdf2 and 389-DS pwdchan: <iter>$<ab64 salt>$<ab64 dk>.
	"PBKDF2-SHA1":   {name: "PBKDF2-SHA1", enc: encNone, verify: verifyLDAPPBKDF2SHA1, generate: generateLDAPPBKDF2SHA1, family: "PBKDF2-SHA1", extra: true, costly: true},
	"PBKDF2-SHA256": {name: "PBKDF2-SHA256", enc: encNone, verify: verifyLDAPPBKDF2SHA256, generate: generateLDAPPBKDF2SHA256, family: "PBKDF2-SHA256", extra: true, costly: true},
	"PBKDF2-SHA512": {name: "PBKDF2-SHA512", enc: encNone, verify: verifyLDAPPBKDF2SHA512, generate: generateLDAPPBKDF2SHA512, family: "PBKDF2-SHA512", extra: true, costly: true},
	// libxcrypt's gost-yescrypt ("$gy$"); verified as any crypt name is.
	"GOST-YESCRYPT": {name: "GOST-YESCRYPT", enc: encNone, verify: verifyCryptFamily, generate: generateGostYescrypt, family: "GOST-YESCRYPT", extra: true, costly: true},
	// 389-DS legacy: base64(be32 iterations || 64-byte salt || 256-byte dk).
	"PBKDF2_SHA256": {name: "PBKDF2_SHA256", enc: encNone, verify: verify389PBKDF2SHA256, generate: generate389PBKDF2SHA256, family: "PBKDF2_SHA256", extra: true, costly: true},
}

// listOrder is the order `doveadm pw -l` prints on Debian 12 (Dovecot
// 2.3.19.1; it is hash-table order, so it is copied rather than derived),
// followed by authd's extensions.
var listOrder = []string{
	"SHA1", "SSHA512", "SCRAM-SHA-256", "BLF-CRYPT", "PLAIN", "HMAC-MD5", "OTP",
	"SHA512", "SHA", "DES-CRYPT", "CRYPT", "SSHA", "MD5-CRYPT", "PLAIN-MD4",
	"PLAIN-MD5", "SCRAM-SHA-1", "SHA512-CRYPT", "CLEAR", "CLEARTEXT", "ARGON2I",
	"ARGON2ID", "SSHA256", "MD5", "PBKDF2", "SHA256", "CRAM-MD5", "PLAIN-TRUNC",
	"SHA256-CRYPT", "SMD5", "DIGEST-MD5", "LDAP-MD5",
	// authd extensions
	"ARGON2", "PBKDF2-SHA1", "PBKDF2-SHA256", "PBKDF2-SHA512", "PBKDF2_SHA256", "GOST-YESCRYPT",
}

// List returns every supported scheme name: Dovecot's in `doveadm pw -l`
// order, then authd's extensions.
func List() []string {
	return append([]string(nil), listOrder...)
}

// IsExtension reports whether scheme (with optional suffix) is an authd
// extension that Dovecot 2.3 does not know.
func IsExtension(name string) bool {
	s, _, _, err := lookup(name)
	return err == nil && s.extra
}

// Known reports whether scheme, with an optional .HEX/.B64/.BASE64 suffix in
// any case, is supported.
func Known(name string) bool {
	_, _, _, err := lookup(name)
	return err == nil
}

// Canonical returns the canonical upper-case name of scheme, keeping a valid
// encoding suffix in upper case ("ssha.b64" → "SSHA.B64").
func Canonical(name string) (string, bool) {
	s, _, suffix, err := lookup(name)
	if err != nil {
		return "", false
	}
	if suffix != "" {
		return s.name + "." + strings.ToUpper(suffix), true
	}
	return s.name, true
}

// Costly reports whether verifying a password stored in scheme is slow on
// purpose: a work factor (crypt(3) hashes, bcrypt, Argon2, PBKDF2, SCRAM's
// salted password) or md5crypt's fixed thousand rounds. Digests, salted or
// not, and unknown schemes are not.
func Costly(scheme string) bool {
	s, _, _, err := lookup(scheme)
	return err == nil && s.costly
}

// lookup finds a scheme by name, case-insensitively, splitting off an
// encoding suffix at the first '.' (§2.2). An unknown suffix makes the whole
// name unknown, as in Dovecot. It does not allocate for upper-case names.
func lookup(name string) (s *scheme, enc encoding, suffix string, err error) {
	base, suffix, hasSuffix := strings.Cut(name, ".")
	s = registry[base]
	if s == nil {
		var buf [32]byte
		if len(base) > len(buf) {
			return nil, 0, "", ErrUnknownScheme
		}
		for i := 0; i < len(base); i++ {
			c := base[i]
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			buf[i] = c
		}
		s = registry[string(buf[:len(base)])]
		if s == nil {
			return nil, 0, "", ErrUnknownScheme
		}
	}
	enc = s.enc
	if hasSuffix {
		switch {
		case strings.EqualFold(suffix, "hex"):
			enc = encHex
		case strings.EqualFold(suffix, "b64"), strings.EqualFold(suffix, "base64"):
			enc = encBase64
		default:
			return nil, 0, "", ErrUnknownScheme
		}
	}
	return s, enc, suffix, nil
}
