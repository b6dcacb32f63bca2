package policy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a policy server for tests: it records every request and
// answers allow with answer (raw body, or a handler for special cases).
type recorder struct {
	mu     sync.Mutex
	reqs   []recorded
	answer func(w http.ResponseWriter, r *http.Request)
}

type recorded struct {
	command string
	query   string
	header  http.Header
	body    map[string]any
	raw     string
}

func newRecorder(t *testing.T, answer string) (*recorder, *httptest.Server) {
	t.Helper()
	rec := &recorder{}
	rec.answer = func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, answer) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("the client sent invalid JSON %q: %v", raw, err)
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recorded{command: r.URL.Query().Get("command"), query: r.URL.RawQuery, header: r.Header.Clone(), body: body, raw: string(raw)})
		rec.mu.Unlock()
		if r.URL.Query().Get("command") == "allow" {
			rec.answer(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return rec, srv
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func newClient(t *testing.T, set Settings, o Options) *Client {
	t.Helper()
	c, err := New(set, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func aliceRequest() *Request {
	return &Request{Vars: fullVars(), Username: "alice@example.com", Password: []byte("secret"), TLS: true}
}

func TestCheckVerdicts(t *testing.T) {
	cases := []struct {
		answer string
		want   Verdict
	}{
		{`{"status":0}`, Verdict{Answered: true}},
		{`{"status":-1,"msg":"go away"}`, Verdict{Refuse: true, Reason: "go away", Answered: true, Refused: true}},
		{`{"msg":"slow down","status":2}`, Verdict{Delay: 2 * time.Second, Reason: "slow down", Answered: true}},
		{`{"status":2147483647}`, Verdict{Delay: MaxDelay, Answered: true}},
		{`{"status":-5,"msg":""}`, Verdict{Refuse: true, Answered: true, Refused: true}},
		{`{"other":{"status":-1}}`, Verdict{Refuse: true, Answered: true, Refused: true}}, // any depth, as Dovecot's parser
		{`{"status":1,"status":0}`, Verdict{Answered: true}},                              // the last one counts
		{` {"status" : -1 , "extra":[1,{"a":null}]} `, Verdict{Refuse: true, Answered: true, Refused: true}},
	}
	for _, tc := range cases {
		rec, srv := newRecorder(t, tc.answer)
		c := newClient(t, testSettings(t, srv.URL+"/policy"), Options{})
		got, err := c.Check(context.Background(), BeforeAuth, aliceRequest())
		if err != nil || got != tc.want {
			t.Errorf("answer %s: %+v, %v; want %+v", tc.answer, got, err, tc.want)
		}
		reqs := rec.requests()
		if len(reqs) != 1 || reqs[0].query != "command=allow" {
			t.Fatalf("requests %+v", reqs)
		}
		want := map[string]any{"login": "alice@example.com", "pwhash": "0f83", "remote": "192.0.2.7",
			"device_id": "Thunderbird", "protocol": "imap", "session_id": "sess1", "tls": true}
		if !mapsEqual(reqs[0].body, want) {
			t.Errorf("body %s", reqs[0].raw)
		}
		if ct := reqs[0].header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	}
}

func mapsEqual(a, b map[string]any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// A server that fails or answers garbage allows the request, unless
// auth_policy_reject_on_fail is set; an answer that was read (even a bad
// one) decides the report's policy_reject, one that never came does not.
func TestCheckFailures(t *testing.T) {
	cases := map[string]struct {
		answer   func(w http.ResponseWriter, r *http.Request)
		answered bool
	}{
		"invalid JSON":      {raw(`{"status":`), true},
		"not an object":     {raw(`[{"status":-1}]`), true},
		"string status":     {raw(`{"status":"-1"}`), true},
		"fractional status": {raw(`{"status":1.5}`), true},
		"huge status":       {raw(`{"status":99999999999}`), true},
		"msg not a string":  {raw(`{"status":0,"msg":5}`), true},
		"trailing garbage":  {raw(`{"status":0} x`), true},
		"missing status":    {raw(`{"msg":"hi"}`), true},
		"huge body":         {raw(`{"status":0,"pad":"` + strings.Repeat("x", maxResponse) + `"}`), true},
		"empty body":        {raw(``), false},
		"HTTP 500":          {func(w http.ResponseWriter, _ *http.Request) { http.Error(w, `{"status":0}`, 500) }, false},
		"HTTP 210":          {func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(210); io.WriteString(w, `{"status":0}`) }, false},
		"redirect":          {func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }, false},
		"closed mid-body":   {closeMidBody, true},
	}
	for name, tc := range cases {
		for _, rejectOnFail := range []bool{false, true} {
			rec, srv := newRecorder(t, "")
			rec.answer = tc.answer
			set := testSettings(t, srv.URL)
			set.RejectOnFail = rejectOnFail
			c := newClient(t, set, Options{})
			v, err := c.Check(context.Background(), BeforeAuth, aliceRequest())
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			want := Verdict{Refuse: rejectOnFail, Answered: tc.answered, Refused: rejectOnFail && tc.answered}
			if name == "missing status" {
				want.Reason = "hi"
			}
			if v != want {
				t.Errorf("%s, reject_on_fail=%v: %+v, want %+v", name, rejectOnFail, v, want)
			}
			if st := c.Stats(); st.AllowFailed != 1 || st.AllowOK != 0 {
				t.Errorf("%s: stats %+v", name, st)
			}
		}
	}
}

func raw(s string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, s) }
}

// closeMidBody promises 100 bytes and closes the connection after 10.
func closeMidBody(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Length", "100")
	w.WriteHeader(200)
	io.WriteString(w, `{"status":`)
	w.(http.Flusher).Flush()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// A server that never answers holds a check no longer than the timeout;
// a dead one not at all. Both allow.
func TestCheckTimeoutAndDeadServer(t *testing.T) {
	release := make(chan struct{})
	rec, srv := newRecorder(t, "")
	rec.answer = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	t.Cleanup(func() { close(release) })
	set := testSettings(t, srv.URL)
	set.Timeout = 50 * time.Millisecond
	c := newClient(t, set, Options{})
	// Without the timeout this would wait for release, at the end of the
	// test: the check returning at all is the assertion.
	v, err := c.Check(context.Background(), BeforeAuth, aliceRequest())
	if err != nil || v != (Verdict{}) {
		t.Errorf("slow server: %+v, %v", v, err)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	set = testSettings(t, dead.URL)
	set.RejectOnFail = true
	c = newClient(t, set, Options{})
	v, err = c.Check(context.Background(), BeforeAuth, aliceRequest())
	if err != nil || v != (Verdict{Refuse: true}) {
		t.Errorf("dead server, reject_on_fail: %+v, %v", v, err)
	}
}

// A request whose client went away stops waiting and says so.
func TestCheckCancelled(t *testing.T) {
	rec, srv := newRecorder(t, "")
	started := make(chan struct{})
	rec.answer = func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	}
	c := newClient(t, testSettings(t, srv.URL), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	if _, err := c.Check(ctx, BeforeAuth, aliceRequest()); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
}

func TestCheckStagesAndLogOnly(t *testing.T) {
	rec, srv := newRecorder(t, `{"status":-1,"msg":"no"}`)
	set := testSettings(t, srv.URL)
	set.CheckBeforeAuth = false
	set.LogOnly = true
	c := newClient(t, set, Options{})
	if v, err := c.Check(context.Background(), BeforeAuth, aliceRequest()); err != nil || v != (Verdict{}) {
		t.Errorf("before-auth check off: %+v, %v", v, err)
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("%d requests with the check off", n)
	}
	// Log-only: the refusal is not applied, but the report will say
	// policy_reject, as Dovecot's does.
	v, err := c.Check(context.Background(), AfterAuth, aliceRequest())
	if err != nil || v != (Verdict{Reason: "no", Answered: true, Refused: true}) {
		t.Errorf("log-only: %+v, %v", v, err)
	}
	if st := c.Stats(); st.Refused != 1 || st.AllowOK != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestURLAndHeaders(t *testing.T) {
	rec, srv := newRecorder(t, `{"status":0}`)
	u := strings.Replace(srv.URL, "http://", "http://wf:s3cret@", 1) + "/?key=v&"
	set := testSettings(t, u)
	set.APIHeader = "X-Policy-Token:tok"
	c := newClient(t, set, Options{})
	if _, err := c.Check(context.Background(), BeforeAuth, aliceRequest()); err != nil {
		t.Fatal(err)
	}
	r := rec.requests()[0]
	if r.query != "key=v&command=allow" {
		t.Errorf("query %q", r.query)
	}
	if got := r.header.Get("X-Policy-Token"); got != "tok" {
		t.Errorf("api header %q", got)
	}
	if got := r.header.Get("Authorization"); got != "Basic d2Y6czNjcmV0" {
		t.Errorf("Authorization %q", got)
	}

	set = testSettings(t, srv.URL+"/p?key=v")
	set.APIHeader = "plain-key"
	c = newClient(t, set, Options{})
	if _, err := c.Check(context.Background(), BeforeAuth, aliceRequest()); err != nil {
		t.Fatal(err)
	}
	r = rec.requests()[1]
	// Dovecot appends "?command=" to a URL that has a query already.
	if r.query != "key=v?command=allow" {
		t.Errorf("query %q", r.query)
	}
	if got := r.header.Get("X-API-Key"); got != "plain-key" {
		t.Errorf("X-API-Key %q", got)
	}
}

func TestReports(t *testing.T) {
	rec, srv := newRecorder(t, "")
	set := testSettings(t, srv.URL)
	c := newClient(t, set, Options{QueueSize: 2, Workers: 2})
	req := aliceRequest()
	req.Password = nil
	c.Report(req, true, false)
	c.Report(req, false, true)
	c.Report(req, false, false) // the queue holds 2: dropped
	if st := c.Stats(); st.ReportsDropped != 1 || st.Queued != 2 {
		t.Fatalf("stats %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Run(ctx)
		close(done)
	}()
	waitFor(t, func() bool { return c.Stats().ReportOK == 2 })
	cancel()
	<-done
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d reports sent", len(reqs))
	}
	seen := map[string]bool{}
	for _, r := range reqs {
		if r.command != "report" || r.body["pwhash"] != "065f" || r.body["tls"] != true {
			t.Errorf("report %s %s", r.query, r.raw)
		}
		if !strings.Contains(r.raw, `"success":`) || !strings.HasSuffix(r.raw, `,"tls":true}`) {
			t.Errorf("report order %s", r.raw)
		}
		seen[r.raw[strings.Index(r.raw, `"success"`):]] = true
	}
	if !seen[`"success":true,"policy_reject":false,"tls":true}`] || !seen[`"success":false,"policy_reject":true,"tls":true}`] {
		t.Errorf("reports %v", seen)
	}
	c.Close()
	c.Report(req, true, false)
	if st := c.Stats(); st.ReportsDropped != 2 || st.Queued != 0 {
		t.Errorf("after Close: %+v", st)
	}

	set.ReportAfterAuth = false
	off := newClient(t, set, Options{})
	off.Report(req, true, false)
	if st := off.Stats(); st.Queued != 0 || st.ReportsDropped != 0 {
		t.Errorf("report_after_auth = no queued %+v", st)
	}
}

// Run drops what is still queued when it stops.
func TestRunStopsAndDrops(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	c := newClient(t, testSettings(t, dead.URL), Options{QueueSize: 10, Workers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 5 {
		c.Report(aliceRequest(), true, false)
	}
	c.Run(ctx)
	if st := c.Stats(); st.Queued != 0 || st.ReportsDropped+st.ReportFailed+st.ReportOK != 5 {
		t.Errorf("stats %+v", st)
	}
}

// waitFor polls cond; a condition that never holds fails the test after
// a generous while (not a performance bound).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met in 10 s")
}
