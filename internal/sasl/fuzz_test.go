package sasl

import (
	"context"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/engine"
)

// The fuzz targets cover every parser of client bytes in this package
// (docs/architecture.md, house rule 2). Seed corpora live in testdata/fuzz/.

const fuzzDigestNonce = "OA6MHXh6VqTrRkVwhqIjqA=="

// FuzzDigestMD5Response: the DIGEST-MD5 response parser never panics and
// only accepts what RFC 2831 and mech-digest-md5.c allow.
func FuzzDigestMD5Response(f *testing.F) {
	f.Add([]byte(`username="alice",realm="example.com",nonce="OA6MHXh6VqTrRkVwhqIjqA==",cnonce="wDF6hqjY5GOx/K7T",nc=00000001,qop=auth,digest-uri="imap/mail.example.com",response=c574b85519d9cfaf0c57a038264b9dc3,charset=utf-8`))
	f.Add([]byte(`username="a\"b",nonce="OA6MHXh6VqTrRkVwhqIjqA==",cnonce=x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseDigestResponse(data, fuzzDigestNonce)
		if err != nil {
			return
		}
		if r.username == "" || r.cnonce == "" {
			t.Fatalf("accepted without username/cnonce: %+v", r)
		}
		if n, ok := parseDecimal(r.nc); !ok || n != 1 {
			t.Fatalf("accepted nc %q", r.nc)
		}
		if !strings.EqualFold(r.qop, "auth") {
			t.Fatalf("accepted qop %q", r.qop)
		}
		if r.response != "" && len(r.response) != 32 {
			t.Fatalf("accepted response %q", r.response)
		}
		if r.digestURI != "" && !strings.Contains(r.digestURI, "/") {
			t.Fatalf("accepted digest-uri %q", r.digestURI)
		}
	})
}

// FuzzSCRAMClientFirst: the client-first parser never panics, and what it
// accepts splits the message exactly into gs2-header and the bare part
// that goes into AuthMessage.
func FuzzSCRAMClientFirst(f *testing.F) {
	f.Add([]byte("n,,n=alice@example.com,r=rOprNGfwEbeRWgbNEkqO"))
	f.Add([]byte("y,a=bob=2Cx,n=al=3Dice,r=abc,e=ext"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := parseSCRAMClientFirst(data)
		if err != nil {
			return
		}
		if cf.gs2Header+cf.bare != string(data) {
			t.Fatalf("gs2 %q + bare %q != %q", cf.gs2Header, cf.bare, data)
		}
		if cf.gs2Header[0] != 'n' && cf.gs2Header[0] != 'y' {
			t.Fatalf("accepted gs2 header %q", cf.gs2Header)
		}
		if cf.username == "" || !strings.HasPrefix(cf.bare, "n=") {
			t.Fatalf("accepted user %q in %q", cf.username, cf.bare)
		}
	})
}

// FuzzSCRAMClientFinal: the client-final parser never panics, and what it
// accepts is "<without-proof>,p=<proof>" with the right channel binding,
// nonce and proof size.
func FuzzSCRAMClientFinal(f *testing.F) {
	f.Add([]byte("c=biws,r=abcdef,p=qPROXk2LQPAqppoUkQcX/lyi/e3LVJLsFlSoiAqGcSk="))
	f.Add([]byte("c=biws,r=abcdef,e=x,p=qPROXk2LQPAqppoUkQcX/lyi/e3LVJLsFlSoiAqGcSk="))
	f.Fuzz(func(t *testing.T, data []byte) {
		without, proof, err := parseSCRAMClientFinal(data, "n,,", "abcdef", 32)
		if err != nil {
			return
		}
		if len(proof) != 32 || !strings.HasPrefix(string(data), without+",p=") ||
			!strings.HasPrefix(without, "c=biws,r=abcdef") {
			t.Fatalf("accepted %q: without %q proof %x", data, without, proof)
		}
	})
}

// FuzzMechanisms runs whole exchanges of every mechanism on fuzzed client
// messages against a real engine: no panic, no success without the
// password (ANONYMOUS aside), always an end.
func FuzzMechanisms(f *testing.F) {
	eng := newEngine(f, userSets["default"])
	names := []string{"PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "APOP", "EXTERNAL", "OAUTHBEARER", "XOAUTH2"}
	set := &Settings{Realms: []string{"example.com"}, UsernameFromCert: true}
	f.Add(uint8(2), []byte("alice@example.com 0123"), []byte(""))
	f.Add(uint8(5), []byte("n,,n=alice@example.com,r=x"), []byte("c=biws,r=x,p=AAAA"))
	f.Add(uint8(8), []byte("n,a=alice@example.com,\x01auth=Bearer wrong\x01\x01"), []byte("\x01"))
	f.Fuzz(func(t *testing.T, which uint8, first, second []byte) {
		name := names[int(which)%len(names)]
		info := &engine.Info{Service: "imap", Mech: name, ValidClientCert: true, CertUsername: "alice@example.com"}
		m := Defs[name].New(&Env{Engine: eng, Info: info, Settings: set, SPID: 1, CUID: 1})
		rep := m.Step(context.Background(), first, true)
		for n := 0; !rep.Done && n < 4; n++ {
			rep = m.Step(context.Background(), second, true)
		}
		if !rep.Done {
			t.Fatalf("%s: no end", name)
		}
		// "secret" can come through only as PLAIN/LOGIN/OAuth data typed
		// by the fuzzer; a challenge-response proof cannot be guessed.
		if rep.Result.Status == engine.StatusOK {
			switch name {
			case "PLAIN", "LOGIN", "OAUTHBEARER", "XOAUTH2":
				if !strings.Contains(string(first)+string(second), "secret") {
					t.Fatalf("%s: success without the password: %q %q", name, first, second)
				}
			default:
				t.Fatalf("%s: success on fuzzed data %q %q", name, first, second)
			}
		}
	})
}
