package sasl

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/authd-project/authd/internal/engine"
)

// digestMD5Mech is RFC 2831 DIGEST-MD5 as Dovecot 2.3's mech-digest-md5.c
// does it: qop=auth only (no integrity or privacy layer), no subsequent
// authentication (nc must be 1), algorithm=md5-sess, charset=utf-8.
type digestMD5Mech struct {
	env   *Env
	nonce string
	state int // 0: challenge not sent, 1: waiting for the response, 2: done
}

func newDigestMD5(env *Env) Mechanism { return &digestMD5Mech{env: env} }

// challenge is RFC 2831 §2.1.1's digest-challenge in Dovecot's order:
// one realm per auth_realms entry (or realm="" when there is none, since
// Cyrus clients then default to the host name), a nonce of 16 random bytes
// in base64, qop, charset, algorithm.
func (m *digestMD5Mech) challenge() ([]byte, error) {
	var rnd [16]byte
	if err := m.env.random(rnd[:]); err != nil {
		return nil, err
	}
	m.nonce = base64.StdEncoding.EncodeToString(rnd[:])
	var b []byte
	realms := m.env.settings().Realms
	if len(realms) == 0 {
		b = append(b, `realm="",`...)
	}
	for _, r := range realms {
		// Dovecot writes realms verbatim, without quoting.
		b = append(b, `realm="`...)
		b = append(b, r...)
		b = append(b, `",`...)
	}
	b = append(b, `nonce="`...)
	b = append(b, m.nonce...)
	b = append(b, `",qop="auth",charset="utf-8",algorithm="md5-sess"`...)
	return b, nil
}

func (m *digestMD5Mech) Step(ctx context.Context, data []byte, present bool) Reply {
	switch m.state {
	case 0:
		// Server-first: an initial response is ignored (docs/protocol.md §4.2).
		c, err := m.challenge()
		if err != nil {
			return tempFail("no randomness for the DIGEST-MD5 nonce")
		}
		m.state = 1
		return Reply{Challenge: c}
	case 1:
		m.state = 2
		r, err := parseDigestResponse(data, m.nonce)
		if err != nil {
			return fail("DIGEST-MD5: " + err.Error())
		}
		// A user without '@' gets the client's realm appended
		// (mech-digest-md5.c); the digest is then made for that name.
		// Otherwise Dovecot derives the digest for "user@realm" split at
		// the last '@', i.e. for the user and realm the client hashed.
		authcid, credUser := r.username, r.username
		if r.realm != "" && strings.IndexByte(r.username, '@') < 0 {
			authcid = r.username + "@" + r.realm
			credUser = authcid
		} else if strings.IndexByte(r.username, '@') >= 0 {
			credUser = r.username + "@" + r.realm
		}
		res, cred := m.env.lookupCredentials(ctx, r.authzid, authcid, "DIGEST-MD5", credUser)
		if res.Status != engine.StatusOK {
			return done(res)
		}
		if len(cred) != md5.Size {
			return proofMismatch(res, "invalid DIGEST-MD5 credentials")
		}
		resp, rspauth := digestResponses(cred, m.nonce, r)
		if subtle.ConstantTimeCompare(resp, []byte(r.response)) != 1 {
			return proofMismatch(res, "password mismatch")
		}
		// rspauth is the server's proof (RFC 2831 §2.1.3), sent as final
		// data.
		return m.env.succeeded(ctx, res, append([]byte("rspauth="), rspauth...))
	}
	return stepAfterEnd()
}

// digestResponses computes the response the client must have sent and the
// rspauth value, lowercase hex (RFC 2831 §2.1.2.1, §2.1.3):
//
//	A1 = H(user:realm:pass) ":" nonce ":" cnonce [":" authzid]
//	A2 = "AUTHENTICATE:" digest-uri      (rspauth: ":" digest-uri)
//	response = HEX(H(HEX(H(A1)) ":" nonce ":" nc ":" cnonce ":" qop ":" HEX(H(A2))))
func digestResponses(cred []byte, nonce string, r digestResponse) (resp, rspauth []byte) {
	h := md5.New()
	h.Write(cred)
	h.Write([]byte(":" + nonce + ":" + r.cnonce))
	if r.authzid != "" {
		h.Write([]byte(":" + r.authzid))
	}
	a1 := hex.EncodeToString(h.Sum(nil))
	calc := func(a2prefix string) []byte {
		a2 := md5.Sum([]byte(a2prefix + r.digestURI))
		k := md5.Sum([]byte(a1 + ":" + nonce + ":" + r.nc + ":" + r.cnonce + ":" + r.qop + ":" + hex.EncodeToString(a2[:])))
		out := make([]byte, hex.EncodedLen(len(k)))
		hex.Encode(out, k[:])
		return out
	}
	return calc("AUTHENTICATE:"), calc(":")
}

// digestResponse is the parsed client response (RFC 2831 §2.1.2).
type digestResponse struct {
	realm, username, authzid string
	cnonce, nc, qop          string
	digestURI                string
	response                 string
}

// parseDigestResponse parses the client's digest-response the way
// mech-digest-md5.c does, so that authd accepts and refuses what Dovecot
// does: keys are case-insensitive, unknown keys are ignored, values may be
// quoted (with backslash escapes) or bare, and these rules hold:
//   - nonce must equal ours; username, cnonce and nonce are required;
//   - username, cnonce, nc, maxbuf and authzid at most once, none empty;
//   - nc must be the decimal number 1 (no subsequent authentication);
//   - qop must be "auth" (case-insensitive), default "auth";
//   - digest-uri must contain '/'; charset must be utf-8;
//   - response must be 32 characters; a missing one fails the proof later;
//   - the first non-empty realm counts.
//
// The data is cut at the first NUL, as Dovecot's C string handling does.
func parseDigestResponse(data []byte, nonce string) (digestResponse, error) {
	var r digestResponse
	if len(data) == 0 {
		return r, errors.New("client sent no input")
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	s := string(data)
	var nonceFound, ncSeen, maxbufSeen bool
	pos := 0
	for pos < len(s) {
		key, value, next, ok := digestNext(s, pos)
		pos = next
		if ok {
			if err := r.handle(strings.ToLower(key), value, nonce, &nonceFound, &ncSeen, &maxbufSeen); err != nil {
				return r, err
			}
		}
		if pos < len(s) && s[pos] == ',' {
			pos++
		}
	}
	switch {
	case !nonceFound:
		return r, errors.New("missing nonce parameter")
	case r.cnonce == "":
		return r, errors.New("missing cnonce parameter")
	case r.username == "":
		return r, errors.New("missing username parameter")
	}
	if r.nc == "" {
		r.nc = "00000001"
	}
	if r.qop == "" {
		r.qop = "auth"
	}
	return r, nil
}

func isLWS(c byte) bool { return c == ' ' || c == '\t' }

// digestNext reads one key=value starting at pos (mech-digest-md5.c
// parse_next). ok is false when there was a key without '='; next is
// where parsing continues. A bare value keeps its leading white space and
// loses its trailing one, as in Dovecot.
func digestNext(s string, pos int) (key, value string, next int, ok bool) {
	p := pos
	for p < len(s) && isLWS(s[p]) {
		p++
	}
	keyStart := p
	for p < len(s) && s[p] != '=' && s[p] != ',' {
		p++
	}
	if p >= len(s) || s[p] != '=' {
		return "", "", p, false
	}
	keyEnd := p
	for keyEnd > keyStart && isLWS(s[keyEnd-1]) {
		keyEnd--
	}
	key = s[keyStart:keyEnd]
	valStart := p + 1
	p = valStart
	for p < len(s) && isLWS(s[p]) {
		p++
	}
	if p >= len(s) || s[p] != '"' {
		for p < len(s) && s[p] != ',' {
			p++
		}
		next = p
		if next < len(s) {
			next++ // past the ','
		}
		end := p
		for end > valStart && isLWS(s[end-1]) {
			end--
		}
		return key, s[valStart:end], next, true
	}
	// quoted-string (RFC 2831 §7.2 via RFC 2616 §2.2): backslash quotes
	// the next character.
	p++
	var v strings.Builder
	for p < len(s) && s[p] != '"' {
		if s[p] == '\\' && p+1 < len(s) {
			p++
		}
		v.WriteByte(s[p])
		p++
	}
	if p < len(s) {
		p++ // the closing quote
	}
	return key, v.String(), p, true
}

// handle applies one directive (mech-digest-md5.c auth_handle_response).
func (r *digestResponse) handle(key, value, nonce string, nonceFound, ncSeen, maxbufSeen *bool) error {
	switch key {
	case "realm":
		if r.realm == "" && value != "" {
			r.realm = value
		}
	case "username":
		if r.username != "" {
			return errors.New("username must not exist more than once")
		}
		if value == "" {
			return errors.New("empty username")
		}
		r.username = value
	case "nonce":
		// The nonce must be ours; comparing it is not a secret check.
		if value != nonce {
			return errors.New("invalid nonce")
		}
		*nonceFound = true
	case "cnonce":
		if r.cnonce != "" {
			return errors.New("cnonce must not exist more than once")
		}
		if value == "" {
			return errors.New("cnonce can't contain empty value")
		}
		r.cnonce = value
	case "nc":
		if *ncSeen {
			return errors.New("nonce-count must not exist more than once")
		}
		n, ok := parseDecimal(value)
		if !ok {
			return errors.New("nonce-count value invalid")
		}
		if n != 1 {
			return errors.New("re-auth not supported currently")
		}
		*ncSeen = true
		r.nc = value
	case "qop":
		switch strings.ToLower(value) {
		case "auth":
			r.qop = value
		case "auth-int", "auth-conf":
			return errors.New("nonallowed QoP requested")
		default:
			return errors.New("unknown QoP value")
		}
	case "digest-uri":
		// serv-type "/" host [ "/" serv-name ] (RFC 2831 §2.1.2); like
		// Dovecot, the parts are not checked against anything.
		if strings.IndexByte(value, '/') < 0 {
			return errors.New("invalid digest-uri")
		}
		r.digestURI = value
	case "maxbuf":
		if *maxbufSeen {
			return errors.New("maxbuf must not exist more than once")
		}
		n, ok := parseDecimal(value)
		if !ok || n == 0 {
			return errors.New("invalid maxbuf value")
		}
		*maxbufSeen = true
	case "charset":
		if !strings.EqualFold(value, "utf-8") {
			return errors.New("only utf-8 charset is allowed")
		}
	case "response":
		if len(value) != 32 {
			return errors.New("invalid response value")
		}
		r.response = value
	case "authzid":
		if r.authzid != "" {
			return errors.New("authzid must not exist more than once")
		}
		if value == "" {
			return errors.New("empty authzid")
		}
		r.authzid = value
	}
	// cipher and unknown directives are ignored (RFC 2831 §2.1.2:
	// "any unrecognized options ... MUST be ignored").
	return nil
}

// parseDecimal is Dovecot's str_to_ulong: digits only, no sign or space,
// no overflow.
func parseDecimal(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}
