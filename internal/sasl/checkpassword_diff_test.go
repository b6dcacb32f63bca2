package sasl_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/authd-project/authd/backends/checkpassword"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/sasl"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/internal/vars"
)

// The checkpassword differential test: Dovecot 2.3's checkpassword passdb
// and authd's run the same program (a sh script) with the same reply
// program (Dovecot's checkpassword-reply), and must answer PLAIN alike:
// success with the user the program names, a wrong password (exit status
// 1, the only "no"), and "could not tell" for every other status (111, 2,
// and vpopmail's vchkpw refusals 3, 12, 13, 15, 20–23 too: Dovecot 2.3
// dropped its vpopmail support and with it their special meaning), a
// success without an answer, and a signal.

const diffCheckpassword = `#!/bin/sh
input=$(head -c 600 <&3 | tr '\0' '\n')
user=$(printf '%s\n' "$input" | sed -n 1p)
pass=$(printf '%s\n' "$input" | sed -n 2p)
case "$user" in
alice@example.com) [ "$pass" = secret ] || exit 1 ;;
renamed@example.com) [ "$pass" = secret ] || exit 1; user=Renamed@Example.COM ;;
vpop*@example.com) n=${user#vpop}; exit "${n%@example.com}" ;;
silent@example.com) exit 0 ;;
crash@example.com) kill -9 $$ ;;
*) exit 1 ;;
esac
USER=$user HOME=/home/alice userdb_uid=1000 userdb_gid=1000 EXTRA="userdb_uid userdb_gid"
export USER HOME userdb_uid userdb_gid EXTRA
exec "$@"
`

// TestDifferentialCheckpassword compares authd with Dovecot 2.3.
func TestDifferentialCheckpassword(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	const reply = "/usr/lib/dovecot/checkpassword-reply"
	testenv.Require(t, reply, "sh", "head", "tr", "sed")
	dir := testenv.Dir(t)
	script := filepath.Join(dir, "checkpassword.sh")
	if err := os.WriteFile(script, []byte(diffCheckpassword), 0o755); err != nil {
		t.Fatal(err)
	}
	dc := testenv.StartDovecot(t, testenv.DovecotOptions{Dir: dir, Config: fmt.Sprintf(`
auth_mechanisms = plain
auth_failure_delay = 0
disable_plaintext_auth = no
passdb {
  driver = checkpassword
  args = %s
}
userdb {
  driver = static
  args = uid=1000 gid=1000 home=/nonexistent
}
`, script)})
	authdSock := serveCheckpassword(t, "reply="+reply+" "+script)
	var scs []diffScenario
	for _, c := range []struct{ name, user, pass string }{
		{"ok", "alice@example.com", "secret"},
		{"renamed", "renamed@example.com", "secret"},
		{"wrong", "alice@example.com", "wrong"},
		{"unknown", "nosuch@example.com", "secret"},
		{"silent", "silent@example.com", "secret"},
		{"signal", "crash@example.com", "secret"},
	} {
		scs = append(scs, diffScenario{name: c.name, run: simple("AUTH\t1\tPLAIN\tservice=imap\tno-penalty\tresp=" + b64("\x00"+c.user+"\x00"+c.pass))})
	}
	for _, st := range []int{1, 2, 3, 4, 12, 13, 15, 20, 21, 22, 23, 24, 100, 111} {
		u := fmt.Sprintf("vpop%d@example.com", st)
		scs = append(scs, diffScenario{name: fmt.Sprintf("status-%d", st), run: simple("AUTH\t1\tPLAIN\tservice=imap\tno-penalty\tresp=" + b64("\x00"+u+"\x00secret"))})
	}
	runOAuthDiff(t, dc.Socket("auth-client"), authdSock, scs)
}

// serveCheckpassword serves the client protocol with authd's
// checkpassword passdb built from args.
func serveCheckpassword(t *testing.T, args string) string {
	t.Helper()
	db, err := checkpassword.New(args, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := vars.ParseFields("")
	eng, err := engine.New(engine.Settings{UsernameChars: dovecotUsernameChars}, []engine.DBSpec{{
		Driver: "checkpassword", Passdb: db, DefaultFields: tmpl,
		ResultSuccess: config.RuleReturnOK, ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue,
	}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := dovecot.NewClientServer(dovecot.ClientConfig{Engine: eng, Mechs: []sasl.Def{sasl.Defs["PLAIN"]}, Shared: dovecot.NewShared(4242)})
	t.Cleanup(func() { eng.Close() })
	return testenv.ServeUnix(t, filepath.Join(t.TempDir(), "auth-client"), testenv.Served{Serve: srv.Serve, Shutdown: srv.Shutdown, Run: srv.Run})
}
