package schemes

import "strings"

// emptySchemeMarker is what Split returns for an empty "{}" prefix: Dovecot
// treats "{}" as an (unknown) scheme, not as "no prefix" (§2.1), so the
// caller must not substitute its default scheme.
const emptySchemeMarker = "{}"

// Split splits a raw stored password the way passwd-file, doveadm pw -t and
// the auth cache do (Dovecot's password_get_scheme, §2.1 rule 1):
//
//  1. A value starting with "$1$" that has another '$' after the salt is
//     MD5-CRYPT whatever the default scheme is, and is cut at the '$' that
//     follows the hash ("$1$salt$hash$junk" → "$1$salt$hash").
//  2. A value starting with '{' and containing '}' has the scheme between
//     them and the data after '}'.
//  3. Otherwise scheme is "" and the caller uses its default scheme.
//
// An empty prefix "{}" yields the scheme "{}", which Verify reports as
// ErrUnknownScheme, as Dovecot does.
func Split(raw string) (scheme, data string) {
	if strings.HasPrefix(raw, "$1$") {
		if i := strings.IndexByte(raw[3:], '$'); i >= 0 {
			end := 3 + i + 1
			if j := strings.IndexByte(raw[end:], '$'); j >= 0 {
				raw = raw[:end+j]
			}
			return "MD5-CRYPT", raw
		}
	}
	return SplitStrict(raw)
}

// SplitStrict is the SQL/LDAP/dict rule (auth_request_set_password, §2.1
// rule 2): only a "{…}" prefix counts; the "$1$" rule never fires. scheme is
// "" when there is no prefix (the caller then uses its default scheme).
func SplitStrict(raw string) (scheme, data string) {
	if len(raw) == 0 || raw[0] != '{' {
		return "", raw
	}
	end := strings.IndexByte(raw, '}')
	if end < 0 {
		return "", raw
	}
	if end == 1 {
		return emptySchemeMarker, raw[2:]
	}
	return raw[1:end], raw[end+1:]
}

// SplitDefault is Split followed by the default-scheme substitution callers
// need anyway: it returns defaultScheme when raw has no prefix.
func SplitDefault(raw, defaultScheme string) (scheme, data string) {
	scheme, data = Split(raw)
	if scheme == "" {
		scheme = defaultScheme
	}
	return scheme, data
}
