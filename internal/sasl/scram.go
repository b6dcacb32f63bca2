package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/schemes"
)

// scramServerNonceLen is Dovecot's SCRAM_SERVER_NONCE_LEN.
const scramServerNonceLen = 64

// scramMech is RFC 5802 SCRAM (RFC 7677 for SHA-256) without channel
// binding, as Dovecot 2.3's mech-scram.c does it. Client-first; the server
// answers with its first message, checks the client's proof against the
// stored StoredKey and sends ServerSignature ("v=") as final data.
type scramMech struct {
	env    *Env
	scheme string // the credentials scheme, also the mechanism name
	hash   func() hash.Hash
	state  int // 0: want client-first, 1: want client-final, 2: done

	first       scramClientFirst
	snonce      string
	serverFirst string
	res         engine.Result
	storedKey   []byte
	serverKey   []byte
}

func newSCRAMSHA1(env *Env) Mechanism {
	return &scramMech{env: env, scheme: "SCRAM-SHA-1", hash: sha1.New}
}

func newSCRAMSHA256(env *Env) Mechanism {
	return &scramMech{env: env, scheme: "SCRAM-SHA-256", hash: sha256.New}
}

func (m *scramMech) Step(ctx context.Context, data []byte, present bool) Reply {
	switch m.state {
	case 0:
		if !present {
			// Client-first mechanism without an initial response: an
			// empty challenge asks for it (RFC 4422 §5, docs/protocol.md §4.2).
			return Reply{Challenge: []byte{}}
		}
		return m.clientFirst(ctx, data)
	case 1:
		m.state = 2
		return m.clientFinal(ctx, data)
	}
	return stepAfterEnd()
}

func (m *scramMech) clientFirst(ctx context.Context, data []byte) Reply {
	m.state = 2
	cf, err := parseSCRAMClientFirst(data)
	if err != nil {
		if cf.username != "" {
			// Only the nonce is checked after mech-scram.c has set the
			// user name: FAIL names the user, as Dovecot's does.
			return m.env.failAsUser(cf.username, "SCRAM: "+err.Error())
		}
		return fail("SCRAM: " + err.Error())
	}
	res, cred := m.env.lookupCredentials(ctx, cf.authzid, cf.username, m.scheme, "")
	switch res.Status {
	case engine.StatusOK:
	case engine.StatusFail:
		// An unknown user, or one without SCRAM credentials, must not be
		// told from a known one by the first answer (Dovecot FAILs here,
		// an enumeration oracle): the exchange goes on with a made-up
		// salt and fails at the proof.
		return m.serverFirstMessage(cf, res, fakeSCRAMSalt(m.scheme, cf.username), fakeIterations.Load(), nil)
	default:
		return done(res)
	}
	c, err := schemes.ParseSCRAMCredentials(m.scheme, string(cred))
	if err != nil {
		// mech-scram.c logs the parse error and fails plainly.
		return proofMismatch(res, "invalid "+m.scheme+" credentials")
	}
	fakeIterations.Store(int64(c.Iterations))
	// The salt goes out as stored (mech-scram.c copies the base64 text),
	// so the iteration count and salt reach the client unchanged.
	salt := strings.Split(string(cred), ",")[1]
	return m.serverFirstMessage(cf, res, salt, int64(c.Iterations), &c)
}

// serverFirstMessage answers client-first; c is nil for a made-up
// exchange, whose proof never verifies.
func (m *scramMech) serverFirstMessage(cf scramClientFirst, res engine.Result, salt string, iterations int64, c *schemes.SCRAMCredentials) Reply {
	n := scramServerNonceLen
	if l := m.env.settings().scramNonceLen; l > 0 {
		n = l
	}
	snonce, err := m.serverNonce(n)
	if err != nil {
		return tempFail("no randomness for the SCRAM nonce")
	}
	m.first, m.snonce, m.res = cf, snonce, res
	if c != nil {
		m.storedKey, m.serverKey = c.StoredKey, c.ServerKey
	}
	// server-first-message = nonce "," salt "," iteration-count
	// (RFC 5802 §7); nonce = client nonce + server nonce.
	m.serverFirst = "r=" + cf.cnonce + snonce + ",s=" + salt + ",i=" + strconv.FormatInt(iterations, 10)
	m.state = 1
	return Reply{Challenge: []byte(m.serverFirst)}
}

// serverNonce makes the s-nonce the way Dovecot does: printable
// characters '!'..'}' (byte % 93 + 33) with ',' replaced by '~', since a
// comma would end the attribute (RFC 5802 §7: printable excludes ',').
func (m *scramMech) serverNonce(n int) (string, error) {
	b := make([]byte, n)
	if err := m.env.random(b); err != nil {
		return "", err
	}
	for i, c := range b {
		c = c%('~'-'!') + '!'
		if c == ',' {
			c = '~'
		}
		b[i] = c
	}
	return string(b), nil
}

func (m *scramMech) clientFinal(ctx context.Context, data []byte) Reply {
	withoutProof, proof, err := parseSCRAMClientFinal(data, m.first.gs2Header, m.first.cnonce+m.snonce, m.hash().Size())
	if err != nil {
		// The user is known by now: FAIL names it, as Dovecot's does.
		return proofMismatch(m.res, "SCRAM: "+err.Error())
	}
	// RFC 5802 §3:
	//   AuthMessage     := client-first-message-bare + "," +
	//                      server-first-message + "," +
	//                      client-final-message-without-proof
	//   ClientSignature := HMAC(StoredKey, AuthMessage)
	//   ClientKey       := ClientProof XOR ClientSignature
	//   ServerSignature := HMAC(ServerKey, AuthMessage)
	// and the proof holds when H(ClientKey) = StoredKey.
	if m.storedKey == nil {
		// The made-up exchange of an unknown user ends as a wrong
		// password does, with the lookup's own reason for the log.
		return proofMismatch(m.res, m.res.Reason)
	}
	authMessage := []byte(m.first.bare + "," + m.serverFirst + "," + withoutProof)
	mac := hmac.New(m.hash, m.storedKey)
	mac.Write(authMessage)
	clientKey := mac.Sum(nil)
	subtle.XORBytes(clientKey, clientKey, proof)
	h := m.hash()
	h.Write(clientKey)
	ok := subtle.ConstantTimeCompare(h.Sum(nil), m.storedKey) == 1
	clear(clientKey)
	if !ok {
		return proofMismatch(m.res, "password mismatch")
	}
	mac = hmac.New(m.hash, m.serverKey)
	mac.Write(authMessage)
	// server-final-message = verifier = "v=" base64 (RFC 5802 §7).
	final := "v=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return m.env.succeeded(ctx, m.res, []byte(final))
}

// scramClientFirst is the parsed client-first-message.
type scramClientFirst struct {
	gs2Header string // "n,," / "y,a=x,": echoed base64 in the final "c="
	authzid   string // decoded a= value, "" when absent
	username  string // decoded n= value
	cnonce    string
	bare      string // client-first-message-bare, part of AuthMessage
}

// parseSCRAMClientFirst parses (RFC 5802 §7)
//
//	client-first-message = gs2-header client-first-message-bare
//	gs2-header      = gs2-cbind-flag "," [ authzid ] ","
//	gs2-cbind-flag  = ("p=" cb-name) / "n" / "y"
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
//
// with Dovecot 2.3's choices: channel binding ("p=") is not supported,
// "y" and "n" are both accepted, an authzid asks for a master login, a
// mandatory extension ("m=") fails, extensions are ignored.
func parseSCRAMClientFirst(data []byte) (scramClientFirst, error) {
	var cf scramClientFirst
	s := string(data)
	flag, rest, ok := strings.Cut(s, ",")
	if !ok {
		return cf, errors.New("invalid initial client message: missing first ',' in GS2 header")
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return cf, errors.New("invalid initial client message: missing second ',' in GS2 header")
	}
	cf.gs2Header = s[:len(flag)+1+len(authz)+1]
	cf.bare = bare
	fields := strings.Split(bare, ",")
	if len(fields) < 2 {
		return cf, errors.New("invalid initial client message: missing nonce field")
	}
	switch {
	case strings.HasPrefix(flag, "p"):
		return cf, errors.New("channel binding not supported")
	case flag == "n", flag == "y":
		// "y": the client could do channel binding but thinks we
		// cannot; true, so there is no downgrade to detect (RFC 5802 §6).
	default:
		return cf, errors.New("invalid GS2 header")
	}
	if authz != "" {
		v, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return cf, errors.New("invalid authzid field")
		}
		if cf.authzid, ok = decodeSASLName(v); !ok {
			return cf, errors.New("authzid escaping is invalid")
		}
		if cf.authzid == "" {
			return cf, errors.New("empty authzid")
		}
	}
	user := fields[0]
	if strings.HasPrefix(user, "m") {
		return cf, errors.New("mandatory extension(s) not supported")
	}
	v, ok := strings.CutPrefix(user, "n=")
	if !ok {
		return cf, errors.New("invalid username field")
	}
	if cf.username, ok = decodeSASLName(v); !ok {
		return cf, errors.New("username escaping is invalid")
	}
	if cf.username == "" {
		return cf, errors.New("empty username")
	}
	// Errors from here on leave cf.username set.
	if cf.cnonce, ok = strings.CutPrefix(fields[1], "r="); !ok {
		return cf, errors.New("invalid client nonce")
	}
	return cf, nil
}

// decodeSASLName undoes RFC 5802 §5.1's escaping: "=2C" is ',' and "=3D"
// is '='; any other '=' means the server MUST fail the authentication.
func decodeSASLName(s string) (string, bool) {
	if strings.IndexByte(s, '=') < 0 {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i+1:], "2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i+1:], "3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// parseSCRAMClientFinal parses (RFC 5802 §7)
//
//	client-final-message-without-proof = channel-binding "," nonce ["," extensions]
//	client-final-message = client-final-message-without-proof "," proof
//
// checking that channel-binding is "c=" base64(gs2-header) (no
// cbind-data, RFC 5802 §6), that the nonce is the combined one we sent
// and that the proof decodes to the hash's size. It returns the message
// without the proof, which is part of AuthMessage.
func parseSCRAMClientFinal(data []byte, gs2Header, nonce string, size int) (withoutProof string, proof []byte, err error) {
	s := string(data)
	fields := strings.Split(s, ",")
	if len(fields) < 3 {
		return "", nil, errors.New("invalid final client message")
	}
	if fields[0] != "c="+base64.StdEncoding.EncodeToString([]byte(gs2Header)) {
		return "", nil, errors.New("invalid channel binding data")
	}
	// The nonce is public: a plain comparison is fine.
	if fields[1] != "r="+nonce {
		return "", nil, errors.New("wrong nonce")
	}
	last := fields[len(fields)-1]
	p, ok := strings.CutPrefix(last, "p=")
	if !ok {
		return "", nil, errors.New("invalid ClientProof")
	}
	proof, err = base64.StdEncoding.DecodeString(p)
	if err != nil {
		return "", nil, errors.New("invalid base64 encoding")
	}
	if len(proof) != size {
		return "", nil, errors.New("invalid ClientProof length")
	}
	return s[:len(s)-len(last)-1], proof, nil
}

// fakeIterations is the iteration count a made-up exchange announces: the
// count of the last real credentials served, Dovecot's default 4096 before
// any.
var fakeIterations = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(4096)
	return &n
}()

// fakeSCRAMSalt is the salt a made-up exchange announces for username:
// the one credentials derived from a plaintext password would have
// (schemes.UserSalt), base64 as a stored salt is.
func fakeSCRAMSalt(scheme, username string) string {
	return base64.StdEncoding.EncodeToString(schemes.UserSalt(scheme, username))
}
