package oauth2

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// testIdP is an identity provider for the tests: a real HTTP server
// (net/http/httptest) answering tokeninfo and introspection requests from
// a table of tokens. What it received is recorded, so that tests can check
// how the driver sent the token.
type testIdP struct {
	srv *httptest.Server

	mu     sync.Mutex
	tokens map[string]map[string]any
	// seen records, per path, the token as the IdP received it and how.
	seen []seenRequest

	introspections atomic.Int32
	status         atomic.Int32 // non-zero: answer every request with this status
}

type seenRequest struct {
	path, method, how, token, clientID, clientSecret, service, remote string
}

func newTestIdP(t *testing.T) *testIdP {
	t.Helper()
	idp := &testIdP{tokens: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/introspect", idp.introspect)
	mux.HandleFunc("/tokeninfo", idp.tokeninfo)
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"email":"` + strings.Repeat("a", 2*maxBody) + `"}`))
	})
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>not json</html>")) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/introspect", http.StatusFound)
	})
	idp.srv = httptest.NewServer(mux)
	t.Cleanup(idp.srv.Close)
	return idp
}

func (idp *testIdP) set(token string, fields map[string]any) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.tokens[token] = fields
}

func (idp *testIdP) url(path string) string { return idp.srv.URL + path }

// received extracts the token the way the request carried it.
func received(r *http.Request) seenRequest {
	s := seenRequest{path: r.URL.Path, method: r.Method,
		service: r.Header.Get("X-Dovecot-Auth-Service"), remote: r.Header.Get("X-Dovecot-Auth-Remote")}
	if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		s.how, s.token = "bearer", a
		return s
	}
	if r.Method == http.MethodPost {
		_ = r.ParseForm()
		s.how, s.token = "post", r.PostForm.Get("token")
		s.clientID, s.clientSecret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		return s
	}
	q := r.URL.Query()
	s.how = "query"
	s.token = q.Get("token") + q.Get("access_token")
	s.clientID, s.clientSecret = q.Get("client_id"), q.Get("client_secret")
	return s
}

func (idp *testIdP) lookup(r *http.Request) (map[string]any, bool) {
	s := received(r)
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.seen = append(idp.seen, s)
	f, ok := idp.tokens[s.token]
	return f, ok
}

func (idp *testIdP) lastSeen() seenRequest {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	if len(idp.seen) == 0 {
		return seenRequest{}
	}
	return idp.seen[len(idp.seen)-1]
}

// introspect answers as RFC 7662: an unknown token is {"active":false}.
func (idp *testIdP) introspect(w http.ResponseWriter, r *http.Request) {
	idp.introspections.Add(1)
	if st := idp.status.Load(); st != 0 {
		w.WriteHeader(int(st))
		return
	}
	f, ok := idp.lookup(r)
	if !ok {
		f = map[string]any{"active": false}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(f)
}

// tokeninfo answers 401 for an unknown token, else the token's fields
// without "active" (a tokeninfo endpoint that gives less than
// introspection).
func (idp *testIdP) tokeninfo(w http.ResponseWriter, r *http.Request) {
	if st := idp.status.Load(); st != 0 {
		w.WriteHeader(int(st))
		return
	}
	f, ok := idp.lookup(r)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_token"}`))
		return
	}
	out := map[string]any{}
	for k, v := range f {
		if k != "active" && k != "mailhost" {
			out[k] = v
		}
	}
	_ = json.NewEncoder(w).Encode(out)
}

// configText renders a dovecot-oauth2.conf.ext.
func configText(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(kv[i] + " = " + kv[i+1] + "\n")
	}
	return b.String()
}
