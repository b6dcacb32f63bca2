package sasl

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/vars"
	"github.com/authd-project/authd/schemes"
)

// TestDefs pins the MECH flags of docs/protocol.md §4.1 (Dovecot 2.3, in
// mech.c's order) and the NUL rule of docs/protocol.md §1.8.
func TestDefs(t *testing.T) {
	want := map[string][]string{
		"PLAIN":         {"plaintext"},
		"LOGIN":         {"plaintext"},
		"CRAM-MD5":      {"dictionary", "active"},
		"DIGEST-MD5":    {"dictionary", "active", "mutual-auth"},
		"SCRAM-SHA-1":   {"mutual-auth"},
		"SCRAM-SHA-256": {"mutual-auth"},
		"APOP":          {"private", "dictionary", "active"},
		"ANONYMOUS":     {"anonymous"},
		"EXTERNAL":      nil,
		"OAUTHBEARER":   {"plaintext"},
		"XOAUTH2":       {"plaintext"},
	}
	allowNUL := map[string]bool{"PLAIN": true, "APOP": true, "ANONYMOUS": true}
	if len(Defs) != len(want) {
		t.Errorf("Defs has %d mechanisms, want %d", len(Defs), len(want))
	}
	for name, flags := range want {
		d, ok := Defs[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if d.Name != name || !slices.Equal(d.Flags, flags) || d.AllowNUL != allowNUL[name] || d.New == nil {
			t.Errorf("%s: got name %q flags %q AllowNUL %v", name, d.Name, d.Flags, d.AllowNUL)
		}
	}
}

func newTestEnv(eng Engine, set *Settings, info *engine.Info) *Env {
	if info == nil {
		info = &engine.Info{Service: "imap"}
	}
	return &Env{Engine: eng, Info: info, Settings: set, SPID: 10966, CUID: 7}
}

// scramClient is the client side of RFC 5802, to run exchanges whose
// server nonce and salt are random.
type scramClient struct {
	h                 func() hash.Hash
	user, authzid     string
	password, cnonce  string
	gs2, bare         string
	serverSignature   []byte
	clientFinalNoPrf  string
	serverFirstParsed map[string]string
}

func (c *scramClient) first() []byte {
	c.gs2 = "n,"
	if c.authzid != "" {
		c.gs2 += "a=" + c.authzid
	}
	c.gs2 += ","
	c.bare = "n=" + c.user + ",r=" + c.cnonce
	return []byte(c.gs2 + c.bare)
}

func (c *scramClient) final(serverFirst []byte) ([]byte, error) {
	attrs := map[string]string{}
	for _, kv := range strings.Split(string(serverFirst), ",") {
		k, v, _ := strings.Cut(kv, "=")
		attrs[k] = v
	}
	c.serverFirstParsed = attrs
	if !strings.HasPrefix(attrs["r"], c.cnonce) {
		return nil, errors.New("server nonce does not extend ours")
	}
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil {
		return nil, err
	}
	iter, err := strconv.Atoi(attrs["i"])
	if err != nil {
		return nil, err
	}
	salted, err := pbkdf2.Key(c.h, c.password, salt, iter, c.h().Size())
	if err != nil {
		return nil, err
	}
	mac := func(key []byte, s string) []byte {
		m := hmac.New(c.h, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	h := c.h()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	c.clientFinalNoPrf = "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2)) + ",r=" + attrs["r"]
	authMessage := c.bare + "," + string(serverFirst) + "," + c.clientFinalNoPrf
	proof := mac(storedKey, authMessage)
	subtle.XORBytes(proof, proof, clientKey)
	c.serverSignature = mac(mac(salted, "Server Key"), authMessage)
	return []byte(c.clientFinalNoPrf + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// TestSCRAMDerivedCredentials runs SCRAM the way production does: a
// 64-character server nonce from crypto/rand and credentials derived from
// a {PLAIN} password with a fresh salt (docs/protocol.md §4.1).
func TestSCRAMDerivedCredentials(t *testing.T) {
	eng := newEngine(t, userSets["default"])
	for _, tc := range []struct {
		mech string
		h    func() hash.Hash
	}{{"SCRAM-SHA-1", sha1.New}, {"SCRAM-SHA-256", sha256.New}} {
		t.Run(tc.mech, func(t *testing.T) {
			for _, pw := range []string{"secret", "wrong"} {
				m := Defs[tc.mech].New(newTestEnv(eng, nil, nil))
				c := &scramClient{h: tc.h, user: "alice@example.com", password: pw, cnonce: "fyko+d2lbbFgONRv9qkxdawL"}
				rep := m.Step(context.Background(), c.first(), true)
				if rep.Done {
					t.Fatalf("client-first: %+v", rep.Result)
				}
				snonce := strings.TrimPrefix(c.first2nonce(rep.Challenge), c.cnonce)
				if len(snonce) != 64 {
					t.Fatalf("server nonce %q has %d characters, want 64", snonce, len(snonce))
				}
				for _, ch := range []byte(snonce) {
					if ch < '!' || ch > '~' || ch == ',' {
						t.Fatalf("server nonce %q has %q", snonce, ch)
					}
				}
				fin, err := c.final(rep.Challenge)
				if err != nil {
					t.Fatal(err)
				}
				if c.serverFirstParsed["i"] != "4096" {
					t.Errorf("iterations %q, want 4096", c.serverFirstParsed["i"])
				}
				rep = m.Step(context.Background(), fin, true)
				if !rep.Done {
					t.Fatal("client-final: not done")
				}
				if pw == "wrong" {
					if rep.Result.Status != engine.StatusFail || rep.Result.User != "alice@example.com" || rep.Final != nil {
						t.Fatalf("wrong password: %+v final %q", rep.Result, rep.Final)
					}
					continue
				}
				if rep.Result.Status != engine.StatusOK || rep.Result.User != "alice@example.com" {
					t.Fatalf("result %+v", rep.Result)
				}
				if want := "v=" + base64.StdEncoding.EncodeToString(c.serverSignature); string(rep.Final) != want {
					t.Fatalf("final %q, want %q", rep.Final, want)
				}
			}
		})
	}
}

func (c *scramClient) first2nonce(serverFirst []byte) string {
	r, _, _ := strings.Cut(string(serverFirst), ",")
	return strings.TrimPrefix(r, "r=")
}

// newMasterEngine has a master passdb (admin@example.com, password
// "masterpw") in front of the users of the default set (docs/protocol.md §5.3).
func newMasterEngine(t *testing.T) *engine.Engine {
	t.Helper()
	dir := t.TempDir()
	mpath, upath := filepath.Join(dir, "masters"), filepath.Join(dir, "users")
	if err := os.WriteFile(mpath, []byte("admin@example.com:{PLAIN}masterpw::::::\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(upath, []byte(userSets["default"]), 0o644); err != nil {
		t.Fatal(err)
	}
	mdb, err := passwdfile.New("scheme=PLAIN "+mpath, nil)
	if err != nil {
		t.Fatal(err)
	}
	udb, err := passwdfile.New("scheme=PLAIN "+upath, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := vars.ParseFields("")
	spec := func(db *passwdfile.DB, master bool) engine.DBSpec {
		return engine.DBSpec{Driver: "passwd-file", Passdb: db, DefaultFields: tmpl, Master: master,
			ResultSuccess: config.RuleReturnOK, ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue}
	}
	eng, err := engine.New(engine.Settings{DefaultRealm: "example.com", UsernameChars: testUsernameChars},
		[]engine.DBSpec{spec(mdb, true), spec(udb, false)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// TestMasterLogin: the SASL authorization identity of SCRAM (a=),
// DIGEST-MD5 (authzid) and EXTERNAL asks for a master login (docs/protocol.md §5.3): the
// master's credentials prove it, the result is the login user with
// auth_user.
func TestMasterLogin(t *testing.T) {
	eng := newMasterEngine(t)
	check := func(t *testing.T, rep Reply) {
		t.Helper()
		if !rep.Done || rep.Result.Status != engine.StatusOK || rep.Result.User != "alice@example.com" || rep.Result.MasterUser != "admin@example.com" {
			t.Fatalf("got done=%v %+v", rep.Done, rep.Result)
		}
	}
	t.Run("SCRAM", func(t *testing.T) {
		m := Defs["SCRAM-SHA-256"].New(newTestEnv(eng, nil, nil))
		// "=3D" and "=2C" in a saslname (RFC 5802 §5.1) are harmless here
		// since the characters are not allowed; the plain name works.
		c := &scramClient{h: sha256.New, user: "admin@example.com", authzid: "alice@example.com", password: "masterpw", cnonce: "abcdef"}
		rep := m.Step(context.Background(), c.first(), true)
		if rep.Done {
			t.Fatalf("client-first: %+v", rep.Result)
		}
		fin, err := c.final(rep.Challenge)
		if err != nil {
			t.Fatal(err)
		}
		check(t, m.Step(context.Background(), fin, true))
	})
	t.Run("SCRAM-wrong", func(t *testing.T) {
		m := Defs["SCRAM-SHA-256"].New(newTestEnv(eng, nil, nil))
		c := &scramClient{h: sha256.New, user: "admin@example.com", authzid: "alice@example.com", password: "secret", cnonce: "abcdef"}
		rep := m.Step(context.Background(), c.first(), true)
		fin, _ := c.final(rep.Challenge)
		rep = m.Step(context.Background(), fin, true)
		// The master failed to authenticate: FAIL names the master.
		if rep.Result.Status != engine.StatusFail || rep.Result.User != "admin@example.com" || rep.Result.MasterUser != "" {
			t.Fatalf("got %+v", rep.Result)
		}
	})
	t.Run("DIGEST-MD5", func(t *testing.T) {
		m := Defs["DIGEST-MD5"].New(newTestEnv(eng, &Settings{Realms: []string{"example.com"}}, nil))
		rep := m.Step(context.Background(), nil, false)
		nonce := regexp.MustCompile(`nonce="([^"]+)"`).FindSubmatch(rep.Challenge)[1]
		cred := md5.Sum([]byte("admin:example.com:masterpw"))
		resp, rspauth := digestResponses(cred[:], string(nonce), digestResponse{
			cnonce: "xyz", nc: "00000001", qop: "auth", digestURI: "imap/mail", authzid: "alice@example.com"})
		msg := fmt.Sprintf(`username="admin",realm="example.com",authzid="alice@example.com",nonce="%s",cnonce="xyz",nc=00000001,qop=auth,digest-uri="imap/mail",response=%s`, nonce, resp)
		rep = m.Step(context.Background(), []byte(msg), true)
		check(t, rep)
		if string(rep.Final) != "rspauth="+string(rspauth) {
			t.Fatalf("final %q", rep.Final)
		}
	})
}

// credForEngine records the names DIGEST-MD5 asks credentials for, and
// derives them from the plaintext for credUser.
type credForEngine struct {
	*engine.Engine
	calls []string
}

func (e *credForEngine) LookupCredentials(ctx context.Context, info *engine.Info, authzid, authcid, wanted, credUser string) (engine.Result, []byte) {
	e.calls = append(e.calls, authcid+" "+credUser)
	res, pw := e.Engine.LookupCredentials(ctx, info, authzid, authcid, "PLAIN", "")
	if res.Status != engine.StatusOK {
		return res, nil
	}
	cred, err := schemes.Credentials("PLAIN", string(pw), wanted, credUser)
	if err != nil {
		res.Status = engine.StatusFail
		return res, nil
	}
	return res, cred
}

// TestDigestMD5UserWithDomain: a client that sends its full address as
// the DIGEST-MD5 user hashes "alice@example.com:<realm>:secret"; Dovecot
// then derives the digest for that name and realm (passdb.c), which needs
// the engine's LookupCredentials with credUser.
func TestDigestMD5UserWithDomain(t *testing.T) {
	for _, realm := range []string{"example.com", ""} {
		eng := &credForEngine{Engine: newEngine(t, userSets["default"])}
		m := Defs["DIGEST-MD5"].New(newTestEnv(eng, &Settings{Realms: []string{"example.com"}}, nil))
		rep := m.Step(context.Background(), nil, false)
		nonce := regexp.MustCompile(`nonce="([^"]+)"`).FindSubmatch(rep.Challenge)[1]
		cred := md5.Sum([]byte("alice@example.com:" + realm + ":secret"))
		resp, _ := digestResponses(cred[:], string(nonce), digestResponse{cnonce: "c", nc: "00000001", qop: "auth", digestURI: "smtp/x"})
		msg := fmt.Sprintf(`username="alice@example.com",realm="%s",nonce="%s",cnonce="c",digest-uri="smtp/x",response=%s`, realm, nonce, resp)
		rep = m.Step(context.Background(), []byte(msg), true)
		if rep.Result.Status != engine.StatusOK || rep.Result.User != "alice@example.com" {
			t.Fatalf("realm %q: %+v", realm, rep.Result)
		}
		if want := []string{"alice@example.com alice@example.com@" + realm}; !slices.Equal(eng.calls, want) {
			t.Fatalf("realm %q: calls %q, want %q", realm, eng.calls, want)
		}
	}
}

// TestCRAMMD5DefaultSettings: without Settings the challenge has the
// documented shape, from crypto/rand, the clock and the host name.
func TestCRAMMD5DefaultSettings(t *testing.T) {
	eng := newEngine(t, userSets["default"])
	re := regexp.MustCompile(`^<[0-9]{16}\.[0-9]+@[^>]+>$`)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			m := Defs["CRAM-MD5"].New(newTestEnv(eng, nil, nil))
			rep := m.Step(context.Background(), nil, false)
			if !re.Match(rep.Challenge) {
				t.Errorf("challenge %q", rep.Challenge)
				return
			}
			mac := hmac.New(md5.New, []byte("secret"))
			mac.Write(rep.Challenge)
			rep = m.Step(context.Background(), []byte("alice@example.com "+hex.EncodeToString(mac.Sum(nil))), true)
			if rep.Result.Status != engine.StatusOK {
				t.Errorf("result %+v", rep.Result)
			}
		})
	}
	wg.Wait()
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

// TestNoRandomness: a broken random source is an internal failure
// (temp_fail), never a weak challenge.
func TestNoRandomness(t *testing.T) {
	eng := newEngine(t, userSets["scram256"])
	set := &Settings{Rand: errReader{}}
	for _, name := range []string{"CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-256"} {
		m := Defs[name].New(newTestEnv(eng, set, nil))
		rep := m.Step(context.Background(), []byte("n,,n=alice@example.com,r=abc"), true)
		if !rep.Done || rep.Result.Status != engine.StatusTempFail {
			t.Errorf("%s: done=%v %+v", name, rep.Done, rep.Result)
		}
	}
}

// TestAPOPUnwired: an Env without SPID/CUID refuses every challenge, even
// one built from zeros.
func TestAPOPUnwired(t *testing.T) {
	eng := newEngine(t, userSets["default"])
	chal := "<0.0.6b02c18f.x@vm>"
	d := md5.Sum([]byte(chal + "secret"))
	data := append([]byte(chal+"\x00alice@example.com\x00"), d[:]...)
	env := &Env{Engine: eng, Info: &engine.Info{Service: "pop3"}, Settings: &Settings{StartTime: loadTime.AddDate(-10, 0, 0)}}
	rep := Defs["APOP"].New(env).Step(context.Background(), data, true)
	if rep.Result.Status != engine.StatusFail {
		t.Fatalf("got %+v", rep.Result)
	}
}

// hostileInputs are client messages no mechanism may accept or panic on.
var hostileInputs = [][]byte{
	nil, {}, {0}, []byte(","), []byte("="), []byte(`"`), []byte(`\`), []byte("a=b,"),
	[]byte(",,,,,,"), []byte("n,,"), []byte("n,,n=,r="), []byte("n,,n=a,r=b"), []byte("y,a=,n=x,r=y"),
	[]byte("p=x,,n=a,r=b"), []byte("n,a=x=,n=a,r=b"), []byte("n,,n=a=2,r=b"), []byte("n,,n=a=3"),
	[]byte("c=biws,r=x,p="), []byte("c=,r=,p=!!!"), []byte("c=biws,r=abc,p=AAAA"),
	[]byte(`username="`), []byte(`realm="\`), []byte(`nonce=",cnonce="",username=""`),
	[]byte(`username=a,nonce=x,cnonce=y,nc=1,qop=auth,response=0`), []byte(`nc=99999999999999999999999`),
	[]byte(`maxbuf=0`), []byte(`digest-uri=nouri,username=u`), []byte(`qop=AUTH-CONF`), []byte(`charset=latin1`),
	bytes.Repeat([]byte("a=b,"), 4000), bytes.Repeat([]byte(`"\`), 3000),
	[]byte("\x01"), []byte("\x01\x01"), []byte("auth=Bearer "), []byte("user=\x01auth=Bearer x\x01\x01"),
	[]byte("n,a=\x01auth=Bearer x"), []byte("f,a=x,\x01auth=Bearer x"), []byte("auth=bearer\x01"),
	[]byte("alice"), []byte(" "), []byte("alice "), []byte("<"), []byte("<1.2.3.\x00a\x00"),
	[]byte("<ffffffffffffffffffff.1.1.\x00alice@example.com\x000123456789abcdef"),
	[]byte("\xff\xfe\xfd"),
}

// TestHostileInputs feeds every mechanism every hostile message at every
// step: no panic, no success (except ANONYMOUS, which accepts anything by
// design), and the exchange ends.
func TestHostileInputs(t *testing.T) {
	eng := newEngine(t, userSets["default"])
	set := &Settings{Realms: []string{"example.com"}}
	for name, def := range Defs {
		for i, in := range hostileInputs {
			for _, initial := range []bool{false, true} {
				m := def.New(newTestEnv(eng, set, &engine.Info{Service: "imap", Mech: name}))
				rep := m.Step(context.Background(), in, initial)
				for n := 0; !rep.Done && n < 5; n++ {
					rep = m.Step(context.Background(), in, true)
				}
				if !rep.Done {
					t.Errorf("%s input %d: not done after 6 steps", name, i)
					continue
				}
				if rep.Result.Status == engine.StatusOK && name != "ANONYMOUS" {
					t.Errorf("%s input %d (%q): success", name, i, in)
				}
				if rep := m.Step(context.Background(), in, true); !rep.Done || rep.Result.Status == engine.StatusOK {
					t.Errorf("%s: a step after the end did not fail: %+v", name, rep)
				}
			}
		}
	}
}

// An unknown user's SCRAM exchange cannot be told from a known user's
// until the proof fails: the first answer is a CONT with a salt that is
// the same on every try (as a known user's is, stored or derived from a
// plaintext password) and the usual iteration count, and the end is the
// FAIL of a wrong password.
func TestSCRAMUnknownUser(t *testing.T) {
	eng := newEngine(t, userSets["default"])
	first := func(user, pw string) (attrs map[string]string, rep Reply) {
		t.Helper()
		m := Defs["SCRAM-SHA-256"].New(newTestEnv(eng, nil, nil))
		c := &scramClient{h: sha256.New, user: user, password: pw, cnonce: "fyko+d2lbbFgONRv9qkxdawL"}
		rep = m.Step(context.Background(), c.first(), true)
		if rep.Done {
			t.Fatalf("%s: client-first ended the exchange: %+v", user, rep.Result)
		}
		fin, err := c.final(rep.Challenge)
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		return c.serverFirstParsed, m.Step(context.Background(), fin, true)
	}
	known1, wrong := first("alice@example.com", "wrong")
	known2, _ := first("alice@example.com", "wrong")
	unknown1, fake := first("nosuch@example.com", "wrong")
	unknown2, _ := first("nosuch@example.com", "wrong")
	if known1["s"] != known2["s"] || unknown1["s"] != unknown2["s"] {
		t.Errorf("salts change between tries: known %q %q, unknown %q %q", known1["s"], known2["s"], unknown1["s"], unknown2["s"])
	}
	if len(unknown1["s"]) != len(known1["s"]) || unknown1["i"] != known1["i"] || unknown1["s"] == known1["s"] {
		t.Errorf("unknown user announces s=%q i=%s, known user s=%q i=%s", unknown1["s"], unknown1["i"], known1["s"], known1["i"])
	}
	if !fake.Done || fake.Result.Status != engine.StatusFail || fake.Final != nil {
		t.Fatalf("unknown user's proof: %+v", fake)
	}
	if !wrong.Done || wrong.Result.Status != engine.StatusFail || wrong.Final != nil {
		t.Fatalf("wrong password's proof: %+v", wrong)
	}
	if fake.Result.User != "nosuch@example.com" || len(fake.Result.Fields) != len(wrong.Result.Fields) {
		t.Errorf("unknown user FAILs as %+v, a wrong password as %+v", fake.Result, wrong.Result)
	}
}
