package schemes

import (
	"fmt"
	"strings"
)

// Credentials returns the credentials a SASL mechanism needs, in the
// wanted scheme, from a stored value (Dovecot's passdb_get_credentials,
// §6 and docs/protocol.md §4.1). No login password is involved:
//
//   - stored scheme equal to wanted, or an alias of it (same generate
//     function: SHA=SHA1, CRAM-MD5=HMAC-MD5, PLAIN-MD5=LDAP-MD5,
//     MD5=MD5-CRYPT, CRYPT=BLF-CRYPT, PLAIN=CLEAR=CLEARTEXT=PLAIN-TRUNC):
//     the decoded stored data;
//   - stored scheme a plaintext one: the wanted form derived from the
//     plaintext now (SCRAM: 4096 iterations and UserSalt(wanted, user),
//     the same salt on every try);
//   - otherwise ErrSchemeUnavailable.
//
// The bytes returned are: CRAM-MD5 the 32-byte pad states (see
// CRAMMD5Digest); DIGEST-MD5 the 16-byte MD5(user:realm:pass); SCRAM-SHA-*
// the text "iter,salt,StoredKey,ServerKey" (see ParseSCRAMCredentials);
// PLAIN the plaintext. user is the name the DIGEST-MD5 digest is made for
// ("user@realm", split at the last '@') and SCRAM's salt is keyed with;
// other schemes ignore it.
//
// One deliberate difference from Dovecot: a PLAIN-TRUNC value "N-text"
// yields text as the plaintext, where Dovecot uses "N-text" itself (a
// latent quirk, §6) and so can never serve CRAM-MD5 or SCRAM for it.
func Credentials(storedScheme, data, wanted, user string) ([]byte, error) {
	s, enc, suffix, err := lookup(storedScheme)
	if err != nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownScheme, clip(storedScheme))
	}
	w, _, _, err := lookup(wanted)
	if err != nil {
		return nil, fmt.Errorf("%w %q (wanted)", ErrUnknownScheme, clip(wanted))
	}
	raw, err := decodeStored(data, s, enc, suffix != "")
	if err != nil {
		return nil, err
	}
	if s.family == w.family && s.name != "PLAIN-TRUNC" {
		return []byte(raw), nil
	}
	if s.family != "PLAIN" {
		return nil, fmt.Errorf("%w: requested %s scheme, but we have only %s", ErrSchemeUnavailable, w.name, s.name)
	}
	plain := raw
	if s.name == "PLAIN-TRUNC" {
		num, text, ok := strings.Cut(raw, "-")
		if !ok || strings.Trim(num, "0123456789") != "" {
			return nil, fmt.Errorf("%w: PLAIN-TRUNC missing length: prefix", ErrMalformed)
		}
		plain = text
	}
	if w.family == "PLAIN" {
		return []byte(plain), nil
	}
	var out string
	if strings.HasPrefix(w.name, "SCRAM-") {
		out, err = deriveSCRAM(w.name, []byte(plain), user)
	} else {
		out, err = w.generate([]byte(plain), user, 0)
	}
	if err != nil {
		return nil, err
	}
	return []byte(out), nil
}

// CredentialsCostly reports whether Credentials, for a value stored under
// storedScheme, runs a key derivation to produce the wanted scheme: SCRAM
// credentials from a plaintext (4096 rounds of PBKDF2, a millisecond or
// more). Everything else it answers at the cost of a decode or a single
// hash; an unknown scheme is refused at once.
func CredentialsCostly(storedScheme, wanted string) bool {
	s, _, _, err := lookup(storedScheme)
	if err != nil || s.family != "PLAIN" {
		return false
	}
	w, _, _, err := lookup(wanted)
	return err == nil && strings.HasPrefix(w.name, "SCRAM-")
}
