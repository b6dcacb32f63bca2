package engine_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/backends/prefetch"
	"github.com/authd-project/authd/backends/static"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/vars"
)

// Engine tests run real drivers (passwd-file, static, prefetch) over files
// the test writes: the chain rules of docs/protocol.md §5.4, master users
// (docs/protocol.md §5.3), fields (docs/protocol.md §2.5, §2.6, §5.5, §5.8).

func pwfile(t *testing.T, body string) *passwdfile.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := passwdfile.New("scheme=PLAIN "+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func fields(t *testing.T, s string) []vars.FieldTemplate {
	t.Helper()
	f, err := vars.ParseFields(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func pass(db any, mod ...func(*engine.DBSpec)) engine.DBSpec {
	s := engine.DBSpec{Driver: "test", ResultSuccess: config.RuleReturnOK, ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue}
	switch d := db.(type) {
	case *passwdfile.DB:
		s.Passdb, s.Userdb = d, d
	case *static.DB:
		s.Passdb, s.Userdb = d, d
	case prefetch.DB:
		s.Userdb = d
	}
	for _, m := range mod {
		m(&s)
	}
	return s
}

func newEngine(t *testing.T, set engine.Settings, passdbs, userdbs []engine.DBSpec) *engine.Engine {
	t.Helper()
	e, err := engine.New(set, passdbs, userdbs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var info = &engine.Info{Service: "imap", Mech: "PLAIN", RemoteIP: "192.0.2.10"}

func TestChainRules(t *testing.T) {
	first := pwfile(t, "alice@x:{PLAIN}a1::::::\nboth@x:{PLAIN}first::::::reason=from_first\n")
	second := pwfile(t, "bob@x:{PLAIN}b1::::::\nboth@x:{PLAIN}second::::::\n")
	broken, _ := passwdfile.New(filepath.Join(t.TempDir(), "missing"), nil)
	ctx := context.Background()
	cases := []struct {
		name    string
		passdbs []engine.DBSpec
		user    string
		pw      string
		want    engine.Status
	}{
		{"first passdb", []engine.DBSpec{pass(first), pass(second)}, "alice@x", "a1", engine.StatusOK},
		{"falls through to second", []engine.DBSpec{pass(first), pass(second)}, "bob@x", "b1", engine.StatusOK},
		{"wrong everywhere", []engine.DBSpec{pass(first), pass(second)}, "bob@x", "nope", engine.StatusFail},
		{"second's password after first mismatch", []engine.DBSpec{pass(first), pass(second)}, "both@x", "second", engine.StatusOK},
		{"result_failure=return-fail stops", []engine.DBSpec{pass(first, func(s *engine.DBSpec) { s.ResultFailure = config.RuleReturnFail }), pass(second)}, "bob@x", "b1", engine.StatusFail},
		{"internal failure then success", []engine.DBSpec{pass(broken), pass(second)}, "bob@x", "b1", engine.StatusOK},
		{"internal failure then unknown: tempfail", []engine.DBSpec{pass(broken), pass(second)}, "nosuch@x", "x", engine.StatusTempFail},
		{"internal failure then wrong password: tempfail", []engine.DBSpec{pass(broken), pass(second)}, "bob@x", "bad", engine.StatusTempFail},
		// docs/protocol.md §5.4 step 9: without success, an internal failure seen anywhere
		// makes the answer a temporary failure, whatever the rule.
		{"result_internalfail=return-fail", []engine.DBSpec{pass(broken, func(s *engine.DBSpec) { s.ResultInternalfail = config.RuleReturnFail }), pass(second)}, "bob@x", "b1", engine.StatusTempFail},
		{"continue-ok then nothing", []engine.DBSpec{pass(first, func(s *engine.DBSpec) { s.ResultSuccess = config.RuleContinueOK })}, "alice@x", "a1", engine.StatusOK},
		{"continue-fail after success", []engine.DBSpec{pass(first, func(s *engine.DBSpec) { s.ResultSuccess = config.RuleContinue }), pass(second, func(s *engine.DBSpec) { s.ResultFailure = config.RuleReturnFail })}, "alice@x", "a1", engine.StatusFail},
		{"skip=authenticated skips after success", []engine.DBSpec{pass(first, func(s *engine.DBSpec) { s.ResultSuccess = config.RuleContinueOK }), pass(second, func(s *engine.DBSpec) {
			s.Skip = config.SkipAuthenticated
			s.ResultSuccess = config.RuleReturnFail
			s.ResultFailure = config.RuleReturnFail
		})}, "alice@x", "a1", engine.StatusOK},
		{"mechanisms= excludes", []engine.DBSpec{pass(first, func(s *engine.DBSpec) { s.Mechanisms = []string{"LOGIN"} })}, "alice@x", "a1", engine.StatusFail},
		{"username_filter excludes", []engine.DBSpec{pass(first, func(s *engine.DBSpec) { s.UsernameFilter = []string{"*@y"} })}, "alice@x", "a1", engine.StatusFail},
		{"username_filter negation", []engine.DBSpec{pass(first, func(s *engine.DBSpec) { s.UsernameFilter = []string{"*@x", "!alice@*"} })}, "alice@x", "a1", engine.StatusFail},
		{"deny passdb", []engine.DBSpec{pass(pwfile(t, "alice@x\n"), func(s *engine.DBSpec) { s.Deny = true }), pass(first)}, "alice@x", "a1", engine.StatusUserDisabled},
		{"deny passdb unreadable: tempfail, never a login", []engine.DBSpec{pass(broken, func(s *engine.DBSpec) { s.Deny = true }), pass(first)}, "alice@x", "a1", engine.StatusTempFail},
		{"deny passdb, not listed", []engine.DBSpec{pass(pwfile(t, "other@x\n"), func(s *engine.DBSpec) { s.Deny = true }), pass(first)}, "alice@x", "a1", engine.StatusOK},
	}
	// Readiness follows the last lookup of each backend.
	re := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(broken), pass(second)}, nil)
	if err := re.Ready(); err != nil {
		t.Fatalf("ready before any lookup: %v", err)
	}
	re.VerifyPlain(ctx, info, "", "bob@x", []byte("b1"))
	if err := re.Ready(); err == nil || !strings.Contains(err.Error(), "passdb") {
		t.Fatalf("ready with a missing passwd-file: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, engine.Settings{}, tc.passdbs, nil)
			res := e.VerifyPlain(ctx, info, "", tc.user, []byte(tc.pw))
			if res.Status != tc.want {
				t.Fatalf("status %v, want %v (reason %q)", res.Status, tc.want, res.Reason)
			}
		})
	}
}

func TestPassdbFields(t *testing.T) {
	db := pwfile(t, strings.Join([]string{
		"nl@x:{PLAIN}p::::::nologin reason=Moved",
		"np@x:::::::nopassword",
		"npbad@x:{PLAIN}p::::::nopassword",
		"local@x:{PLAIN}p::::::allow_nets=local",
		"net@x:{PLAIN}p::::::allow_nets=192.0.2.0/24,2001:db8::/32",
		"far@x:{PLAIN}p::::::allow_nets=198.51.100.1",
		"failed@x:{PLAIN}p::::::fail",
		"renamed@x:{PLAIN}p::::::user=real@x",
		"newdomain@x:{PLAIN}p::::::domain=other.org",
		"prefetch@x:{PLAIN}p::::::userdb_uid=5000 userdb_home=/h/%n",
		"proxy@x:{PLAIN}p::::::proxy host=10.0.0.5 port=143 destuser=remote",
	}, "\n")+"\n")
	e := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(db, func(s *engine.DBSpec) {
		s.DefaultFields = fields(t, "quota=1G")
		s.OverrideFields = fields(t, "shard=%1.2Mn")
	})}, []engine.DBSpec{pass(prefetch.DB{})})
	ctx := context.Background()
	check := func(user, pw string, want engine.Status, wantFields string) engine.Result {
		t.Helper()
		res := e.VerifyPlain(ctx, info, "", user, []byte(pw))
		if res.Status != want {
			t.Fatalf("%s: status %v, want %v (%s)", user, res.Status, want, res.Reason)
		}
		if wantFields != "-" && res.Fields.String() != wantFields {
			t.Fatalf("%s: fields %q, want %q", user, res.Fields.String(), wantFields)
		}
		return res
	}
	check("nl@x", "p", engine.StatusOK, "-")
	if r := check("nl@x", "p", engine.StatusOK, "-"); !r.Fields.Has("nologin") || !strings.Contains(r.Fields.String(), "reason=Moved") || !strings.Contains(r.Fields.String(), "quota=1G") {
		t.Fatalf("nologin fields: %s", r.Fields)
	}
	check("nl@x", "wrong", engine.StatusFail, "-")
	// nologin is dropped from FAIL replies (docs/protocol.md §1.5)
	if r := e.VerifyPlain(ctx, info, "", "nl@x", []byte("wrong")); r.Fields.Has("nologin") {
		t.Fatalf("nologin in a failure: %s", r.Fields)
	}
	check("np@x", "anything", engine.StatusOK, "-")
	check("npbad@x", "anything", engine.StatusTempFail, "-")
	check("local@x", "p", engine.StatusFail, "-") // request has a remote IP
	localInfo := &engine.Info{Service: "imap", Mech: "PLAIN"}
	if r := e.VerifyPlain(ctx, localInfo, "", "local@x", []byte("p")); r.Status != engine.StatusOK {
		t.Fatalf("allow_nets=local from a unix socket: %v", r.Status)
	}
	// A gRPC caller without an address is not local, whatever it leaves
	// out, and matches no network either.
	for _, user := range []string{"local@x", "net@x"} {
		remote := &engine.Info{Service: "imap", Mech: "PLAIN", NotLocal: true}
		if r := e.VerifyPlain(ctx, remote, "", user, []byte("p")); r.Status != engine.StatusFail {
			t.Fatalf("%s without an address, not local: %v", user, r.Status)
		}
	}
	check("net@x", "p", engine.StatusOK, "-")
	check("far@x", "p", engine.StatusFail, "-")
	check("failed@x", "p", engine.StatusFail, "-")
	if r := check("renamed@x", "p", engine.StatusOK, "-"); r.User != "real@x" || r.OrigUser != "renamed@x" {
		t.Fatalf("rename: user %q orig %q", r.User, r.OrigUser)
	}
	if r := check("newdomain@x", "p", engine.StatusOK, "-"); r.User != "newdomain@other.org" {
		t.Fatalf("domain rename: %q", r.User)
	}
	r := check("prefetch@x", "p", engine.StatusOK, "-")
	if r.Fields.Has("userdb_uid") || r.Userdb.String() != "uid=5000 home=/h/prefetch" {
		t.Fatalf("prefetch: fields %s userdb %s", r.Fields, r.Userdb)
	}
	// The prefetch userdb serves those fields after a login…
	if u := e.LookupUserFinal(ctx, info, r.User, r.OrigUser, r.Userdb); u.Status != engine.StatusOK || u.Userdb.String() != "uid=5000 home=/h/prefetch" {
		t.Fatalf("prefetch userdb: %v %s", u.Status, u.Userdb)
	}
	// …and knows nothing without one (LDA, doveadm user).
	if u := e.LookupUser(ctx, info, "prefetch@x", nil); u.Status != engine.StatusNotFound {
		t.Fatalf("prefetch without passdb: %v", u.Status)
	}
	r = check("proxy@x", "p", engine.StatusOK, "-")
	for _, want := range []string{"proxy", "host=10.0.0.5", "port=143", "destuser=remote"} {
		if !strings.Contains(r.Fields.String(), want) {
			t.Fatalf("proxy fields %s lack %s", r.Fields, want)
		}
	}
	// override_fields with a hash modifier: %1.2Mn is two hex digits of
	// md5(%n) from offset 1.
	sum := md5.Sum([]byte("proxy"))
	if v, _ := r.Fields.Get("shard"); v != hex.EncodeToString(sum[:])[1:3] {
		t.Fatalf("override shard=%q, want %q", v, hex.EncodeToString(sum[:])[1:3])
	}
}

func TestMasterUsers(t *testing.T) {
	masters := pwfile(t, "admin@x:{PLAIN}masterpw::::::\n")
	users := pwfile(t, "alice@x:{PLAIN}alicepw::::::\nbob@x:{PLAIN}bobpw::::::\n")
	mk := func(passYes bool) *engine.Engine {
		return newEngine(t, engine.Settings{MasterUserSeparator: "*"},
			[]engine.DBSpec{pass(masters, func(s *engine.DBSpec) { s.Master = true; s.Pass = passYes }), pass(users)}, nil)
	}
	ctx := context.Background()
	e := mk(true)
	// user*master
	r := e.VerifyPlain(ctx, info, "", "alice@x*admin@x", []byte("masterpw"))
	if r.Status != engine.StatusOK || r.User != "alice@x" || r.MasterUser != "admin@x" {
		t.Fatalf("separator login: %+v", r)
	}
	// PLAIN authzid
	r = e.VerifyPlain(ctx, info, "bob@x", "admin@x", []byte("masterpw"))
	if r.Status != engine.StatusOK || r.User != "bob@x" || r.MasterUser != "admin@x" {
		t.Fatalf("authzid login: %+v", r)
	}
	// the master's password is checked
	if r := e.VerifyPlain(ctx, info, "bob@x", "admin@x", []byte("wrong")); r.Status != engine.StatusFail {
		t.Fatalf("wrong master password: %v", r.Status)
	}
	// a normal user is not a master
	if r := e.VerifyPlain(ctx, info, "bob@x", "alice@x", []byte("alicepw")); r.Status != engine.StatusFail {
		t.Fatalf("alice logged in as bob: %+v", r)
	}
	// pass=yes: the login user must exist in the normal passdbs
	if r := e.VerifyPlain(ctx, info, "nosuch@x", "admin@x", []byte("masterpw")); r.Status != engine.StatusAuthzFail {
		t.Fatalf("master login as an unknown user: %v", r.Status)
	}
	// the user's own password still works
	if r := e.VerifyPlain(ctx, info, "", "alice@x", []byte("alicepw")); r.Status != engine.StatusOK || r.MasterUser != "" {
		t.Fatalf("plain login: %+v", r)
	}
	// pass=yes as the configuration keeps it (result_success=continue):
	// the master's password is checked, then the login user must exist
	// in the normal passdbs.
	cont := newEngine(t, engine.Settings{MasterUserSeparator: "*"},
		[]engine.DBSpec{pass(masters, func(s *engine.DBSpec) { s.Master, s.Pass, s.ResultSuccess = true, true, config.RuleContinue }), pass(users)}, nil)
	if r := cont.VerifyPlain(ctx, info, "bob@x", "admin@x", []byte("masterpw")); r.Status != engine.StatusOK || r.User != "bob@x" || r.MasterUser != "admin@x" {
		t.Fatalf("pass=yes master login: %+v", r)
	}
	if r := cont.VerifyPlain(ctx, info, "bob@x", "admin@x", []byte("wrong")); r.Status != engine.StatusFail {
		t.Fatalf("pass=yes, wrong master password: %v", r.Status)
	}
	if r := cont.VerifyPlain(ctx, info, "nosuch@x", "admin@x", []byte("masterpw")); r.Status != engine.StatusAuthzFail {
		t.Fatalf("pass=yes master login as an unknown user: %v", r.Status)
	}
	// The credentials mechanisms' master logins pass the same checks: the
	// master's credentials, a login user the normal passdbs know.
	if r, cred := cont.LookupCredentials(ctx, info, "bob@x", "admin@x", "PLAIN", ""); r.Status != engine.StatusOK || string(cred) != "masterpw" || r.User != "bob@x" || r.MasterUser != "admin@x" {
		t.Fatalf("pass=yes credentials lookup: %+v %q", r, cred)
	}
	if r, cred := cont.LookupCredentials(ctx, info, "nosuch@x", "admin@x", "PLAIN", ""); r.Status != engine.StatusAuthzFail || cred != nil {
		t.Fatalf("pass=yes credentials lookup for an unknown login user: %+v %q", r, cred)
	}
	// no master passdbs at all: an authzid is refused with the authcid as user
	plain := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(users)}, nil)
	if r := plain.VerifyPlain(ctx, info, "bob@x", "alice@x", []byte("alicepw")); r.Status != engine.StatusFail || r.User != "alice@x" {
		t.Fatalf("authzid without master passdbs: %+v", r)
	}
}

func TestNameProcessing(t *testing.T) {
	users := pwfile(t, "alice@example.com:{PLAIN}p::::::\n")
	e := newEngine(t, engine.Settings{
		DefaultRealm: "example.com", UsernameTranslation: "%@",
		UsernameChars: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@",
	}, []engine.DBSpec{pass(users)}, nil)
	ctx := context.Background()
	for _, name := range []string{"alice", "ALICE@EXAMPLE.COM", "Alice"} {
		r := e.VerifyPlain(ctx, info, "", name, []byte("p"))
		if r.Status != engine.StatusOK || r.User != "alice@example.com" || r.OrigUser != name {
			t.Errorf("%q: %+v", name, r)
		}
	}
	for _, name := range []string{"al ice", "alice/x", ""} {
		if r := e.VerifyPlain(ctx, info, "", name, []byte("p")); r.Status != engine.StatusFail || r.User != "" {
			t.Errorf("%q: %+v", name, r)
		}
	}
	// Translation runs after the default realm is appended (docs/protocol.md §5.2), so it
	// acts on names that already have a domain.
	tr := newEngine(t, engine.Settings{UsernameTranslation: "%@"}, []engine.DBSpec{pass(users)}, nil)
	if r := tr.VerifyPlain(ctx, info, "", "alice%example.com", []byte("p")); r.Status != engine.StatusOK || r.User != "alice@example.com" {
		t.Errorf("translation: %+v", r)
	}
}

func TestUserdbChain(t *testing.T) {
	users := pwfile(t, "alice@x:{PLAIN}p:1000:1000::/home/alice::userdb_mail=maildir:~/M\nnoid@x:{PLAIN}p:nosuchuserxyz:1::/h::\n")
	st, err := static.New("uid=nobody gid=nogroup home=/var/mail/%d/%n")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// override_fields win over the backend; names become numbers.
	e := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(users)}, []engine.DBSpec{pass(users, func(s *engine.DBSpec) {
		s.OverrideFields = fields(t, "uid=nobody home=/var/mail/%n/ quota:protected=5G mail:remove")
		s.DefaultFields = fields(t, "quota=1G")
	})})
	r := e.LookupUser(ctx, info, "alice@x", nil)
	if r.Status != engine.StatusOK || r.Userdb.String() != "quota=1G uid=65534 gid=1000 home=/var/mail/alice/" {
		t.Fatalf("userdb: %v %s", r.Status, r.Userdb)
	}
	if r := e.LookupUser(ctx, info, "nosuch@x", nil); r.Status != engine.StatusNotFound {
		t.Fatalf("unknown: %v", r.Status)
	}
	// Backend fields may carry :protected and :remove too.
	marked := pwfile(t, "m@x:{PLAIN}p:1000:1000::/h::userdb_quota:protected=9G userdb_mail:remove\n")
	me := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(marked)}, []engine.DBSpec{pass(marked, func(s *engine.DBSpec) {
		s.DefaultFields = fields(t, "quota=1G mail=maildir:~/M")
	})})
	if r := me.LookupUser(ctx, info, "m@x", nil); r.Status != engine.StatusOK || r.Userdb.String() != "quota=1G uid=1000 gid=1000 home=/h" {
		t.Fatalf("protected/remove from the backend: %v %s", r.Status, r.Userdb)
	}
	// userdb renames: user, username (local part), domain.
	ren := pwfile(t, "r1@x:{PLAIN}p:1:1::/h::userdb_user=other@y\nr2@x:{PLAIN}p:1:1::/h::userdb_username=bob\nr3@x:{PLAIN}p:1:1::/h::userdb_domain=z.org\n")
	re := newEngine(t, engine.Settings{FirstValidUID: 1, FirstValidGID: 1}, []engine.DBSpec{pass(ren)}, []engine.DBSpec{pass(ren)})
	for user, want := range map[string]string{"r1@x": "other@y", "r2@x": "bob@x", "r3@x": "r3@z.org"} {
		if r := re.LookupUser(ctx, info, user, nil); r.Status != engine.StatusOK || r.User != want || r.Userdb.Has("username") {
			t.Errorf("%s: %v user %q fields %s, want user %q", user, r.Status, r.User, r.Userdb, want)
		}
	}
	// An unresolvable uid name is a temporary failure, not "not found".
	plain := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(users)}, []engine.DBSpec{pass(users)})
	if r := plain.LookupUser(ctx, info, "noid@x", nil); r.Status != engine.StatusTempFail {
		t.Fatalf("bad uid: %v", r.Status)
	}
	// A static userdb without allow_all_users asks the passdbs first.
	se := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(users)}, []engine.DBSpec{pass(st)})
	if r := se.LookupUser(ctx, info, "alice@x", nil); r.Status != engine.StatusOK || r.Userdb.String() != "uid=65534 gid=65534 home=/var/mail/x/alice" {
		t.Fatalf("static: %v %s", r.Status, r.Userdb)
	}
	if r := se.LookupUser(ctx, info, "nosuch@x", nil); r.Status != engine.StatusNotFound {
		t.Fatalf("static, unknown user: %v", r.Status)
	}
	// first_valid_uid: a uid below it is refused with a clear failure.
	ranged := newEngine(t, engine.Settings{FirstValidUID: 1001}, []engine.DBSpec{pass(users)}, []engine.DBSpec{pass(users)})
	if r := ranged.LookupUser(ctx, info, "alice@x", nil); r.Status != engine.StatusTempFail || !strings.Contains(r.Reason, "first_valid_uid") {
		t.Fatalf("uid below first_valid_uid: %v %q", r.Status, r.Reason)
	}
	all, _ := static.New("uid=1 gid=1 home=/h/%u allow_all_users=yes")
	ae := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(users)}, []engine.DBSpec{pass(all)})
	if r := ae.LookupUser(ctx, info, "anyone@x", nil); r.Status != engine.StatusOK {
		t.Fatalf("allow_all_users: %v", r.Status)
	}
}

// In a master login the original user name is the master's, as sent:
// Dovecot splits "login*master" before it keeps the original name
// (%{orig_user}, original_user= in replies).
func TestMasterOrigUser(t *testing.T) {
	masters := pwfile(t, "admin@x:{PLAIN}masterpw::::::\n")
	users := pwfile(t, "alice@x:{PLAIN}alicepw::::::\n")
	e := newEngine(t, engine.Settings{MasterUserSeparator: "*"},
		[]engine.DBSpec{pass(masters, func(s *engine.DBSpec) { s.Master = true }), pass(users)}, nil)
	ctx := context.Background()
	for _, tc := range []struct{ authzid, authcid, pw string }{
		{"", "alice@x*Admin@x", "masterpw"},
		{"", "alice@x*Admin@x", "wrong"},
		{"alice@x", "Admin@x", "masterpw"},
	} {
		r := e.VerifyPlain(ctx, info, tc.authzid, tc.authcid, []byte(tc.pw))
		if r.OrigUser != "Admin@x" {
			t.Errorf("%q/%q: OrigUser %q, want Admin@x (%+v)", tc.authzid, tc.authcid, r.OrigUser, r)
		}
		cr, _ := e.LookupCredentials(ctx, info, tc.authzid, tc.authcid, "PLAIN", "")
		if cr.OrigUser != "Admin@x" {
			t.Errorf("credentials %q/%q: OrigUser %q", tc.authzid, tc.authcid, cr.OrigUser)
		}
	}
}
