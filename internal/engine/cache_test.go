package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	ifields "github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
)

// The engine with the auth cache over a real driver: a passwd-file whose
// path holds %d, which (like SQL and LDAP) is cached. A file replaced by a
// directory is a backend that cannot answer.
func TestEngineCache(t *testing.T) {
	dir := t.TempDir()
	dom := filepath.Join(dir, "example.com")
	os.MkdirAll(dom, 0o755)
	users := filepath.Join(dom, "users")
	write := func(body string) {
		t.Helper()
		os.RemoveAll(users)
		if err := os.WriteFile(users, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("alice@example.com:{SHA512-CRYPT}$6$I6snSvYT4fxI4JV9$PL3IhYk39g8R/7Zhb.PqPnugo.YYT1GEtruZR64TZPZT2Z4xfylNF/S/IAhKnP55FDY0VsB4Ramci2m0IccQX0:1000:1000::/home/alice::\n")
	// Edits must count at once here, not after the usual second.
	defer func(d time.Duration) { passwdfile.StatInterval = d }(passwdfile.StatInterval)
	passwdfile.StatInterval = 0
	db, err := passwdfile.New(dir+"/%d/users", nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	c := cache.New(cache.Options{MaxBytes: 1 << 20, TTL: time.Hour, NegativeTTL: time.Hour, Fingerprint: true, Now: func() time.Time { return now }})
	var obs countingObserver
	e := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(db)}, []engine.DBSpec{pass(db)})
	e.SetCache(c)
	e.SetObserver(&obs)
	ctx := context.Background()
	login := func(user, pw string) engine.Status {
		t.Helper()
		return e.VerifyPlain(ctx, info, "", user, []byte(pw)).Status
	}

	if st := login("alice@example.com", "wonderland"); st != engine.StatusOK {
		t.Fatalf("first login: %v", st)
	}
	// A repeat login neither asks the backend nor runs SHA512-CRYPT.
	lookups, verifies := obs.lookups, obs.verifies
	if st := login("alice@example.com", "wonderland"); st != engine.StatusOK {
		t.Fatalf("repeat login: %v", st)
	}
	if obs.lookups != lookups || obs.verifies != verifies {
		t.Fatalf("repeat login cost %d lookups and %d verifications", obs.lookups-lookups, obs.verifies-verifies)
	}
	// The password changes in the backend: the next login with the new
	// one works at once (the entry's last check succeeded, so a mismatch
	// goes back to the backend, docs/protocol.md §5.9).
	write("alice@example.com:{PLAIN}newpw:1000:1000::/home/alice::\n")
	if st := login("alice@example.com", "newpw"); st != engine.StatusOK {
		t.Fatalf("login with the changed password: %v", st)
	}
	// A wrong password after a success asks the backend once; repeated
	// wrong passwords are then answered from the cache.
	if st := login("alice@example.com", "wrong"); st != engine.StatusFail {
		t.Fatalf("wrong password: %v", st)
	}
	lookups = obs.lookups
	if st := login("alice@example.com", "wrong2"); st != engine.StatusFail || obs.lookups != lookups {
		t.Fatalf("second wrong password: %v, %d lookups", st, obs.lookups-lookups)
	}
	// Unknown users are cached as negative entries.
	if st := login("nosuch@example.com", "x"); st != engine.StatusFail {
		t.Fatalf("unknown user: %v", st)
	}
	lookups = obs.lookups
	if st := login("nosuch@example.com", "x"); st != engine.StatusFail || obs.lookups != lookups {
		t.Fatalf("negative entry: %v, %d lookups", st, obs.lookups-lookups)
	}
	if u := e.LookupUser(ctx, info, "alice@example.com", nil); u.Status != engine.StatusOK {
		t.Fatalf("userdb: %v", u.Status)
	}

	// Everything expires, then the backend breaks.
	now = now.Add(2 * time.Hour)
	os.Remove(users)
	os.Mkdir(users, 0o755)
	if st := login("alice@example.com", "newpw"); st != engine.StatusOK {
		t.Fatalf("stale answer during the outage: %v", st)
	}
	if u := e.LookupUser(ctx, info, "alice@example.com", nil); u.Status != engine.StatusOK {
		t.Fatalf("stale userdb answer during the outage: %v", u.Status)
	}
	if st := login("carol@example.com", "x"); st != engine.StatusTempFail {
		t.Fatalf("uncached user during the outage: %v, want tempfail", st)
	}
	// Temporary failures are never cached: carol is still unknown to the
	// cache once the backend is back.
	os.Remove(users)
	write("carol@example.com:{PLAIN}carolpw::::::\n")
	if st := login("carol@example.com", "carolpw"); st != engine.StatusOK {
		t.Fatalf("after the outage: %v", st)
	}
	if st := c.Stats(); st.StaleHits < 2 || st.Hits == 0 || st.NegativeHits == 0 {
		t.Fatalf("stats %+v", st)
	}
	// Per-user flush.
	if n := e.FlushCache([]string{"carol@example.com"}); n == 0 {
		t.Fatal("flush of carol removed nothing")
	}
	if n := e.FlushCache(nil); n == 0 {
		t.Fatal("flush of everything removed nothing")
	}
}

type countingObserver struct {
	lookups, verifies int
	overBudget        []string // "scheme/param"
}

func (o *countingObserver) PassdbLookup(string, string, time.Duration) { o.lookups++ }
func (o *countingObserver) UserdbLookup(string, string, time.Duration) {}
func (o *countingObserver) Verify(string, time.Duration)               { o.verifies++ }
func (o *countingObserver) HashOverBudget(scheme, param string) {
	o.overBudget = append(o.overBudget, scheme+"/"+param)
}
func (o *countingObserver) VerifyShed(string) {}

// bindPassdb stands in for LDAP with auth_bind: it checks passwords
// itself and counts how often it is asked.
type bindPassdb struct {
	calls    int
	pw       string
	down     bool
	disabled bool
}

func (b *bindPassdb) LookupPass(context.Context, *backends.Request) (backends.PassAnswer, error) {
	return backends.PassAnswer{Outcome: backends.Found}, nil
}

func (b *bindPassdb) VerifiesPasswords() bool { return true }

func (b *bindPassdb) VerifyPass(_ context.Context, req *backends.Request, pw []byte) (backends.PassAnswer, error) {
	b.calls++
	if b.down {
		return backends.PassAnswer{}, errors.New("server down")
	}
	if b.disabled {
		return backends.PassAnswer{Outcome: backends.Disabled}, nil
	}
	if req.User != "alice@x" {
		return backends.PassAnswer{Outcome: backends.Unknown}, nil
	}
	ans := backends.PassAnswer{Outcome: backends.Mismatch, PassEntry: backends.PassEntry{Fields: ifields.Fields{{Key: "userdb_home", Value: "/h"}}}}
	if string(pw) == b.pw {
		ans.Outcome = backends.Found
	}
	return ans, nil
}

func (b *bindPassdb) PassCacheKey() *vars.Template { return vars.MustParse("%u") }

// A passdb that binds as the user is cached through the password's keyed
// fingerprint: a repeat login does not bind again, a wrong password does,
// and an outage answers users whose password verified before.
func TestEngineCacheAuthBind(t *testing.T) {
	b := &bindPassdb{pw: "secret"}
	e := newEngine(t, engine.Settings{}, []engine.DBSpec{{Driver: "bind", Passdb: b, ResultSuccess: config.RuleReturnOK, ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue}}, nil)
	e.SetCache(cache.New(cache.Options{MaxBytes: 1 << 20, TTL: time.Hour, NegativeTTL: time.Hour, Fingerprint: true}))
	ctx := context.Background()
	login := func(pw string) engine.Status { return e.VerifyPlain(ctx, info, "", "alice@x", []byte(pw)).Status }
	if st := login("secret"); st != engine.StatusOK || b.calls != 1 {
		t.Fatalf("first: %v, %d binds", st, b.calls)
	}
	if st := login("secret"); st != engine.StatusOK || b.calls != 1 {
		t.Fatalf("repeat: %v, %d binds", st, b.calls)
	}
	if st := login("wrong"); st != engine.StatusFail || b.calls != 2 {
		t.Fatalf("wrong password: %v, %d binds", st, b.calls)
	}
	b.down = true
	if st := login("secret"); st != engine.StatusOK {
		t.Fatalf("outage, known password: %v", st)
	}
	if st := login("other"); st != engine.StatusTempFail {
		t.Fatalf("outage, unknown password: %v", st)
	}
	if st := e.VerifyPlain(ctx, info, "", "bob@x", []byte("x")).Status; st != engine.StatusTempFail {
		t.Fatalf("outage, uncached user: %v", st)
	}
}

// An account the backend now refuses (disabled, expired) is refused: an
// expired cache entry stands in only for a backend that could not answer,
// and the fingerprint of the password that used to work does not outlive
// the refusal.
func TestEngineCacheRefusalIsNotAnOutage(t *testing.T) {
	b := &bindPassdb{pw: "secret"}
	now := time.Unix(1e9, 0)
	e := newEngine(t, engine.Settings{}, []engine.DBSpec{{Driver: "bind", Passdb: b, ResultSuccess: config.RuleReturnOK, ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue}}, nil)
	e.SetCache(cache.New(cache.Options{MaxBytes: 1 << 20, TTL: time.Minute, NegativeTTL: time.Minute, Fingerprint: true,
		Now: func() time.Time { return now }}))
	ctx := context.Background()
	login := func() engine.Status { return e.VerifyPlain(ctx, info, "", "alice@x", []byte("secret")).Status }
	if st := login(); st != engine.StatusOK {
		t.Fatalf("first: %v", st)
	}
	now = now.Add(2 * time.Minute) // the entry has expired
	b.disabled = true
	if st := login(); st != engine.StatusUserDisabled {
		t.Fatalf("disabled, expired entry: %v, want user disabled", st)
	}
	// The backend now cannot answer at all: the old fingerprint is gone,
	// so this is a temporary failure, not a login.
	b.disabled, b.down = false, true
	if st := login(); st != engine.StatusTempFail {
		t.Fatalf("outage after the refusal: %v, want tempfail", st)
	}
	if err := e.Ready(); err == nil {
		t.Error("ready while the passdb is down")
	}
}

// stallPassdb holds its lookups until release is closed, then records
// what the request's values said at that moment.
type stallPassdb struct {
	entered chan struct{}
	release chan struct{}
	seen    chan string
}

func (s *stallPassdb) LookupPass(_ context.Context, req *backends.Request) (backends.PassAnswer, error) {
	s.entered <- struct{}{}
	<-s.release
	s.seen <- req.Vars.User + " " + req.Vars.RemoteIP
	return backends.PassAnswer{Outcome: backends.Unknown}, nil
}

func (s *stallPassdb) PassCacheKey() *vars.Template { return vars.MustParse("%u") }

// A cache lookup still in flight when its request's context ended keeps
// the request's values: the engine recycles a request's state only when
// nothing can still read it.
func TestEngineAbandonedLookupKeepsItsRequest(t *testing.T) {
	db := &stallPassdb{entered: make(chan struct{}, 1), release: make(chan struct{}), seen: make(chan string, 1)}
	e := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(db, func(s *engine.DBSpec) { s.Passdb = db })}, nil)
	e.SetCache(cache.New(cache.Options{MaxBytes: 1 << 20, TTL: time.Hour, NegativeTTL: time.Hour}))
	ctx, cancel := context.WithCancel(context.Background())
	in := &engine.Info{Service: "imap", RemoteIP: "192.0.2.7"}
	done := make(chan engine.Status)
	go func() { done <- e.VerifyPlain(ctx, in, "", "stalled@example.com", []byte("pw")).Status }()
	<-db.entered
	cancel()
	if st := <-done; st != engine.StatusTempFail {
		t.Fatalf("abandoned login: %v, want a temporary failure", st)
	}
	close(db.release)
	if got, want := <-db.seen, "stalled@example.com 192.0.2.7"; got != want {
		t.Fatalf("the lookup left running read the request as %q, want %q", got, want)
	}
}
