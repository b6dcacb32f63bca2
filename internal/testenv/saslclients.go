package testenv

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"strconv"
	"strings"
)

// Client sides of the challenge-response SASL mechanisms, written out by
// hand (no SASL library), for interop tests that drive Postfix's smtpd and
// Dovecot's imap-login/pop3-login with authd behind them:
//
//   - CRAM-MD5 (RFC 2195): "user SP hex(HMAC-MD5(password, challenge))";
//   - DIGEST-MD5 (RFC 2831): qop=auth, algorithm=md5-sess; the realm is the
//     first one the server offers, the user name is sent as given (so a
//     bare "alice" lets the server append the realm), and the server's
//     rspauth is checked;
//   - SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel
//     binding ("n,,"); the server signature "v=" is checked.
//
// The mutual-auth mechanisms fail on the client side — an error, not a
// reply code — when the server's proof is wrong or missing, as a real
// client would.

// saslMech is one client-side exchange.
type saslMech interface {
	// initial returns the client's first message for a client-first
	// mechanism (SCRAM), nil for a server-first one (CRAM-MD5,
	// DIGEST-MD5). Calling it means the message is sent as the initial
	// response.
	initial() ([]byte, error)
	// next answers a server challenge (already base64-decoded).
	next(challenge []byte) ([]byte, error)
	// complete is called when the server declared success; it fails if
	// the server has not proved itself (mutual-auth mechanisms).
	complete() error
}

// newSASLMech returns the client for mech (case-insensitive). service and
// host make the DIGEST-MD5 digest-uri "service/host".
func newSASLMech(mech, user, pass, service, host string) (saslMech, error) {
	switch strings.ToUpper(mech) {
	case "PLAIN":
		return &plainClient{user: user, pass: pass}, nil
	case "CRAM-MD5":
		return &cramMD5Client{user: user, pass: pass}, nil
	case "DIGEST-MD5":
		return &digestMD5Client{user: user, pass: pass, digestURI: service + "/" + host}, nil
	case "SCRAM-SHA-1":
		return &scramClient{hash: sha1.New, user: user, pass: pass}, nil
	case "SCRAM-SHA-256":
		return &scramClient{hash: sha256.New, user: user, pass: pass}, nil
	}
	return nil, fmt.Errorf("testenv: SASL mechanism %q not supported (PLAIN, CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1, SCRAM-SHA-256)", mech)
}

// plainClient is RFC 4616 PLAIN with an empty authzid, for completeness.
type plainClient struct {
	user, pass string
	sent       bool
}

func (c *plainClient) msg() []byte { return []byte("\x00" + c.user + "\x00" + c.pass) }

func (c *plainClient) initial() ([]byte, error) { c.sent = true; return c.msg(), nil }

func (c *plainClient) next(challenge []byte) ([]byte, error) {
	if c.sent || len(challenge) != 0 {
		return nil, fmt.Errorf("PLAIN: unexpected challenge %q", challenge)
	}
	c.sent = true
	return c.msg(), nil
}

func (c *plainClient) complete() error { return nil }

// cramMD5Client is RFC 2195 CRAM-MD5.
type cramMD5Client struct {
	user, pass string
	answered   bool
}

// cramMD5Response is the RFC 2195 answer to challenge:
// user SP lowercase-hex(HMAC-MD5(key = password, challenge)).
func cramMD5Response(user, pass string, challenge []byte) []byte {
	m := hmac.New(md5.New, []byte(pass))
	m.Write(challenge)
	return []byte(user + " " + hex.EncodeToString(m.Sum(nil)))
}

func (c *cramMD5Client) initial() ([]byte, error) { return nil, nil }

func (c *cramMD5Client) next(challenge []byte) ([]byte, error) {
	if c.answered {
		return nil, fmt.Errorf("CRAM-MD5: unexpected second challenge %q", challenge)
	}
	if len(challenge) == 0 {
		return nil, errors.New("CRAM-MD5: empty challenge")
	}
	c.answered = true
	return cramMD5Response(c.user, c.pass, challenge), nil
}

func (c *cramMD5Client) complete() error {
	if !c.answered {
		return errors.New("CRAM-MD5: success before the challenge was answered")
	}
	return nil
}

// digestMD5Client is RFC 2831 DIGEST-MD5, qop=auth only.
type digestMD5Client struct {
	user, pass, digestURI string
	// cnonce is the client nonce; empty means a random one. Unit tests
	// set it to replay fixed vectors.
	cnonce string

	state   int // 0: want the challenge, 1: want rspauth, 2: verified
	rspauth string
}

// digestChallenge is the part of an RFC 2831 §2.1.1 digest-challenge the
// client uses.
type digestChallenge struct {
	realms    []string
	nonce     string
	qop       []string
	charset   string
	algorithm string
}

// parseDigestDirectives splits "key=value,key="quoted\"value",..." into
// key/value pairs (keys lower-cased), in order, keeping repeated keys.
func parseDigestDirectives(s string) ([][2]string, error) {
	var out [][2]string
	i := 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
	}
	for skip(); i < len(s); skip() {
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			return nil, fmt.Errorf("directive without '=' in %q", s[i:])
		}
		key := strings.ToLower(strings.TrimSpace(s[i : i+eq]))
		i += eq + 1
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '"' {
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated quoted value for %q", key)
			}
			i++ // closing quote
		} else {
			j := strings.IndexByte(s[i:], ',')
			if j < 0 {
				j = len(s) - i
			}
			val.WriteString(strings.TrimSpace(s[i : i+j]))
			i += j
		}
		out = append(out, [2]string{key, val.String()})
	}
	return out, nil
}

func parseDigestChallenge(b []byte) (digestChallenge, error) {
	var c digestChallenge
	kv, err := parseDigestDirectives(string(b))
	if err != nil {
		return c, err
	}
	for _, p := range kv {
		switch p[0] {
		case "realm":
			c.realms = append(c.realms, p[1])
		case "nonce":
			if c.nonce != "" {
				return c, errors.New("more than one nonce")
			}
			c.nonce = p[1]
		case "qop":
			for _, q := range strings.Split(p[1], ",") {
				c.qop = append(c.qop, strings.ToLower(strings.TrimSpace(q)))
			}
		case "charset":
			c.charset = p[1]
		case "algorithm":
			c.algorithm = p[1]
		}
	}
	switch {
	case c.nonce == "":
		return c, errors.New("challenge without nonce")
	case !strings.EqualFold(c.algorithm, "md5-sess"):
		return c, fmt.Errorf("algorithm %q, want md5-sess", c.algorithm)
	}
	if c.qop == nil {
		c.qop = []string{"auth"} // RFC 2831: the default
	}
	ok := false
	for _, q := range c.qop {
		ok = ok || q == "auth"
	}
	if !ok {
		return c, fmt.Errorf("server offers qop %v, no \"auth\"", c.qop)
	}
	return c, nil
}

// digestQuote makes an RFC 2616 quoted-string.
func digestQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// digestMD5Values computes the RFC 2831 §2.1.2.1 response value and the
// RFC 2831 §2.1.3 rspauth value, both lowercase hex, for qop=auth, nc=00000001 and
// no authzid.
func digestMD5Values(user, realm, pass, nonce, cnonce, digestURI string) (response, rspauth string) {
	const nc, qop = "00000001", "auth"
	urp := md5.Sum([]byte(user + ":" + realm + ":" + pass))
	a1 := md5.Sum(append(urp[:], ":"+nonce+":"+cnonce...))
	ha1 := hex.EncodeToString(a1[:])
	kd := func(a2 string) string {
		ha2 := md5.Sum([]byte(a2))
		k := md5.Sum([]byte(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + hex.EncodeToString(ha2[:])))
		return hex.EncodeToString(k[:])
	}
	return kd("AUTHENTICATE:" + digestURI), kd(":" + digestURI)
}

func (c *digestMD5Client) initial() ([]byte, error) { return nil, nil }

func (c *digestMD5Client) next(challenge []byte) ([]byte, error) {
	switch c.state {
	case 0:
		ch, err := parseDigestChallenge(challenge)
		if err != nil {
			return nil, fmt.Errorf("DIGEST-MD5: %v (challenge %q)", err, challenge)
		}
		realm := ""
		if len(ch.realms) > 0 {
			realm = ch.realms[0]
		}
		if c.cnonce == "" {
			var b [16]byte
			rand.Read(b[:])
			c.cnonce = base64.RawStdEncoding.EncodeToString(b[:])
		}
		resp, rspauth := digestMD5Values(c.user, realm, c.pass, ch.nonce, c.cnonce, c.digestURI)
		c.rspauth, c.state = rspauth, 1
		var b strings.Builder
		if strings.EqualFold(ch.charset, "utf-8") {
			b.WriteString("charset=utf-8,")
		}
		b.WriteString("username=" + digestQuote(c.user))
		if realm != "" {
			b.WriteString(",realm=" + digestQuote(realm))
		}
		b.WriteString(",nonce=" + digestQuote(ch.nonce))
		b.WriteString(",nc=00000001")
		b.WriteString(",cnonce=" + digestQuote(c.cnonce))
		b.WriteString(",digest-uri=" + digestQuote(c.digestURI))
		b.WriteString(",response=" + resp)
		b.WriteString(",qop=auth")
		return []byte(b.String()), nil
	case 1:
		kv, err := parseDigestDirectives(string(challenge))
		if err != nil || len(kv) != 1 || kv[0][0] != "rspauth" {
			return nil, fmt.Errorf("DIGEST-MD5: expected rspauth=..., got %q", challenge)
		}
		if !hmac.Equal([]byte(kv[0][1]), []byte(c.rspauth)) {
			return nil, fmt.Errorf("DIGEST-MD5: wrong server rspauth %q, want %q", kv[0][1], c.rspauth)
		}
		c.state = 2
		return []byte{}, nil
	}
	return nil, fmt.Errorf("DIGEST-MD5: unexpected challenge after rspauth: %q", challenge)
}

func (c *digestMD5Client) complete() error {
	if c.state != 2 {
		return errors.New("DIGEST-MD5: server declared success without a verified rspauth")
	}
	return nil
}

// scramClient is RFC 5802 SCRAM without channel binding.
type scramClient struct {
	hash       func() hash.Hash
	user, pass string
	// cnonce is the client nonce; empty means a random one. Unit tests
	// set it to replay the RFC examples.
	cnonce string

	state           int // 0: first not sent, 1: want server-first, 2: want server-final, 3: verified
	clientFirstBare string
	serverSignature []byte
}

// saslname escapes a SCRAM user name (RFC 5802 §5.1). SASLprep is not
// applied: test user names are ASCII.
func saslname(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

func (c *scramClient) first() []byte {
	if c.cnonce == "" {
		var b [18]byte
		rand.Read(b[:])
		c.cnonce = base64.RawStdEncoding.EncodeToString(b[:])
	}
	c.clientFirstBare = "n=" + saslname(c.user) + ",r=" + c.cnonce
	c.state = 1
	return []byte("n,," + c.clientFirstBare)
}

func (c *scramClient) initial() ([]byte, error) { return c.first(), nil }

// scramAttrs splits "a=v,b=w" into its attributes in order.
func scramAttrs(s string) ([][2]string, error) {
	var out [][2]string
	for _, f := range strings.Split(s, ",") {
		if len(f) < 2 || f[1] != '=' {
			return nil, fmt.Errorf("malformed attribute %q", f)
		}
		out = append(out, [2]string{f[:1], f[2:]})
	}
	return out, nil
}

func (c *scramClient) hmac(key []byte, msg string) []byte {
	m := hmac.New(c.hash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func (c *scramClient) next(challenge []byte) ([]byte, error) {
	switch c.state {
	case 0:
		// No initial response was sent: the server asks with an empty
		// challenge (RFC 4422 §5).
		if len(challenge) != 0 {
			return nil, fmt.Errorf("SCRAM: non-empty first challenge %q from the server", challenge)
		}
		return c.first(), nil
	case 1:
		return c.final(string(challenge))
	case 2:
		if err := c.verify(string(challenge)); err != nil {
			return nil, err
		}
		return []byte{}, nil
	}
	return nil, fmt.Errorf("SCRAM: unexpected challenge after the server's signature: %q", challenge)
}

// final answers server-first with client-final (RFC 5802 §3).
func (c *scramClient) final(serverFirst string) ([]byte, error) {
	attrs, err := scramAttrs(serverFirst)
	if err != nil {
		return nil, fmt.Errorf("SCRAM server-first %q: %v", serverFirst, err)
	}
	if attrs[0][0] == "e" {
		return nil, fmt.Errorf("SCRAM: server error %q", attrs[0][1])
	}
	if len(attrs) < 3 || attrs[0][0] != "r" || attrs[1][0] != "s" || attrs[2][0] != "i" {
		return nil, fmt.Errorf("SCRAM: server-first %q is not r=,s=,i= (mandatory extension?)", serverFirst)
	}
	nonce := attrs[0][1]
	if !strings.HasPrefix(nonce, c.cnonce) || len(nonce) == len(c.cnonce) {
		return nil, fmt.Errorf("SCRAM: server nonce %q does not extend the client nonce %q", nonce, c.cnonce)
	}
	salt, err := base64.StdEncoding.DecodeString(attrs[1][1])
	if err != nil || len(salt) == 0 {
		return nil, fmt.Errorf("SCRAM: bad salt %q", attrs[1][1])
	}
	iter, err := strconv.Atoi(attrs[2][1])
	if err != nil || iter < 1 || iter > 1<<20 {
		return nil, fmt.Errorf("SCRAM: bad iteration count %q", attrs[2][1])
	}
	salted, err := pbkdf2.Key(c.hash, c.pass, salt, iter, c.hash().Size())
	if err != nil {
		return nil, fmt.Errorf("SCRAM: %v", err)
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte("n,,")) + ",r=" + nonce
	authMessage := c.clientFirstBare + "," + serverFirst + "," + withoutProof
	clientKey := c.hmac(salted, "Client Key")
	h := c.hash()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	proof := c.hmac(storedKey, authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	c.serverSignature = c.hmac(c.hmac(salted, "Server Key"), authMessage)
	c.state = 2
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verify checks server-final: "v=" must carry the expected ServerSignature.
func (c *scramClient) verify(serverFinal string) error {
	if e, ok := strings.CutPrefix(serverFinal, "e="); ok {
		return fmt.Errorf("SCRAM: server error %q", e)
	}
	v, ok := strings.CutPrefix(serverFinal, "v=")
	if !ok {
		return fmt.Errorf("SCRAM: server-final %q has no v=", serverFinal)
	}
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i] // extensions
	}
	got, err := base64.StdEncoding.DecodeString(v)
	if err != nil || !hmac.Equal(got, c.serverSignature) {
		return fmt.Errorf("SCRAM: wrong server signature v=%s, want v=%s",
			v, base64.StdEncoding.EncodeToString(c.serverSignature))
	}
	c.state = 3
	return nil
}

func (c *scramClient) complete() error {
	if c.state != 3 {
		return errors.New("SCRAM: server declared success without a verified server signature (v=)")
	}
	return nil
}

// addrHost is the host part of a "host:port" address for the DIGEST-MD5
// digest-uri; "localhost" for a unix socket path.
func addrHost(addr string) string {
	if strings.HasPrefix(addr, "/") {
		return "localhost"
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// SMTPAuthSASL connects, says EHLO and runs AUTH with a challenge-response
// mechanism: CRAM-MD5, DIGEST-MD5 (digest-uri "smtp/<host of addr>", realm
// the first one the server offers), SCRAM-SHA-1 or SCRAM-SHA-256 (client
// first message as the initial response), or PLAIN. Every 334 challenge
// is answered; after the server's mutual-auth data (DIGEST-MD5 rspauth=,
// SCRAM v=) has been checked the client sends the empty response RFC 4954
// requires. It returns the final reply: 235 on success, 535 on bad
// credentials, 454 on a temporary failure. err is for transport and
// protocol errors, and for a server that failed to prove itself (wrong or
// missing rspauth or v=): then the client cancels with "*" and code and
// msg are the server's answer to that (or the 235 it sent regardless).
func SMTPAuthSASL(ctx context.Context, addr, mech, user, pass string) (code int, msg string, err error) {
	m, err := newSASLMech(mech, user, pass, "smtp", addrHost(addr))
	if err != nil {
		return 0, "", err
	}
	l, err := dialLine(ctx, addr)
	if err != nil {
		return 0, "", err
	}
	defer l.Close()
	if _, err := smtpHello(l, "EHLO"); err != nil {
		return 0, "", err
	}
	b64 := base64.StdEncoding.EncodeToString
	command := "AUTH " + strings.ToUpper(mech)
	ir, err := m.initial()
	if err != nil {
		return 0, "", err
	}
	if ir != nil {
		if len(ir) == 0 {
			command += " =" // RFC 4954: an empty initial response
		} else {
			command += " " + b64(ir)
		}
	}
	r, err := l.cmd(command)
	for err == nil && r.Code == 334 {
		var chal, resp []byte
		chal, err = base64.StdEncoding.DecodeString(r.Text)
		if err != nil {
			err = fmt.Errorf("334 challenge %q is not base64: %v", r.Text, err)
		} else {
			resp, err = m.next(chal)
		}
		if err != nil {
			if r2, err2 := l.cmd("*"); err2 == nil {
				return r2.Code, r2.Text, err
			}
			return 0, "", err
		}
		r, err = l.cmd(b64(resp))
	}
	if err != nil {
		return 0, "", err
	}
	if r.Code == 235 {
		if err := m.complete(); err != nil {
			return r.Code, r.Text, err
		}
	}
	_ = l.send("QUIT")
	return r.Code, r.Text, nil
}

// IMAPAuthenticate connects and runs "a1 AUTHENTICATE <mech>" without an
// initial response (so even a client-first mechanism starts with the
// server's empty "+ " continuation), answering each "+ <base64>"
// continuation; mechanisms and mutual-auth checks as in SMTPAuthSASL
// (digest-uri "imap/<host>"). It then sends LOGOUT. It returns the tagged
// reply, e.g. "a1 OK [CAPABILITY ...] Logged in" or "a1 NO
// [AUTHENTICATIONFAILED] Authentication failed."; err as in SMTPAuthSASL
// (when the server failed to prove itself, the client cancels with "*"
// and tagged is the server's answer to that).
func IMAPAuthenticate(ctx context.Context, addr, mech, user, pass string) (tagged string, err error) {
	m, err := newSASLMech(mech, user, pass, "imap", addrHost(addr))
	if err != nil {
		return "", err
	}
	l, err := dialLine(ctx, addr)
	if err != nil {
		return "", err
	}
	defer l.Close()
	greet, err := l.readLine()
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(greet, "* OK") {
		return "", fmt.Errorf("imap greeting %q", greet)
	}
	const tag = "a1"
	if err := l.send(tag + " AUTHENTICATE " + strings.ToUpper(mech)); err != nil {
		return "", err
	}
	var clientErr error
	for {
		line, err := l.readLine()
		if err != nil {
			return "", err
		}
		switch {
		case strings.HasPrefix(line, tag+" "):
			if clientErr == nil && strings.HasPrefix(line, tag+" OK") {
				clientErr = m.complete()
			}
			_ = l.send("a2 LOGOUT")
			return line, clientErr
		case line == "+" || strings.HasPrefix(line, "+ "):
			if clientErr != nil {
				// The server ignored our "*": give up.
				return "", clientErr
			}
			data := strings.TrimPrefix(strings.TrimPrefix(line, "+"), " ")
			chal, err := base64.StdEncoding.DecodeString(data)
			var resp []byte
			if err != nil {
				clientErr = fmt.Errorf("continuation %q is not base64: %v", line, err)
			} else if resp, err = m.next(chal); err != nil {
				clientErr = err
			}
			if clientErr != nil {
				if err := l.send("*"); err != nil {
					return "", clientErr
				}
				continue
			}
			if err := l.send(base64.StdEncoding.EncodeToString(resp)); err != nil {
				return "", err
			}
		default:
			// untagged data: ignored
		}
	}
}

// apopTimestamp returns the RFC 1939 §7 timestamp ("<...>") of a POP3
// greeting, or "" when there is none.
func apopTimestamp(greeting string) string {
	i := strings.LastIndexByte(greeting, '<')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(greeting[i:], '>')
	if j < 0 {
		return ""
	}
	return greeting[i : i+j+1]
}

// apopDigest is RFC 1939's APOP digest: lowercase hex MD5(timestamp ‖ secret).
func apopDigest(timestamp, pass string) string {
	d := md5.Sum([]byte(timestamp + pass))
	return hex.EncodeToString(d[:])
}

// POP3APOP connects, takes the APOP timestamp ("<...>") from the greeting,
// sends "APOP user md5hex(timestamp ‖ pass)" and then QUIT. It returns the
// reply to APOP ("+OK Logged in." or "-ERR [AUTH] Authentication
// failed."). A greeting without a timestamp (the server does not offer
// APOP) is an error.
func POP3APOP(ctx context.Context, addr, user, pass string) (reply string, err error) {
	l, err := dialLine(ctx, addr)
	if err != nil {
		return "", err
	}
	defer l.Close()
	greet, err := l.readLine()
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(greet, "+OK") {
		return "", fmt.Errorf("pop3 greeting %q", greet)
	}
	ts := apopTimestamp(greet)
	if ts == "" {
		return "", fmt.Errorf("pop3 greeting %q has no APOP timestamp", greet)
	}
	if strings.ContainsAny(user, " \r\n") {
		return "", fmt.Errorf("testenv: APOP user %q contains a space or line break", user)
	}
	if err := l.send("APOP " + user + " " + apopDigest(ts, pass)); err != nil {
		return "", err
	}
	if reply, err = l.readLine(); err != nil {
		return "", err
	}
	_ = l.send("QUIT")
	return reply, nil
}
