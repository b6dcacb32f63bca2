// Package schemes verifies and generates stored passwords in every scheme
// Dovecot 2.3 knows ({SHA512-CRYPT}, {SSHA}, {ARGON2ID}, {SCRAM-SHA-256}, …),
// plus a few formats other servers write ({CRYPT}$y$ yescrypt, {PBKDF2-SHA512}
// as OpenLDAP and 389-DS store it, bare PHC argon2 strings).
//
// The reference for every rule implemented here is docs/schemes.md
// (checked against the real Dovecot 2.3.19); section numbers in comments
// ("§2.3") point into that file. The test vectors in
// testdata/vectors.json were produced by the real `doveadm pw` and are run
// by the tests.
//
// # Three outcomes
//
// Verify returns (true, nil) for a match, (false, nil) for a mismatch and
// (false, err) when it could not tell: an unknown scheme (ErrUnknownScheme),
// a stored value that cannot be decoded (ErrMalformed), a format authd does
// not implement (ErrUnsupported) or one asking for more work or memory than
// the Limits allow (ErrOverBudget). The caller logs an error as an invalid
// passdb value and answers a temporary failure.
//
// # The cost budget
//
// Every cost parameter (bcrypt cost, SHA-crypt rounds, argon2 m/t/p, scrypt
// N/r/p …) is read from the stored value, so it is compared with a limit
// before any work: a Verifier holds the Limits and the memory budget that
// concurrent memory-hard verifications share, and takes the request's
// context (docs/schemes.md §7). The package-level Verify uses the defaults. A value that Dovecot itself reports as
// a mismatch (crypt(3) and libsodium collapse every failure into "no match",
// §3) is reported as a mismatch here too, so verdicts match Dovecot's.
//
// # Parsing a stored value
//
// Split implements Dovecot's passwd-file rule (password_get_scheme: the bare
// "$1$" rule, then "{SCHEME}"), SplitStrict the SQL/LDAP rule (§2.1). A
// scheme name is case-insensitive and may carry an encoding suffix, .HEX,
// .B64 or .BASE64 (§2.2); fixed-length digests guess hex or base64 when no
// suffix is given (§2.3).
//
// # Implementation notes
//
// Schemes live in one literal map (registry.go); nothing registers itself.
// SHA-256/512-crypt, MD5-crypt, DES/BSDi crypt, yescrypt, NetBSD sha1crypt
// and the OTP fold are written here; bcrypt, argon2, scrypt and MD4 come from
// golang.org/x/crypto, the rest from the standard library. Comparisons of
// secrets use crypto/subtle. Password bytes are never logged or put into
// errors.
package schemes
