package vars

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// The 2.4 golden table records what Dovecot 2.4 produced for
// golden24Templates in a handful of request scenarios (live24_test.go
// records it from a real Dovecot 2.4 in a Debian 13 root). This test checks
// the implementation against it without Dovecot.

const golden24Path = "testdata/golden24.json"

type golden24File struct {
	Dovecot string         `json:"dovecot"`
	Note    string         `json:"note"`
	Process golden24Proc   `json:"process"`
	Cases   []golden24Case `json:"cases"`
}

// golden24Proc are the values of the recording machine and build, which
// the check substitutes for authd's own.
type golden24Proc struct {
	Hostname string `json:"hostname"`
	UID      string `json:"uid"`
	GID      string `json:"gid"`
	PID      string `json:"pid"`
	OS       string `json:"os"`
	Release  string `json:"os_version"`
	CPUs     string `json:"cpu_count"`
	Version  string `json:"dovecot_version"`
}

type golden24Case struct {
	Template string                  `json:"template"`
	Results  map[string]goldenResult `json:"results"`
}

// The 2.4 scenarios: the same users and requests as the 2.3 ones, with
// 2.4's defaults (auth_username_format = %{user | lower}) and its passdb
// and userdb ids (each block its own, counted from 1 in file order: the
// master passdb is 1, the template passdbs follow).

// passdbBase24 and userdbBase24 are the ids of the first template passdb
// (after the master passdb) and userdb.
const (
	passdbBase24 = 1
	userdbBase24 = 1
)

// The passwd_file provider holds, in a passdb, the extra fields of the
// user's line as written; in a userdb, uid, gid and home and the extra
// fields with their userdb_ prefix removed.
var (
	passwdFileAlice       = MapFields{"userdb_quota_rule": "*:storage=1G", "foo": "bar"}
	passwdFileAliceUserdb = MapFields{"uid": "1001", "gid": "1001", "home": "/home/alice", "quota_rule": "*:storage=1G", "foo": "bar"}
	passwdFileBobUserdb   = MapFields{"uid": "1002", "gid": "1002", "home": "/home/bob"}
)

var scenarios24 = []scenario{
	{"auth", func() *Context {
		return &Context{
			User: "alice.smith@mail.example.com", OrigUser: "Alice.Smith@Mail.Example.COM",
			Service: "imap", Mech: "PLAIN",
			LocalIP: "192.0.2.10", RemoteIP: "192.0.2.1", LocalPort: "143", RemotePort: "51234",
			RealLocalIP: "198.51.100.10", RealRemoteIP: "198.51.100.1", RealLocalPort: "1143", RealRemotePort: "61234",
			Password: "secret", Secured: "TLS", Cert: "valid", SSLJA3Hash: "771,4865-4866",
			Session: "Se ss  ", LocalName: `O'Brien "x" \y`, ClientID: "C1 ",
			Passdb: MapFields{"foo": "bar"}, Userdb: MapFields{"quota_rule": "*:storage=1G"},
			Provider: "passwd_file", ProviderFields: passwdFileAlice,
		}
	}},
	{"auth-bob", func() *Context {
		return &Context{
			User: "bob@first@last.example", OrigUser: "Bob@First@Last.Example",
			Service: "smtp", Mech: "PLAIN", Password: "bobpw", Secured: "secured",
			Provider: "passwd_file", ProviderFields: MapFields{},
		}
	}},
	{"auth-master", func() *Context {
		return &Context{
			User: "alice.smith@mail.example.com", OrigUser: "admin@example.com", MasterUser: "admin@example.com",
			Service: "imap", Mech: "PLAIN", Password: "adminpw",
			Passdb: MapFields{"foo": "bar"}, Userdb: MapFields{"quota_rule": "*:storage=1G"},
			Provider: "passwd_file", ProviderFields: passwdFileAlice,
		}
	}},
	{"masterdb", func() *Context {
		return &Context{
			User: "admin@example.com", OrigUser: "admin@example.com", LoginUser: "alice.smith@mail.example.com",
			Service: "imap", Mech: "PLAIN", Password: "adminpw",
			Provider: "passwd_file", ProviderFields: MapFields{},
		}
	}},
	{"userdb", func() *Context {
		return &Context{
			User: "alice.smith@mail.example.com", OrigUser: "Alice.Smith@Mail.Example.COM",
			Service: "imap",
			LocalIP: "192.0.2.10", RemoteIP: "192.0.2.1", LocalPort: "143", RemotePort: "51234",
			RealLocalIP: "198.51.100.10", RealRemoteIP: "198.51.100.1", RealLocalPort: "1143", RealRemotePort: "61234",
			Session: "Se ss  ", LocalName: `O'Brien "x" \y`, ClientID: "C1 ",
			Userdb:   MapFields{"uid": "1001", "gid": "1001", "home": "/home/alice", "quota_rule": "*:storage=1G"},
			Provider: "passwd_file", ProviderFields: passwdFileAliceUserdb,
		}
	}},
	{"userdb-bob", func() *Context {
		return &Context{
			User: "bob@first@last.example", OrigUser: "Bob@First@Last.Example", Service: "lmtp",
			Userdb:   MapFields{"uid": "1002", "gid": "1002", "home": "/home/bob"},
			Provider: "passwd_file", ProviderFields: passwdFileBobUserdb,
		}
	}},
}

func scenario24(name string) *scenario {
	for i := range scenarios24 {
		if scenarios24[i].name == name {
			return &scenarios24[i]
		}
	}
	return nil
}

// ctx24 is the scenario's Context for template number i. The recording
// runs batch24 templates per Dovecot instance, so the passdb and userdb ids
// restart with each batch.
func ctx24(sc *scenario, i int) *Context {
	c := sc.ctx()
	switch sc.name {
	case "masterdb":
		// Master passdbs are numbered after the others.
		c.PassdbID = passdbBase24 + batch24
	case "userdb", "userdb-bob":
		c.PassdbID = userdbBase24 + i%batch24
	default:
		c.PassdbID = passdbBase24 + i%batch24
	}
	return c
}

func loadGolden24(t testing.TB) *golden24File {
	t.Helper()
	b, err := os.ReadFile(golden24Path)
	if err != nil {
		t.Fatalf("read 2.4 golden table: %v", err)
	}
	var g golden24File
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("parse %s: %v", golden24Path, err)
	}
	return &g
}

func writeGolden24(t testing.TB, g *golden24File) {
	t.Helper()
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(golden24Path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// withProcess24 makes the process and build values those of the
// recording.
func withProcess24(t testing.TB, p golden24Proc) {
	t.Helper()
	getProcessValues()
	old := procValues
	procValues = &processValues{hostname: p.Hostname, uid: p.UID, gid: p.GID, pid: p.PID, sysname: p.OS, release: p.Release}
	t.Cleanup(func() { procValues = old })
	t.Setenv("NCPU", p.CPUs)
	oldVersion := dovecotVersion
	dovecotVersion = p.Version
	t.Cleanup(func() { dovecotVersion = oldVersion })
}

// checkGolden24 compares the implementation with one recorded result. The
// templates are parsed as Dovecot parses them at run time (an unknown
// filter fails the expansion there, not the load).
func checkGolden24(t *testing.T, i int, tmpl, scen string, want goldenResult) {
	t.Helper()
	sc := scenario24(scen)
	if sc == nil {
		t.Errorf("golden 2.4: unknown scenario %q", scen)
		return
	}
	tp, err := Syntax24.ParseLenient(tmpl)
	if err != nil {
		t.Errorf("%s: %q: Dovecot parsed it, we did not: %v", scen, tmpl, err)
		return
	}
	got, err := tp.ExpandChecked(ctx24(sc, i), nil)
	switch {
	case want.Fail && err == nil:
		t.Errorf("%s: %q: Dovecot failed the expansion, we gave %q without error", scen, tmpl, got)
	case !want.Fail && err != nil:
		t.Errorf("%s: %q: Dovecot gave %q, we failed: %v", scen, tmpl, want.Out, err)
	case !want.Fail && got != want.Out:
		t.Errorf("%s: %q: got %q, Dovecot %q", scen, tmpl, got, want.Out)
	}
}

func setGoldenEnv24(t *testing.T) {
	t.Setenv("AUTHD_VARS_TEST", goldenEnvValue)
	t.Setenv("AUTHD_VARS_NOPE", "")
	os.Unsetenv("AUTHD_VARS_NOPE")
}

func TestGolden24(t *testing.T) {
	g := loadGolden24(t)
	withProcess24(t, g.Process)
	setGoldenEnv24(t)
	index := map[string]int{}
	for i, tmpl := range golden24Templates {
		index[tmpl] = i
	}
	seen := map[string]bool{}
	n := 0
	for _, c := range g.Cases {
		i, ok := index[c.Template]
		if !ok {
			t.Errorf("golden 2.4 case %q is not in golden24Templates", c.Template)
			continue
		}
		seen[c.Template] = true
		for scen, want := range c.Results {
			checkGolden24(t, i, c.Template, scen, want)
			n++
		}
	}
	for _, tmpl := range golden24Templates {
		if !seen[tmpl] {
			t.Errorf("template %q has no 2.4 golden result; run TestLiveDovecot24 with -update-golden", tmpl)
		}
	}
	if len(golden24Templates) != len(slices.Compact(slices.Sorted(slices.Values(golden24Templates)))) {
		t.Error("golden24Templates has duplicates")
	}
	t.Logf("%d recorded 2.4 expansions checked", n)
}
