package sasl

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/subtle"
	"strconv"

	"github.com/authd-project/authd/internal/engine"
)

// apopMech is POP3 APOP (RFC 1939 §7) as Dovecot 2.3's mech-apop.c does it.
// pop3-login sends the banner challenge itself and passes one initial
// response: challenge NUL user NUL 16 raw bytes of MD5(challenge ‖ password).
// The challenge must be one pop3-login built for this very connection:
// "<SPIDhex.CUIDhex.unixtimehex." with our SPID, this connection's CUID and
// a time not before our start (docs/protocol.md §4.3), so a digest captured
// elsewhere cannot be replayed here.
type apopMech struct {
	env  *Env
	done bool
}

func newAPOP(env *Env) Mechanism { return &apopMech{env: env} }

func (m *apopMech) Step(ctx context.Context, data []byte, present bool) Reply {
	if m.done {
		return stepAfterEnd()
	}
	m.done = true
	// No initial response is a failure, not a CONT: mech-apop.c has no
	// continuation step.
	if !present || len(data) == 0 {
		return fail("APOP: no initial response")
	}
	challenge, rest, ok := bytes.Cut(data, []byte{0})
	if !ok {
		return fail("APOP: malformed data")
	}
	user, digest, ok := bytes.Cut(rest, []byte{0})
	if !ok || len(digest) != md5.Size {
		return fail("APOP: malformed data")
	}
	if !m.validChallenge(challenge) {
		return fail("APOP: invalid challenge")
	}
	res, cred := m.env.lookupCredentials(ctx, "", string(user), "PLAIN", "")
	if res.Status != engine.StatusOK {
		return done(res)
	}
	h := md5.New()
	h.Write(challenge)
	h.Write(cred)
	if subtle.ConstantTimeCompare(h.Sum(nil), digest) != 1 {
		return proofMismatch(res, "password mismatch")
	}
	return m.env.succeeded(ctx, res, nil)
}

// validChallenge applies mech-apop.c's sscanf("<%lx.%lx.%lx.") check: the
// pid must be our SPID, the connect uid this connection's CUID, and the
// timestamp not older than the process.
func (m *apopMech) validChallenge(c []byte) bool {
	if len(c) == 0 || c[0] != '<' {
		return false
	}
	var nums [3]uint64
	rest := c[1:]
	for i := range nums {
		j := bytes.IndexByte(rest, '.')
		if j <= 0 {
			return false
		}
		n, err := strconv.ParseUint(string(rest[:j]), 16, 64)
		if err != nil {
			return false
		}
		nums[i], rest = n, rest[j+1:]
	}
	pid, cuid, ts := nums[0], nums[1], nums[2]
	// An Env without SPID/CUID (0 is never a pid, CUIDs start at 1)
	// accepts nothing rather than "<0.0.": fail closed.
	return m.env.SPID != 0 && m.env.CUID != 0 &&
		pid == uint64(m.env.SPID) && cuid == uint64(m.env.CUID) &&
		ts <= 1<<62 && int64(ts) >= m.env.startTime().Unix()
}
