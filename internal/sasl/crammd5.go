package sasl

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/hex"
	"strconv"

	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/schemes"
)

// cramMD5Mech is RFC 2195 CRAM-MD5 as Dovecot 2.3's mech-cram-md5.c does
// it: server-first, the challenge is
// "<" 16 random decimal digits "." unix time "@" hostname ">", the answer
// is "user SP lowercase-hex(HMAC-MD5(password, challenge))".
type cramMD5Mech struct {
	env       *Env
	challenge []byte
	state     int // 0: challenge not sent, 1: waiting for the answer, 2: done
}

func newCRAMMD5(env *Env) Mechanism { return &cramMD5Mech{env: env} }

// cramChallenge builds the challenge. RFC 2195 §2 asks for a msg-id
// (RFC 822 §6.2.5); Dovecot turns 16 random bytes into decimal digits
// (byte % 10), which is what clients have seen for years.
func (m *cramMD5Mech) cramChallenge() ([]byte, error) {
	var rnd [16]byte
	if err := m.env.random(rnd[:]); err != nil {
		return nil, err
	}
	c := make([]byte, 0, 64)
	c = append(c, '<')
	for _, b := range rnd {
		c = append(c, '0'+b%10)
	}
	c = append(c, '.')
	c = strconv.AppendInt(c, m.env.now().Unix(), 10)
	c = append(c, '@')
	c = append(c, m.env.hostname()...)
	c = append(c, '>')
	return c, nil
}

func (m *cramMD5Mech) Step(ctx context.Context, data []byte, present bool) Reply {
	switch m.state {
	case 0:
		// Server-first: an initial response is ignored (docs/protocol.md
		// §4.2, observed).
		c, err := m.cramChallenge()
		if err != nil {
			return tempFail("no randomness for the CRAM-MD5 challenge")
		}
		m.challenge, m.state = c, 1
		return Reply{Challenge: c}
	case 1:
		m.state = 2
		user, resp, ok := parseCRAMResponse(data)
		if !ok {
			return fail("invalid CRAM-MD5 response")
		}
		res, cred := m.env.lookupCredentials(ctx, "", user, "CRAM-MD5", "")
		if res.Status != engine.StatusOK {
			return done(res)
		}
		digest, err := schemes.CRAMMD5Digest(cred, m.challenge)
		if err != nil {
			// mech-cram-md5.c: "invalid credentials length", a plain
			// failure.
			return proofMismatch(res, "invalid CRAM-MD5 credentials")
		}
		want := make([]byte, hex.EncodedLen(len(digest)))
		hex.Encode(want, digest)
		// Dovecot compares its lowercase hex with the client's in
		// constant time; so do we (RFC 2195 §2 writes lowercase hex).
		if subtle.ConstantTimeCompare(want, resp) != 1 {
			return proofMismatch(res, "password mismatch")
		}
		return m.env.succeeded(ctx, res, nil)
	}
	return stepAfterEnd()
}

// parseCRAMResponse splits "user SP digest" at the last space: user names
// may contain spaces (mech-cram-md5.c). A space at position 0 means no user
// and counts as a missing digest, as in Dovecot. NUL bytes never get here
// (the protocol layer rejects them for this mechanism) but are refused
// anyway.
func parseCRAMResponse(data []byte) (user string, digest []byte, ok bool) {
	if bytes.IndexByte(data, 0) >= 0 {
		return "", nil, false
	}
	i := bytes.LastIndexByte(data, ' ')
	if i <= 0 {
		return "", nil, false
	}
	return string(data[:i]), data[i+1:], true
}
