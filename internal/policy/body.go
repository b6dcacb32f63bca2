package policy

import (
	"encoding/hex"
	"hash"
	"strings"
	"unicode/utf8"

	"github.com/authd-project/authd/internal/vars"
)

// Request is what the engine knows about one authentication when it asks
// the policy server or reports to it.
type Request struct {
	// Vars are the request's values for the attributes' %-variables. The
	// client expands a copy with RequestedUsername and HashedPassword
	// set; the caller's is not changed.
	Vars *vars.Context
	// Username is the name whose password is tried, after name
	// processing (for a master login, the user logged in as): Dovecot's
	// requested_username, and the user in the hashed password.
	Username string
	// Password is the password the client sent; nil when the mechanism
	// sent none (CRAM-MD5, SCRAM and the like): the hash then covers the
	// nonce and the name only, as Dovecot's does.
	Password []byte
	// TLS: the client's connection is TLS (secured=tls).
	TLS bool
}

// outcome is the report's addition: how the authentication ended.
type outcome struct {
	success, policyReject bool
}

// hashPassword computes Dovecot's pwhash: H(nonce ‖ user ‖ NUL ‖ password),
// cut to the settings' bits, in lower-case hex.
func hashPassword(newHash func() hash.Hash, nonce string, truncate int, user string, password []byte) string {
	h := newHash()
	h.Write([]byte(nonce))
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write(password)
	sum := h.Sum(nil)
	if truncate > 0 {
		sum = vars.TruncateBits(sum, truncate)
	}
	return hex.EncodeToString(sum)
}

// appendBody appends the JSON body of a request: the attributes, then for
// reports "success" and "policy_reject", then "tls", in Dovecot's order.
func (a *Attributes) appendBody(dst []byte, vc *vars.Context, tls bool, report *outcome) []byte {
	dst = append(dst, '{')
	dst = a.appendAttributes(dst, vc)
	sep := func() {
		if dst[len(dst)-1] != '{' {
			dst = append(dst, ',')
		}
	}
	if report != nil {
		sep()
		dst = append(dst, `"success":`...)
		dst = appendBool(dst, report.success)
		dst = append(dst, `,"policy_reject":`...)
		dst = appendBool(dst, report.policyReject)
	}
	sep()
	dst = append(dst, `"tls":`...)
	dst = appendBool(dst, tls)
	return append(dst, '}')
}

// appendAttributes writes the key/value pairs, opening an object for each
// run of keys of one group. Two groups where one name begins with the
// other ("a/x", "ab/y") share the first one's object: Dovecot compares only
// the shorter name's length of the two, and a policy server must see what
// Dovecot sends.
func (a *Attributes) appendAttributes(dst []byte, vc *vars.Context) []byte {
	var prev *attribute
	open := false
	for i := range a.attrs {
		at := &a.attrs[i]
		switch {
		case open && at.nested && sameGroup(prev.group, at.group):
			dst = append(dst, ',')
		case open:
			dst = append(dst, '}', ',')
			open = false
		case prev != nil:
			dst = append(dst, ',')
		}
		if at.nested && !open {
			dst = appendQuoted(dst, at.group)
			dst = append(dst, ':', '{')
			open = true
		}
		dst = appendQuoted(dst, at.name)
		dst = append(dst, ':')
		dst = appendQuoted(dst, at.value.Expand(vc, nil))
		prev = at
	}
	if open {
		dst = append(dst, '}')
	}
	return dst
}

func sameGroup(a, b string) bool {
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// appendEscaped escapes s for a JSON string as Dovecot's json_append_escaped
// does: \b \f \n \r \t \" \\ by name, other control characters and U+2028,
// U+2029 as \u00xx / \u20xx, and every byte that is not part of valid UTF-8
// as U+FFFD, so that any user name gives valid JSON.
func appendEscaped(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			dst = utf8.AppendRune(dst, utf8.RuneError)
		case r == '\b':
			dst = append(dst, '\\', 'b')
		case r == '\f':
			dst = append(dst, '\\', 'f')
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			dst = append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}
