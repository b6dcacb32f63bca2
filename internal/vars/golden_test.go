package vars

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The golden table records what Dovecot 2.3 produced for goldenTemplates in
// a handful of request scenarios. live_test.go regenerates and checks it
// against a running Dovecot; this test checks the implementation against
// it without needing Dovecot.

const goldenPath = "testdata/golden.json"

type goldenFile struct {
	Dovecot string       `json:"dovecot"`
	Note    string       `json:"note"`
	Process goldenProc   `json:"process"`
	Cases   []goldenCase `json:"cases"`
}

type goldenProc struct {
	Hostname string `json:"hostname"`
	UID      string `json:"uid"`
	GID      string `json:"gid"`
}

type goldenCase struct {
	Template string                  `json:"template"`
	Results  map[string]goldenResult `json:"results"`
}

type goldenResult struct {
	Out  string `json:"out,omitempty"`
	Fail bool   `json:"fail,omitempty"` // Dovecot failed the expansion (field missing, error logged)
}

// scenario is one request made to Dovecot, and the Context that describes
// Dovecot's request state while it expanded the templates.
type scenario struct {
	name string
	ctx  func() *Context
}

const goldenEnvValue = "Hello.World"

var (
	aliceUserdb = MapFields{"uid": "1001", "gid": "1001", "home": "/home/alice", "mail": "", "quota_rule": "*:storage=1G"}
	bobUserdb   = MapFields{"uid": "1002", "gid": "1002", "home": "/home/bob", "mail": ""}
)

// masterdbTemplates are also expanded in the master passdb during a master
// user login (the only place where %{login_user} is set).
var masterdbTemplates = []string{
	"%u", "%n", "%d", "%{login_user}", "%{login_username}", "%{login_domain}", "%{master_user}",
	"%{auth_user}", "%{auth_domain}", "%{orig_user}", "%{orig_domain}", "%!", "%w", "%m", "%s",
}

var scenarios = []scenario{
	{"auth", func() *Context {
		return &Context{
			User: "alice.smith@mail.example.com", OrigUser: "Alice.Smith@Mail.Example.COM",
			Service: "imap", Mech: "PLAIN",
			LocalIP: "192.0.2.10", RemoteIP: "192.0.2.1", LocalPort: "143", RemotePort: "51234",
			RealLocalIP: "198.51.100.10", RealRemoteIP: "198.51.100.1", RealLocalPort: "1143", RealRemotePort: "61234",
			Password: "secret", PassdbID: 1, Secured: "TLS", Cert: "valid",
			Session: "Se ss  ", LocalName: `O'Brien "x" \y`, ClientID: "C1 ",
			Passdb: MapFields{"foo": "bar"}, Userdb: MapFields{"quota_rule": "*:storage=1G"},
		}
	}},
	{"auth-bob", func() *Context {
		return &Context{
			User: "bob@first@last.example", OrigUser: "Bob@First@Last.Example",
			Service: "smtp", Mech: "PLAIN", Password: "bobpw", PassdbID: 1, Secured: "secured",
		}
	}},
	{"auth-master", func() *Context {
		return &Context{
			User: "alice.smith@mail.example.com", OrigUser: "admin@example.com", MasterUser: "admin@example.com",
			Service: "imap", Mech: "PLAIN", Password: "adminpw", PassdbID: 1,
			Passdb: MapFields{"foo": "bar"}, Userdb: MapFields{"quota_rule": "*:storage=1G"},
		}
	}},
	{"masterdb", func() *Context {
		return &Context{
			User: "admin@example.com", OrigUser: "admin@example.com", LoginUser: "alice.smith@mail.example.com",
			Service: "imap", Mech: "PLAIN", Password: "adminpw", PassdbID: 2,
		}
	}},
	{"userdb", func() *Context {
		return &Context{
			User: "alice.smith@mail.example.com", OrigUser: "Alice.Smith@Mail.Example.COM",
			Service: "imap",
			LocalIP: "192.0.2.10", RemoteIP: "192.0.2.1", LocalPort: "143", RemotePort: "51234",
			RealLocalIP: "198.51.100.10", RealRemoteIP: "198.51.100.1", RealLocalPort: "1143", RealRemotePort: "61234",
			PassdbID: 1, Session: "Se ss  ", LocalName: `O'Brien "x" \y`, ClientID: "C1 ",
			Userdb: aliceUserdb,
		}
	}},
	{"userdb-bob", func() *Context {
		return &Context{
			User: "bob@first@last.example", OrigUser: "Bob@First@Last.Example",
			Service: "lmtp", PassdbID: 1, Userdb: bobUserdb,
		}
	}},
}

func scenarioByName(name string) *scenario {
	for i := range scenarios {
		if scenarios[i].name == name {
			return &scenarios[i]
		}
	}
	return nil
}

func loadGolden(t testing.TB) *goldenFile {
	t.Helper()
	b, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("read golden table: %v", err)
	}
	var g goldenFile
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("parse %s: %v", goldenPath, err)
	}
	return &g
}

func writeGolden(t testing.TB, g *goldenFile) {
	t.Helper()
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenPath, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// withProcess makes %{hostname}/%{uid}/%{gid} expand to the given values.
func withProcess(t testing.TB, p goldenProc) {
	t.Helper()
	getProcessValues()
	old := procValues
	procValues = &processValues{hostname: p.Hostname, uid: p.UID, gid: p.GID}
	t.Cleanup(func() { procValues = old })
}

// checkGoldenCase compares the implementation with one recorded result.
func checkGoldenCase(t *testing.T, tmpl, scen string, want goldenResult) {
	t.Helper()
	sc := scenarioByName(scen)
	if sc == nil {
		t.Errorf("golden: unknown scenario %q", scen)
		return
	}
	tp := ParseLenient(tmpl)
	got, err := tp.ExpandChecked(sc.ctx(), nil)
	switch {
	case want.Fail && err == nil:
		t.Errorf("%s: %q: Dovecot failed the expansion, we gave %q without error", scen, tmpl, got)
	case !want.Fail && err != nil:
		t.Errorf("%s: %q: Dovecot gave %q, we failed: %v (output %q)", scen, tmpl, want.Out, err, got)
	case !want.Fail && got != want.Out:
		t.Errorf("%s: %q: got %q, Dovecot %q", scen, tmpl, got, want.Out)
	}
}

func TestGolden(t *testing.T) {
	g := loadGolden(t)
	withProcess(t, g.Process)
	t.Setenv("AUTHD_VARS_TEST", goldenEnvValue)
	t.Setenv("AUTHD_VARS_NOPE", "")
	os.Unsetenv("AUTHD_VARS_NOPE")
	seen := map[string]bool{}
	for _, c := range g.Cases {
		seen[c.Template] = true
		for scen, want := range c.Results {
			checkGoldenCase(t, c.Template, scen, want)
		}
	}
	for _, tmpl := range goldenTemplates {
		if !seen[tmpl] {
			t.Errorf("template %q has no golden result; run the live test with -update-golden", tmpl)
		}
	}
	if len(g.Cases) < len(slices.Compact(slices.Sorted(slices.Values(goldenTemplates)))) {
		t.Errorf("golden table has %d cases, want %d", len(g.Cases), len(goldenTemplates))
	}
}
