package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/policy"
)

// fakePolicy answers checks from a script and records what the engine
// asks and reports.
type fakePolicy struct {
	mu      sync.Mutex
	before  policy.Verdict
	after   policy.Verdict
	err     error
	checks  []checkCall
	reports []reportCall
}

type checkCall struct {
	stage policy.Stage
	req   policy.Request
}

type reportCall struct {
	req                   policy.Request
	success, policyReject bool
}

func (f *fakePolicy) Check(ctx context.Context, stage policy.Stage, req *policy.Request) (policy.Verdict, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks = append(f.checks, checkCall{stage, copyRequest(req)})
	if f.err != nil {
		return policy.Verdict{}, f.err
	}
	if stage == policy.AfterAuth {
		return f.after, nil
	}
	return f.before, nil
}

func (f *fakePolicy) Report(req *policy.Request, success, policyReject bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, reportCall{copyRequest(req), success, policyReject})
}

// copyRequest keeps what the engine passed: it clears the password when
// the request ends.
func copyRequest(r *policy.Request) policy.Request {
	c := *r
	vc := *r.Vars
	c.Vars = &vc
	c.Password = append([]byte(nil), r.Password...)
	if r.Password == nil {
		c.Password = nil
	}
	return c
}

func policyEngine(t *testing.T, fp *fakePolicy) *engine.Engine {
	t.Helper()
	masters := pwfile(t, "admin@x:{PLAIN}masterpw::::::\n")
	users := pwfile(t, "alice@x:{PLAIN}alicepw::::::\nbob@x:{PLAIN}bobpw::::::\n")
	e := newEngine(t, engine.Settings{MasterUserSeparator: "*"},
		[]engine.DBSpec{pass(masters, func(s *engine.DBSpec) { s.Master = true; s.Pass = true }), pass(users)}, nil)
	e.SetPolicy(fp)
	return e
}

func policyInfo() *engine.Info {
	return &engine.Info{Service: "imap", Mech: "PLAIN", RemoteIP: "192.0.2.10", Secured: "TLS", Session: "s1"}
}

func TestPolicyAllowsAndReports(t *testing.T) {
	fp := &fakePolicy{before: policy.Verdict{Answered: true}, after: policy.Verdict{Answered: true}}
	e := policyEngine(t, fp)
	in := policyInfo()
	res := e.VerifyPlain(context.Background(), in, "", "Alice@x", []byte("alicepw"))
	if res.Status != engine.StatusOK {
		t.Fatalf("%+v", res)
	}
	e.FinishAuth(in, res, 0)
	if len(fp.checks) != 2 || fp.checks[0].stage != policy.BeforeAuth || fp.checks[1].stage != policy.AfterAuth {
		t.Fatalf("checks %+v", fp.checks)
	}
	before := fp.checks[0].req
	// The name after name processing (%Lu), the typed password, TLS.
	if before.Username != "alice@x" || string(before.Password) != "alicepw" || !before.TLS ||
		before.Vars.User != "alice@x" || before.Vars.OrigUser != "Alice@x" || before.Vars.RemoteIP != "192.0.2.10" || before.Vars.Session != "s1" {
		t.Errorf("before-auth request %+v vars %+v", before, before.Vars)
	}
	if len(fp.reports) != 1 || !fp.reports[0].success || fp.reports[0].policyReject ||
		fp.reports[0].req.Username != "alice@x" || string(fp.reports[0].req.Password) != "alicepw" {
		t.Errorf("reports %+v", fp.reports)
	}
}

// A refusal before the lookup answers like a wrong password, even for the
// right one, with the server's message as the reason the client may show.
func TestPolicyRefusesBefore(t *testing.T) {
	fp := &fakePolicy{before: policy.Verdict{Refuse: true, Reason: "too many", Answered: true, Refused: true}}
	e := policyEngine(t, fp)
	in := policyInfo()
	res := e.VerifyPlain(context.Background(), in, "", "alice@x", []byte("alicepw"))
	if res.Status != engine.StatusFail || res.User != "alice@x" || res.ProxyPassword != "" {
		t.Fatalf("%+v", res)
	}
	if v, _ := res.Fields.Get("reason"); v != "too many" || len(res.Fields) != 1 {
		t.Errorf("fields %v", res.Fields)
	}
	if len(fp.checks) != 1 {
		t.Errorf("checks after a refusal: %+v", fp.checks)
	}
	if release := e.FinishAuth(in, res, time.Hour); release.IsZero() {
		t.Error("a refusal is not delayed like a wrong password")
	}
	if len(fp.reports) != 1 || fp.reports[0].success || !fp.reports[0].policyReject {
		t.Errorf("reports %+v", fp.reports)
	}
}

func TestPolicyRefusesAfter(t *testing.T) {
	fp := &fakePolicy{before: policy.Verdict{Answered: true}, after: policy.Verdict{Refuse: true, Answered: true, Refused: true}}
	e := policyEngine(t, fp)
	res := e.VerifyPlain(context.Background(), policyInfo(), "", "alice@x", []byte("alicepw"))
	if res.Status != engine.StatusFail || len(res.Fields) != 0 {
		t.Fatalf("%+v", res)
	}
	// A master login refused after it succeeded is authz_fail, as
	// Dovecot answers any failure once the master user is known.
	res = e.VerifyPlain(context.Background(), policyInfo(), "bob@x", "admin@x", []byte("masterpw"))
	if res.Status != engine.StatusAuthzFail || res.User != "bob@x" || res.MasterUser != "admin@x" {
		t.Fatalf("master: %+v", res)
	}
	// The wrong password is never asked about after.
	fp.checks = nil
	e.VerifyPlain(context.Background(), policyInfo(), "", "alice@x", []byte("wrong"))
	if len(fp.checks) != 1 {
		t.Errorf("checks %+v", fp.checks)
	}
}

// A master login asks about the user logged in as (Dovecot's
// requested_username), with the master's password.
func TestPolicyMasterLogin(t *testing.T) {
	fp := &fakePolicy{}
	e := policyEngine(t, fp)
	in := policyInfo()
	res := e.VerifyPlain(context.Background(), in, "", "Bob@x*admin@x", []byte("masterpw"))
	if res.Status != engine.StatusOK || res.User != "bob@x" {
		t.Fatalf("%+v", res)
	}
	e.FinishAuth(in, res, 0)
	before, after, report := fp.checks[0].req, fp.checks[1].req, fp.reports[0].req
	if before.Username != "bob@x" || before.Vars.User != "admin@x" || before.Vars.LoginUser != "bob@x" || string(before.Password) != "masterpw" {
		t.Errorf("before %+v %+v", before, before.Vars)
	}
	for _, r := range []policy.Request{after, report} {
		if r.Username != "bob@x" || r.Vars.User != "bob@x" || r.Vars.MasterUser != "admin@x" || r.Vars.LoginUser != "" {
			t.Errorf("after/report %+v %+v", r, r.Vars)
		}
	}
	// A master password that fails still names the login user.
	fp.reports = nil
	in = policyInfo()
	res = e.VerifyPlain(context.Background(), in, "bob@x", "admin@x", []byte("wrong"))
	e.FinishAuth(in, res, 0)
	if r := fp.reports[0]; r.success || r.req.Username != "bob@x" || r.req.Vars.User != "admin@x" {
		t.Errorf("failed master report %+v %+v", r, r.req.Vars)
	}
}

func TestPolicyDelay(t *testing.T) {
	fp := &fakePolicy{before: policy.Verdict{Delay: 30 * time.Millisecond, Answered: true}}
	e := policyEngine(t, fp)
	start := time.Now()
	if res := e.VerifyPlain(context.Background(), policyInfo(), "", "alice@x", []byte("alicepw")); res.Status != engine.StatusOK {
		t.Fatalf("%+v", res)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("answered after %v: the delay was not applied", d)
	}

	// An hour's delay: a no-penalty request skips it (a test that hung
	// here would end in TempFail when ctx expires)…
	fp.before.Delay = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in := policyInfo()
	in.NoPenalty = true
	if res := e.VerifyPlain(ctx, in, "", "alice@x", []byte("alicepw")); res.Status != engine.StatusOK {
		t.Fatalf("no-penalty: %+v", res)
	}
	// …and a client that goes away stops waiting.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	if res := e.VerifyPlain(ctx, policyInfo(), "", "alice@x", []byte("alicepw")); res.Status != engine.StatusTempFail {
		t.Fatalf("cancelled during the delay: %+v", res)
	}
}

func TestPolicyCheckAbandoned(t *testing.T) {
	fp := &fakePolicy{err: context.Canceled}
	e := policyEngine(t, fp)
	in := policyInfo()
	if res := e.VerifyPlain(context.Background(), in, "", "alice@x", []byte("alicepw")); res.Status != engine.StatusTempFail {
		t.Fatalf("%+v", res)
	}
	// No reply, no report.
	e.AbandonAuth(in)
	if len(fp.reports) != 0 {
		t.Errorf("reports %+v", fp.reports)
	}
}

// Credentials lookups send no password; the after-auth check waits for the
// mechanism's proof (Succeeded).
func TestPolicyCredentials(t *testing.T) {
	fp := &fakePolicy{}
	e := policyEngine(t, fp)
	in := policyInfo()
	in.Mech = "CRAM-MD5"
	res, cred := e.LookupCredentials(context.Background(), in, "", "alice@x", "PLAIN", "")
	if res.Status != engine.StatusOK || string(cred) != "alicepw" {
		t.Fatalf("%+v %q", res, cred)
	}
	if len(fp.checks) != 1 || fp.checks[0].req.Password != nil || fp.checks[0].req.Username != "alice@x" {
		t.Fatalf("checks %+v", fp.checks)
	}
	fp.after = policy.Verdict{Refuse: true, Reason: "no", Answered: true, Refused: true}
	if got := e.Succeeded(context.Background(), in, res); got.Status != engine.StatusFail {
		t.Errorf("Succeeded: %+v", got)
	}
	if len(fp.checks) != 2 || fp.checks[1].stage != policy.AfterAuth {
		t.Errorf("checks %+v", fp.checks)
	}
	// Without a policy server Succeeded changes nothing.
	plain := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(pwfile(t, "alice@x:{PLAIN}alicepw::::::\n"))}, nil)
	if got := plain.Succeeded(context.Background(), in, res); got.Status != engine.StatusOK || got.User != res.User {
		t.Errorf("no policy: %+v", got)
	}
}
