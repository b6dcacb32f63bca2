package sasl

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
)

// userSets are the passwd-files the tests run against, by name. The
// stored values are those of docs/protocol.md §4.1/§4.3 for the password
// "secret"; every set holds alice@example.com in a different scheme, since
// the worked exchanges all use her name.
var userSets = map[string]string{
	"default": `alice@example.com:{PLAIN}secret:1000:1000::/home/alice::
crypt@example.com:{SHA512-CRYPT}$6$authdtestsalt$KGhEqWWWFQGkbQfYrwqa/HEGsz7zNKaCMdr.9RoPb6mPMNNyySHg45oyGGdSyU4Sl87doPEl5z54TxFY0EEQa.:1001:1001::/home/crypt::
nl@example.com:{PLAIN}secret::::::nologin reason=Go_away
`,
	"cram": `alice@example.com:{CRAM-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56:1000:1000::/home/alice::
`,
	"digest": `alice@example.com:{DIGEST-MD5}b1726872c344b6dc8365b774f8fd6412:1000:1000::/home/alice::
`,
	"scram256": `alice@example.com:{SCRAM-SHA-256}4096,MDEyMzQ1Njc4OWFiY2RlZg==,bpSY5Ze9NUH+I35LC3gVq+DpBfK46iXBxvhAKqVu9pE=,VpYlBuxyzeCI1KnctrefdljpB1mk3Gp7sBI/t11+NkQ=:1000:1000::/home/alice::
`,
	"scram1": `alice@example.com:{SCRAM-SHA-1}4096,MDEyMzQ1Njc4OWFiY2RlZg==,ZnqDkbqfwR2KKV/RA37Ut+cv+dg=,XH6+sRFySz39hhtQA1fE+aOQl/U=:1000:1000::/home/alice::
`,
	// EXTERNAL needs a passdb that accepts an empty password (docs/protocol.md §5.8).
	"nopassword": `alice@example.com:::::::nopassword
`,
}

const testUsernameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@"

// newEngine builds a real engine over one passwd-file, as the protocol
// layer's transcript tests do.
func newEngine(t testing.TB, users string) *engine.Engine {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := passwdfile.New("scheme=PLAIN "+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := vars.ParseFields("")
	eng, err := engine.New(engine.Settings{
		DefaultRealm: "example.com", UsernameChars: testUsernameChars, AnonymousUsername: "anon",
	}, []engine.DBSpec{{
		Driver: "passwd-file", Passdb: db, DefaultFields: tmpl,
		ResultSuccess: config.RuleReturnOK, ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue,
	}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// fixedRand yields the given bytes, then fails: a mechanism that reads
// more than the vector provides turns into a visible temp_fail.
type fixedRand struct {
	mu  sync.Mutex
	buf []byte
}

func (r *fixedRand) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) == 0 {
		return 0, fmt.Errorf("fixed randomness exhausted")
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// randBytes decodes an @rand value: the bytes that make a mechanism
// produce a given challenge.
//
//	digits:4821…  CRAM-MD5: byte d gives digit d (byte % 10)
//	base64:OA6M…  DIGEST-MD5: the nonce's bytes
//	scram:%hvY…   SCRAM: character c comes from byte c-33 (byte % 93 + 33)
//	hex:00ff…     raw bytes
func randBytes(v string) ([]byte, error) {
	kind, val, _ := strings.Cut(v, ":")
	switch kind {
	case "digits":
		b := []byte(val)
		for i := range b {
			b[i] -= '0'
		}
		return b, nil
	case "base64":
		return base64.StdEncoding.DecodeString(val)
	case "scram":
		b := []byte(val)
		for i := range b {
			b[i] -= '!'
		}
		return b, nil
	case "hex":
		return hex.DecodeString(val)
	}
	return nil, fmt.Errorf("unknown @rand kind %q", kind)
}

// transcriptConfig is what a transcript's @ lines set.
type transcriptConfig struct {
	users string
	set   Settings
	spid  uint32
	cuid  uint32
}

func defaultConfig() transcriptConfig {
	return transcriptConfig{
		users: "default",
		set: Settings{
			Hostname:          "mail.example.com",
			AnonymousUsername: "anon",
			StartTime:         time.Unix(1795342700, 0),
			Now:               func() time.Time { return time.Unix(1795342708, 0) },
		},
		spid: 10966,
		cuid: 7,
	}
}

func (c *transcriptConfig) directive(line string) error {
	key, val, _ := strings.Cut(strings.TrimPrefix(line, "@"), " ")
	val = strings.TrimSpace(val)
	num := func() (int64, error) { return strconv.ParseInt(val, 10, 64) }
	switch key {
	case "users":
		if _, ok := userSets[val]; !ok {
			return fmt.Errorf("unknown user set %q", val)
		}
		c.users = val
	case "rand":
		b, err := randBytes(val)
		if err != nil {
			return err
		}
		c.set.Rand = &fixedRand{buf: b}
	case "now":
		n, err := num()
		if err != nil {
			return err
		}
		c.set.Now = func() time.Time { return time.Unix(n, 0) }
	case "start":
		n, err := num()
		if err != nil {
			return err
		}
		c.set.StartTime = time.Unix(n, 0)
	case "hostname":
		c.set.Hostname = val
	case "realms":
		c.set.Realms = strings.Fields(val)
	case "anonymous":
		c.set.AnonymousUsername = val
	case "username-from-cert":
		c.set.UsernameFromCert = true
	case "scram-nonce-len":
		n, err := num()
		if err != nil {
			return err
		}
		c.set.scramNonceLen = int(n)
	case "spid", "cuid":
		n, err := num()
		if err != nil {
			return err
		}
		if key == "spid" {
			c.spid = uint32(n)
		} else {
			c.cuid = uint32(n)
		}
	default:
		return fmt.Errorf("unknown directive %q", key)
	}
	return nil
}

// miniServer stands in for internal/dovecot's client protocol around the
// mechanisms (docs/protocol.md §1.3–§1.5): it turns AUTH/CONT lines into Steps
// and Replies into CONT/OK/FAIL lines, including the final-data rule and
// the NUL check. It knows only what the vectors need: no delays, no
// escaping, every client at minor version 2.
type miniServer struct {
	t     testing.TB
	eng   Engine
	set   *Settings
	spid  uint32
	cuid  uint32
	reqs  map[string]*miniReq
	lines []string
}

type miniReq struct {
	mech        Mechanism
	def         Def
	finalRespOK bool
	finalSent   bool
	final       engine.Result
}

func (s *miniServer) out(line string) { s.lines = append(s.lines, line) }

func (s *miniServer) handle(line string) {
	args := strings.Split(line, "\t")
	switch args[0] {
	case "AUTH":
		s.auth(args)
	case "CONT":
		s.cont(args)
	default:
		s.t.Fatalf("miniServer: unsupported line %q", line)
	}
}

func (s *miniServer) auth(args []string) {
	id := args[1]
	def, ok := Defs[strings.ToUpper(args[2])]
	if !ok {
		s.t.Fatalf("unknown mechanism %q", args[2])
	}
	info := &engine.Info{Mech: def.Name}
	req := &miniReq{def: def}
	var data []byte
	present := false
	for _, p := range args[3:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "service":
			info.Service = v
		case "final-resp-ok":
			req.finalRespOK = true
		case "valid-client-cert":
			info.ValidClientCert = true
		case "cert_username":
			info.CertUsername = v
		case "secured":
			info.Secured = "TLS"
		case "resp":
			present = true
			if v == "" || v == "=" {
				data = []byte{}
				break
			}
			d, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				s.out("FAIL\t" + id + "\tcode=invalid_base64\treason=Invalid base64 data in initial response")
				return
			}
			data = d
		}
	}
	req.mech = def.New(&Env{Engine: s.eng, Info: info, Settings: s.set, SPID: s.spid, CUID: s.cuid})
	s.reqs[id] = req
	if present && !def.AllowNUL && bytes.IndexByte(data, 0) >= 0 {
		s.finish(id, req, Reply{Done: true, Result: engine.Result{Status: engine.StatusFail}})
		return
	}
	s.step(id, req, data, present)
}

func (s *miniServer) cont(args []string) {
	id := args[1]
	req, ok := s.reqs[id]
	if !ok {
		s.out("FAIL\t" + id + "\treason=Authentication request timed out")
		return
	}
	if req.finalSent {
		// RFC 5802 §5 / RFC 2831 §2.1.3: the answer to final server data
		// is empty.
		if args[2] != "" {
			s.finish(id, req, Reply{Done: true, Result: engine.Result{Status: engine.StatusFail, User: req.final.User}})
			return
		}
		s.finish(id, req, Reply{Done: true, Result: req.final})
		return
	}
	data, err := base64.StdEncoding.DecodeString(args[2])
	if err != nil {
		delete(s.reqs, id)
		s.out("FAIL\t" + id + "\tcode=invalid_base64\treason=Invalid base64 data in continued response")
		return
	}
	if !req.def.AllowNUL && bytes.IndexByte(data, 0) >= 0 {
		s.finish(id, req, Reply{Done: true, Result: engine.Result{Status: engine.StatusFail}})
		return
	}
	s.step(id, req, data, true)
}

func (s *miniServer) step(id string, req *miniReq, data []byte, present bool) {
	rep := req.mech.Step(context.Background(), data, present)
	if !rep.Done {
		s.out("CONT\t" + id + "\t" + base64.StdEncoding.EncodeToString(rep.Challenge))
		return
	}
	if rep.Result.Status == engine.StatusOK && rep.Final != nil && !req.finalRespOK {
		req.final, req.finalSent = rep.Result, true
		s.out("CONT\t" + id + "\t" + base64.StdEncoding.EncodeToString(rep.Final))
		return
	}
	s.finish(id, req, rep)
}

func (s *miniServer) finish(id string, req *miniReq, rep Reply) {
	delete(s.reqs, id)
	res := rep.Result
	var b strings.Builder
	if res.Status == engine.StatusOK {
		b.WriteString("OK\t" + id + "\tuser=" + res.User)
		extra := res.Fields
		if rep.Final != nil {
			extra = append(extra.Clone(), fields.Field{Key: "resp", Value: base64.StdEncoding.EncodeToString(rep.Final)})
		}
		writeFields(&b, extra, true)
		writeTrailer(&b, res, extra)
		s.out(b.String())
		return
	}
	b.WriteString("FAIL\t" + id)
	user := res.User
	if user == "" {
		user = res.OrigUser
	}
	if user != "" {
		b.WriteString("\tuser=" + user)
	}
	switch res.Status {
	case engine.StatusTempFail:
		b.WriteString("\tcode=temp_fail")
	case engine.StatusAuthzFail:
		b.WriteString("\tcode=authz_fail")
	case engine.StatusUserDisabled:
		b.WriteString("\tcode=user_disabled")
	case engine.StatusPassExpired:
		b.WriteString("\tcode=pass_expired")
	}
	writeFields(&b, res.Fields, false)
	if res.User != "" {
		writeTrailer(&b, res, res.Fields)
	}
	s.out(b.String())
}

func writeFields(b *strings.Builder, fs fields.Fields, ok bool) {
	for _, f := range fs {
		b.WriteString("\t" + f.Key)
		if f.Value == "" || (ok && (f.Key == "nologin" || f.Key == "proxy")) {
			continue
		}
		b.WriteString("=" + f.Value)
	}
}

func writeTrailer(b *strings.Builder, res engine.Result, extra fields.Fields) {
	if res.OrigUser != "" && res.OrigUser != res.User && !extra.Has("original_user") {
		b.WriteString("\toriginal_user=" + res.OrigUser)
	}
	if res.MasterUser != "" {
		b.WriteString("\tauth_user=" + res.MasterUser)
	}
	if res.Anonymous {
		b.WriteString("\tanonymous")
	}
}

// runTranscript plays one transcript file. Lines: "# comment",
// "@directive value" (before the first C: line), "C: <client line>",
// "S: <server line>" (the next line the server produced), "S~: <regexp>"
// (the next line matches it whole: a made-up salt differs per process).
// \t stands for TAB.
func runTranscript(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	var srv *miniServer
	for n, raw := range strings.Split(string(data), "\n") {
		raw = strings.TrimRight(raw, " \r")
		if raw == "" || strings.HasPrefix(raw, "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", filepath.Base(file), n+1)
		if strings.HasPrefix(raw, "@") {
			if srv != nil {
				t.Fatalf("%s: directive after the exchange started", where)
			}
			if err := cfg.directive(raw); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			continue
		}
		if srv == nil {
			set := cfg.set
			srv = &miniServer{t: t, eng: newEngine(t, userSets[cfg.users]), set: &set, spid: cfg.spid, cuid: cfg.cuid, reqs: map[string]*miniReq{}}
		}
		kind, text, ok := strings.Cut(raw, ": ")
		if !ok {
			kind, text = strings.TrimSuffix(raw, ":"), ""
		}
		text = strings.ReplaceAll(text, `\t`, "\t")
		switch kind {
		case "C":
			srv.handle(text)
		case "S", "S~":
			if len(srv.lines) == 0 {
				t.Fatalf("%s: server sent nothing, want %q", where, text)
			}
			got := srv.lines[0]
			srv.lines = srv.lines[1:]
			if kind == "S" && got != text || kind == "S~" && !regexp.MustCompile("^(?:"+text+")$").MatchString(got) {
				t.Fatalf("%s:\n got %q\nwant %q", where, got, text)
			}
		default:
			t.Fatalf("%s: bad transcript line %q", where, raw)
		}
	}
	if srv != nil && len(srv.lines) > 0 {
		t.Fatalf("unexpected server lines at the end: %q", srv.lines)
	}
}

// TestTranscripts replays testdata/transcripts/*.txt: the worked
// exchanges of docs/protocol.md §4.3 byte for byte, and their failure variants.
func TestTranscripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/transcripts/*.txt")
	if len(files) == 0 {
		t.Fatal("no transcripts")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			t.Parallel()
			runTranscript(t, f)
		})
	}
}
