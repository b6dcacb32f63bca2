package load

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// scramClient is the client side of RFC 5802 SCRAM (RFC 7677 for
// SHA-256), without channel binding ("n,,"), as Dovecot's clients use it.
type scramClient struct {
	mech      string
	h         func() hash.Hash
	user      string
	pass      string
	cnonce    string
	firstBare string
	serverSig []byte
	keys      *scramKeyCache
}

func newSCRAMClient(mech, user, pass string, keys *scramKeyCache) (*scramClient, error) {
	s := &scramClient{mech: mech, user: user, pass: pass, keys: keys}
	switch mech {
	case "SCRAM-SHA-1":
		s.h = sha1.New
	case "SCRAM-SHA-256":
		s.h = sha256.New
	default:
		return nil, fmt.Errorf("unsupported SCRAM mechanism %q", mech)
	}
	var nonce [18]byte
	_, _ = rand.Read(nonce[:])
	s.cnonce = base64.StdEncoding.EncodeToString(nonce[:])
	// saslname: '=' and ',' are escaped (RFC 5802 §5.1).
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(user)
	s.firstBare = "n=" + name + ",r=" + s.cnonce
	return s, nil
}

// clientFirst is the gs2 header plus client-first-message-bare.
func (s *scramClient) clientFirst() []byte { return []byte("n,," + s.firstBare) }

// next answers a server CONT: the server-first-message at step 0, the
// server-final-message (v=) at step 1 when the server sends it as a CONT
// (no final-resp-ok), answered with an empty response.
func (s *scramClient) next(challenge []byte, step int) ([]byte, error) {
	switch step {
	case 0:
		return s.clientFinal(string(challenge))
	case 1:
		if err := s.checkFinal(challenge); err != nil {
			return nil, err
		}
		return []byte{}, nil
	}
	return nil, errors.New("SCRAM: unexpected extra CONT")
}

func (s *scramClient) clientFinal(serverFirst string) ([]byte, error) {
	var nonce, salt string
	iter := 0
	for _, a := range strings.Split(serverFirst, ",") {
		if len(a) < 2 || a[1] != '=' {
			return nil, fmt.Errorf("SCRAM: malformed server-first-message %.80q", serverFirst)
		}
		switch a[0] {
		case 'r':
			nonce = a[2:]
		case 's':
			salt = a[2:]
		case 'i':
			n, err := strconv.Atoi(a[2:])
			if err != nil || n < 1 || n > 10_000_000 {
				return nil, fmt.Errorf("SCRAM: bad iteration count %q", a[2:])
			}
			iter = n
		case 'm':
			return nil, errors.New("SCRAM: server requires an unsupported extension")
		}
	}
	if !strings.HasPrefix(nonce, s.cnonce) || len(nonce) == len(s.cnonce) || salt == "" || iter == 0 {
		return nil, fmt.Errorf("SCRAM: bad server-first-message %.80q", serverFirst)
	}
	saltRaw, err := base64.StdEncoding.DecodeString(salt)
	if err != nil {
		return nil, fmt.Errorf("SCRAM: salt: %w", err)
	}
	k, err := s.keys.get(s.mech, s.h, s.pass, saltRaw, iter)
	if err != nil {
		return nil, err
	}
	withoutProof := "c=biws,r=" + nonce // biws = base64("n,,")
	authMessage := []byte(s.firstBare + "," + serverFirst + "," + withoutProof)
	m := hmac.New(s.h, k.storedKey)
	m.Write(authMessage)
	proof := m.Sum(nil)
	subtle.XORBytes(proof, proof, k.clientKey)
	m = hmac.New(s.h, k.serverKey)
	m.Write(authMessage)
	s.serverSig = m.Sum(nil)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// checkFinal verifies the server's "v=" (mutual authentication).
func (s *scramClient) checkFinal(final []byte) error {
	v, ok := bytes.CutPrefix(final, []byte("v="))
	if !ok {
		return fmt.Errorf("SCRAM: server-final-message %.80q", final)
	}
	sig, err := base64.StdEncoding.DecodeString(string(v))
	if err != nil || s.serverSig == nil || !hmac.Equal(sig, s.serverSig) {
		return errors.New("SCRAM: wrong server signature")
	}
	s.serverSig = nil // checked
	return nil
}

// checkOK checks the final data of an OK: resp=v=… with final-resp-ok, or
// nothing when it came earlier as a CONT (step 2).
func (s *scramClient) checkOK(fields []byte, step int) error {
	if r, ok := fieldValue(fields, "resp"); ok {
		final, err := base64.StdEncoding.AppendDecode(nil, r)
		if err != nil {
			return fmt.Errorf("SCRAM: OK resp=: %w", err)
		}
		return s.checkFinal(final)
	}
	if step == 2 {
		return nil
	}
	return errors.New("SCRAM: OK without the server signature")
}

type scramKeys struct{ clientKey, storedKey, serverKey []byte }

// scramKeyCache memoises the PBKDF2 step per (password, salt, iterations):
// a real client pays it once per login, but here it would put thousands
// of PBKDF2 runs per second on the CPU the server under test needs. The
// server's cost is unchanged (it stores or derives its own keys). One
// belongs to each client protocol value (Builtin), shared by its
// connections.
type scramKeyCache struct{ m sync.Map }

func (c *scramKeyCache) get(mech string, h func() hash.Hash, pass string, salt []byte, iter int) (*scramKeys, error) {
	key := mech + "\x00" + strconv.Itoa(iter) + "\x00" + string(salt) + "\x00" + pass
	if v, ok := c.m.Load(key); ok {
		return v.(*scramKeys), nil
	}
	size := h().Size()
	salted, err := pbkdf2.Key(h, pass, salt, iter, size)
	if err != nil {
		return nil, fmt.Errorf("SCRAM: %w", err)
	}
	mac := func(k []byte, s string) []byte {
		m := hmac.New(h, k)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	k := &scramKeys{clientKey: mac(salted, "Client Key"), serverKey: mac(salted, "Server Key")}
	d := h()
	d.Write(k.clientKey)
	k.storedKey = d.Sum(nil)
	v, _ := c.m.LoadOrStore(key, k)
	return v.(*scramKeys), nil
}
