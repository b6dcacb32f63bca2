package main

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/testenv"
)

// The auth policy server hook (docs/operations.md §7): a policy server run
// by the test records what it is sent; a real Dovecot 2.3 and authd, set
// up alike, must send it the same requests for the same logins.

// policyCall is one request a policy server received.
type policyCall struct {
	Query  string // the URL's query: command=allow or command=report
	APIKey string // the X-Policy-Key header
	Body   string // the JSON body, byte for byte
}

// policyServer records requests by URL path and answers allow requests
// with answer(body); nil answers {"status":0}.
type policyServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  map[string][]policyCall
	answer func(body map[string]any) string
}

func newPolicyServer(t *testing.T) *policyServer {
	t.Helper()
	ps := &policyServer{calls: map[string][]policyCall{}}
	ps.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("%s sent invalid JSON %q: %v", r.URL.Path, raw, err)
		}
		ps.mu.Lock()
		ps.calls[r.URL.Path] = append(ps.calls[r.URL.Path], policyCall{Query: r.URL.RawQuery, APIKey: r.Header.Get("X-Policy-Key"), Body: string(raw)})
		answer := ps.answer
		ps.mu.Unlock()
		if r.URL.Query().Get("command") != "allow" {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if answer == nil {
			io.WriteString(w, `{"status":0}`)
			return
		}
		io.WriteString(w, answer(body))
	}))
	t.Cleanup(ps.srv.Close)
	return ps
}

func (ps *policyServer) url(path string) string { return ps.srv.URL + path }

func (ps *policyServer) setAnswer(f func(map[string]any) string) {
	ps.mu.Lock()
	ps.answer = f
	ps.mu.Unlock()
}

// take waits until path has received a report (the last request of a
// login, sent after its reply), then returns and forgets path's calls.
func (ps *policyServer) take(t *testing.T, path string) []policyCall {
	t.Helper()
	for range 1000 {
		ps.mu.Lock()
		calls := ps.calls[path]
		if n := len(calls); n > 0 && strings.HasSuffix(calls[n-1].Query, "command=report") {
			delete(ps.calls, path)
			ps.mu.Unlock()
			return calls
		}
		ps.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	t.Fatalf("%s: no report within 10 s; received %v", path, ps.calls)
	return nil
}

// policyAttributes uses the default attributes and most variables a
// policy template can hold, nested keys included.
const policyAttributes = `login=%{requested_username} pwhash=%{hashed_password} remote=%{rip} device_id=%{client_id} protocol=%s session_id=%{session} ` +
	`req/user=%u req/orig=%{orig_user} req/master=%{master_user} req/login_user=%{login_user} req/mech=%m req/secured=%c req/local=%{lip}:%{lport} req/real_rip=%{real_rip} req/domain=%d pw=%{sha1:password}`

const policyUsers = `alice@example.com:{PLAIN}alice-pw::::::
bob@example.com:{PLAIN}bob-pw::::::
blocked@example.com:{PLAIN}blocked-pw::::::
`

// policyConf is the part of the configuration Dovecot and authd share.
func policyConf(dir, url string) string {
	return fmt.Sprintf(`auth_mechanisms = plain cram-md5
auth_failure_delay = 0
auth_master_user_separator = *
disable_plaintext_auth = no
auth_policy_server_url = %[2]s
auth_policy_server_api_header = X-Policy-Key:k3y
auth_policy_hash_nonce = cluster-nonce
auth_policy_request_attributes = %[3]s
passdb {
  driver = passwd-file
  args = %[1]s/masters
  master = yes
}
passdb {
  driver = passwd-file
  args = %[1]s/users
}
userdb {
  driver = static
  args = uid=1000 gid=1000 home=/var/empty
}
`, dir, url, policyAttributes)
}

// policyLogin is one authentication sent to both servers.
type policyLogin struct {
	name   string
	mech   string // PLAIN or CRAM-MD5
	params string // AUTH parameters after the mechanism
	user   string // PLAIN authcid / CRAM-MD5 user
	authz  string // PLAIN authzid
	pass   string
	// replyGap explains a known difference of the client's reply that is
	// not the policy hook's (the requests to the policy server are
	// compared all the same).
	replyGap string
}

func policyLogins() []policyLogin {
	base := "service=imap\tlip=192.0.2.1\tlport=143\tsession=sess%d\tclient_id=Thunderbird 115"
	list := []policyLogin{
		{name: "right password", mech: "PLAIN", user: "alice@example.com", pass: "alice-pw"},
		{name: "right password, TLS, mixed case", mech: "PLAIN", user: "Alice@Example.com", pass: "alice-pw", params: "\tsecured=tls"},
		{name: "wrong password", mech: "PLAIN", user: "alice@example.com", pass: "wrong"},
		{name: "unknown user", mech: "PLAIN", user: "nobody@example.com", pass: "whatever"},
		{name: "refused by the policy server", mech: "PLAIN", user: "blocked@example.com", pass: "blocked-pw"},
		{name: "invalid name", mech: "PLAIN", user: "in\xffvalid\"utf8", pass: "x",
			replyGap: "Dovecot adds original_user= to the FAIL of a name it rejected; authd does not"},
		{name: "master login", mech: "PLAIN", user: "admin@example.com", authz: "bob@example.com", pass: "master-pw"},
		{name: "master login refused after authentication", mech: "PLAIN", user: "admin@example.com", authz: "alice@example.com", pass: "master-pw"},
		{name: "master separator, wrong master password", mech: "PLAIN", user: "bob@example.com*admin@example.com", pass: "wrong"},
		{name: "CRAM-MD5 right", mech: "CRAM-MD5", user: "bob@example.com", pass: "bob-pw"},
		{name: "CRAM-MD5 wrong", mech: "CRAM-MD5", user: "bob@example.com", pass: "wrong"},
	}
	for i := range list {
		// A distinct address per login: Dovecot's penalty stays out of
		// the way (docs/testing.md §4.3).
		list[i].params = fmt.Sprintf(base, i) + fmt.Sprintf("\trip=198.51.100.%d\trport=%d", 10+i, 40000+i) + list[i].params
	}
	return list
}

// run sends the login on a fresh connection and returns the final reply
// as text (the id is always 1).
func (l policyLogin) run(t *testing.T, sock string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dovecot.DialAuth(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	auth := "AUTH\t1\t" + l.mech + "\t" + l.params
	if l.mech == "PLAIN" {
		auth += "\tresp=" + dovecot.EncodeBase64([]byte(l.authz+"\x00"+l.user+"\x00"+l.pass))
	}
	if err := c.Send(auth); err != nil {
		t.Fatal(err)
	}
	r, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Cmd == "CONT" && l.mech == "CRAM-MD5" {
		challenge, err := dovecot.DecodeBase64(strings.Join(r.Fields, "\t"))
		if err != nil {
			t.Fatal(err)
		}
		mac := hmac.New(md5.New, []byte(l.pass))
		mac.Write(challenge)
		if err := c.Send("CONT\t1\t" + dovecot.EncodeBase64([]byte(l.user+" "+hex.EncodeToString(mac.Sum(nil))))); err != nil {
			t.Fatal(err)
		}
		if r, err = c.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return r.Cmd + "\t" + strings.Join(r.Fields, "\t")
}

func writePolicyFiles(t *testing.T, dir string) {
	t.Helper()
	for name, body := range map[string]string{"users": policyUsers, "masters": "admin@example.com:{PLAIN}master-pw::::::\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// policyVariant is one configuration both servers run with.
type policyVariant struct {
	name  string
	path  string // the policy server URL's path (and query)
	extra string // settings after the shared ones
	// dead points both servers at a policy server that is down: only
	// the replies are compared.
	dead   bool
	logins []string // the logins to send (names from policyLogins); nil: all
}

var policyVariants = []policyVariant{
	{name: "attributes", path: "/p"},
	{name: "sha1 untruncated, URL ending in &", path: "/q?site=1&",
		extra:  "auth_policy_hash_mech = sha1\nauth_policy_hash_truncate = 0\nauth_policy_request_attributes = " + "login=%{requested_username} pwhash=%{hashed_password} remote=%{rip} device_id=%{client_id} protocol=%s session_id=%{session}\n",
		logins: []string{"right password", "wrong password", "CRAM-MD5 right"}},
	{name: "server down, reject_on_fail", path: "/r", dead: true, extra: "auth_policy_reject_on_fail = yes\nauth_policy_server_timeout_msecs = 1000\n",
		logins: []string{"right password", "CRAM-MD5 right"}},
	{name: "server down", path: "/r", dead: true, logins: []string{"right password", "CRAM-MD5 right"}},
}

func TestPolicyServerDifferential(t *testing.T) {
	ps := newPolicyServer(t)
	ps.setAnswer(func(body map[string]any) string {
		if body["login"] == "blocked@example.com" {
			return `{"status":-1,"msg":"Blocked by policy"}`
		}
		// Only the after-auth check of a master login knows the master
		// (the "attributes" variant sends it).
		if req, _ := body["req"].(map[string]any); req["master"] == "admin@example.com" && body["login"] == "alice@example.com" {
			return `{"status":-1,"msg":"No masters for alice"}`
		}
		return `{"status":0,"msg":""}`
	})
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	for _, v := range policyVariants {
		t.Run(v.name, func(t *testing.T) {
			base := ps.srv.URL
			if v.dead {
				base = down.URL
			}
			dcDir, adDir := testenv.Dir(t), testenv.Dir(t)
			writePolicyFiles(t, dcDir)
			writePolicyFiles(t, adDir)
			dcPath, adPath := "/dovecot"+v.path, "/authd"+v.path
			dc := testenv.StartDovecot(t, testenv.DovecotOptions{Dir: dcDir, Config: policyConf(dcDir, base+dcPath) + v.extra})
			p := startAuthdArgs(t, adDir, "run/auth-client", "serve", "-c", writeAuthdConf(t, adDir,
				"base_dir = "+adDir+"/run\n"+policyConf(adDir, base+adPath)+v.extra))
			for _, l := range policyLogins() {
				if v.logins != nil && !slices.Contains(v.logins, l.name) {
					continue
				}
				t.Run(l.name, func(t *testing.T) {
					compareLogin(t, ps, l, v.dead, dc.Socket("auth-client"), p.path("run/auth-client"), dcPath, adPath)
				})
			}
		})
	}
}

// compareLogin sends l to Dovecot and to authd and compares the replies
// and what the policy server received from each.
func compareLogin(t *testing.T, ps *policyServer, l policyLogin, dead bool, dcSock, adSock, dcPath, adPath string) {
	want := l.run(t, dcSock)
	got := l.run(t, adSock)
	t.Logf("Dovecot's reply: %q", want)
	switch {
	case got == want:
	case l.replyGap != "":
		t.Logf("known reply difference (%s): authd %q, Dovecot %q", l.replyGap, got, want)
	default:
		t.Errorf("reply: authd %q, Dovecot %q", got, want)
	}
	if dead {
		return
	}
	pathOnly := func(s string) string { p, _, _ := strings.Cut(s, "?"); return p }
	wantCalls, gotCalls := ps.take(t, pathOnly(dcPath)), ps.take(t, pathOnly(adPath))
	for _, c := range wantCalls {
		t.Logf("Dovecot %s %s", c.Query, c.Body)
	}
	if !slices.Equal(gotCalls, wantCalls) {
		for _, c := range gotCalls {
			t.Logf("authd   %s %s", c.Query, c.Body)
		}
		t.Errorf("the policy server saw different requests")
	}
}

// writeAuthdConf writes authd's configuration into dir and returns its
// path.
func writeAuthdConf(t *testing.T, dir, conf string) string {
	t.Helper()
	path := filepath.Join(dir, "authd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// policyAuthd starts authd with the shared configuration pointed at url,
// plus extra settings, and returns its client socket.
func policyAuthd(t *testing.T, url, extra string) (*proc, string) {
	t.Helper()
	dir := testenv.Dir(t)
	writePolicyFiles(t, dir)
	p := startAuthdArgs(t, dir, "run/auth-client", "serve", "-c", writeAuthdConf(t, dir,
		"base_dir = "+dir+"/run\n"+policyConf(dir, url)+extra))
	return p, p.path("run/auth-client")
}

// alice is the right password of an existing user, from address n.
func alice(n int) policyLogin {
	return policyLogin{mech: "PLAIN", user: "alice@example.com", pass: "alice-pw",
		params: fmt.Sprintf("service=imap\trip=203.0.113.%d", n)}
}

// The verdicts end to end: a refusal refuses the right password, a delay
// delays it, log-only mode only logs, and a policy server that is down or
// hangs lets logins through unless auth_policy_reject_on_fail is set.
func TestPolicyServerVerdicts(t *testing.T) {
	ps := newPolicyServer(t)
	var mu sync.Mutex
	answer := `{"status":0}`
	ps.setAnswer(func(map[string]any) string {
		mu.Lock()
		defer mu.Unlock()
		return answer
	})
	setAnswer := func(a string) {
		mu.Lock()
		answer = a
		mu.Unlock()
	}
	metricsAddr := freePort(t)
	_, sock := policyAuthd(t, ps.url("/v"), "metrics {\n  listen = "+metricsAddr+"\n}\n")

	setAnswer(`{"status":-1,"msg":"Account locked"}`)
	if got := alice(1).run(t, sock); got != "FAIL\tuser=alice@example.com\treason=Account locked" {
		t.Errorf("refused: %q", got)
	}
	setAnswer(`{"status":2}`)
	start := time.Now()
	if got := alice(2).run(t, sock); !strings.HasPrefix(got, "OK\t") {
		t.Errorf("delayed: %q", got)
	}
	// A lower bound only: the delay must have been applied.
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("status=2 answered after %v", d)
	}
	setAnswer(`{"status":0}`)
	if got := alice(3).run(t, sock); !strings.HasPrefix(got, "OK\t") {
		t.Errorf("allowed: %q", got)
	}
	ps.take(t, "/v")
	_, metrics := httpGet(t, "http://"+metricsAddr+"/metrics")
	// status=2 answered both checks of the delayed login; only the one
	// before the lookup delays (as in Dovecot).
	for _, want := range []string{`authd_policy_verdicts_total{verdict="refuse"} 1`, `authd_policy_verdicts_total{verdict="delay"} 2`,
		`authd_policy_requests_total{command="allow",result="ok"} 5`, `authd_policy_reports_dropped_total 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	t.Run("log only", func(t *testing.T) {
		_, sock := policyAuthd(t, ps.url("/log"), "auth_policy_log_only = yes\n")
		setAnswer(`{"status":-1,"msg":"Account locked"}`)
		if got := alice(4).run(t, sock); !strings.HasPrefix(got, "OK\t") {
			t.Errorf("log-only: %q", got)
		}
		calls := ps.take(t, "/log")
		if last := calls[len(calls)-1].Body; !strings.Contains(last, `"success":true,"policy_reject":true`) {
			t.Errorf("log-only report %s", last)
		}
	})

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); slow.Close() })
	for _, tc := range []struct {
		name, url, extra, want string
	}{
		{"down", down.URL, "", "OK"},
		{"down, reject_on_fail", down.URL, "auth_policy_reject_on_fail = yes\n", "FAIL\tuser=alice@example.com"},
		{"hanging", slow.URL, "auth_policy_server_timeout_msecs = 300\n", "OK"},
		{"hanging, reject_on_fail", slow.URL, "auth_policy_server_timeout_msecs = 300\nauth_policy_reject_on_fail = yes\n", "FAIL\tuser=alice@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, sock := policyAuthd(t, tc.url, tc.extra)
			// run gives up after 30 s: a hanging server must not hold
			// the login that long.
			if got := alice(5).run(t, sock); !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q, want %q…", got, tc.want)
			}
		})
	}
}
