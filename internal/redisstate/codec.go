package redisstate

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/fields"
)

// A cache record in Redis: a version byte, then (version 1) the body in
// the clear or (version 2) a random nonce and the body sealed with
// AES-256-GCM under a key derived from Options.Secret, the record's Redis
// key as additional data (a record copied under another user's key does
// not open). The body: epoch, user generation, created (Unix ms), TTL
// (ms), flags, then the scheme, the data and the fields as
// length-prefixed strings.
const (
	recordClear  = 1
	recordSealed = 2
)

// maxRecord bounds what decode accepts: a record is far smaller, and a
// damaged length must not make it allocate much.
const maxRecord = 1 << 20

// codec encodes records, sealing them when a secret is set.
type codec struct{ aead cipher.AEAD }

func (c *Client) codec() codec { return c.cd }

// newCodec builds the codec for secret (none: records in the clear).
func newCodec(secret []byte) codec {
	if len(secret) == 0 {
		return codec{}
	}
	block, err := aes.NewCipher(derive(secret, "authd cache record"))
	if err != nil {
		return codec{}
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return codec{}
	}
	return codec{aead: gcm}
}

// plaintextEquivalent lists the schemes whose stored value is the
// password, or lets one log in without it (CRAM-MD5's and DIGEST-MD5's
// precomputed states, NTLM's MD4): never kept in Redis unsealed, so that
// Redis never holds a password (docs/scale-out.md).
var plaintextEquivalent = map[string]bool{
	"PLAIN": true, "CLEAR": true, "CLEARTEXT": true, "PLAIN-TRUNC": true,
	"CRAM-MD5": true, "HMAC-MD5": true, "DIGEST-MD5": true, "PLAIN-MD4": true, "OTP": true, "": true,
}

// encode renders rec; false when it must not be kept (a plaintext
// password and no secret to seal it with).
func (cd codec) encode(key string, rec cache.Record, g cache.Gen) ([]byte, bool) {
	e := &rec.Entry
	if cd.aead == nil && e.HasPassword && plaintextEquivalent[strings.ToUpper(e.Scheme)] {
		return nil, false
	}
	b := make([]byte, 0, 64+len(e.Scheme)+len(e.Data))
	b = binary.BigEndian.AppendUint64(b, g.Epoch)
	b = binary.BigEndian.AppendUint64(b, g.User)
	b = binary.BigEndian.AppendUint64(b, uint64(rec.Created.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, uint64(rec.TTL.Milliseconds()))
	var flags byte
	if e.Negative {
		flags |= 1
	}
	if e.HasPassword {
		flags |= 2
	}
	b = append(b, flags)
	b = appendString(b, e.Scheme)
	b = appendString(b, e.Data)
	b = binary.AppendUvarint(b, uint64(len(e.Fields)))
	for _, f := range e.Fields {
		b = appendString(b, f.Key)
		b = appendString(b, f.Value)
	}
	if cd.aead == nil {
		return append([]byte{recordClear}, b...), true
	}
	out := make([]byte, 1+cd.aead.NonceSize(), 1+cd.aead.NonceSize()+len(b)+cd.aead.Overhead())
	out[0] = recordSealed
	_, _ = rand.Read(out[1:])
	return cd.aead.Seal(out, out[1:], b, []byte(key)), true
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errRecord = errors.New("redis: malformed cache record")

// decode reads a record written by encode under key.
func (cd codec) decode(key string, data []byte) (cache.Record, cache.Gen, error) {
	if len(data) < 1 || len(data) > maxRecord {
		return cache.Record{}, cache.Gen{}, errRecord
	}
	body := data[1:]
	switch data[0] {
	case recordClear:
	case recordSealed:
		if cd.aead == nil || len(body) < cd.aead.NonceSize() {
			return cache.Record{}, cache.Gen{}, errRecord
		}
		n := cd.aead.NonceSize()
		var err error
		if body, err = cd.aead.Open(nil, body[:n], body[n:], []byte(key)); err != nil {
			return cache.Record{}, cache.Gen{}, errRecord
		}
	default:
		return cache.Record{}, cache.Gen{}, errRecord
	}
	return decodeBody(body)
}

func decodeBody(b []byte) (cache.Record, cache.Gen, error) {
	var rec cache.Record
	var g cache.Gen
	if len(b) < 33 {
		return rec, g, errRecord
	}
	g.Epoch = binary.BigEndian.Uint64(b)
	g.User = binary.BigEndian.Uint64(b[8:])
	rec.Created = time.UnixMilli(int64(binary.BigEndian.Uint64(b[16:])))
	rec.TTL = time.Duration(binary.BigEndian.Uint64(b[24:])) * time.Millisecond
	flags := b[32]
	rec.Entry.Negative, rec.Entry.HasPassword = flags&1 != 0, flags&2 != 0
	r := reader{b: b[33:]}
	rec.Entry.Scheme = r.str()
	rec.Entry.Data = r.str()
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return rec, g, errRecord
	}
	for range n {
		rec.Entry.Fields = append(rec.Entry.Fields, fields.Field{Key: r.str(), Value: r.str()})
	}
	if r.bad || len(r.b) != 0 {
		return rec, g, errRecord
	}
	return rec, g, nil
}

// reader reads length-prefixed strings; bad once anything was short.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
