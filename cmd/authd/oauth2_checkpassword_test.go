package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/testenv"
)

// The oauth2 and checkpassword drivers through the daemon: built from
// authd.conf by the driver maps, serving the client and userdb sockets.

const cpScript = `#!/bin/sh
user=$(head -c 600 <&3 | tr '\0' '\n' | sed -n 1p)
case "$user" in
cp@example.com) ;;
*) [ -n "$AUTHORIZED" ] && exit 3; exit 1 ;;
esac
[ -n "$AUTHORIZED" ] && { AUTHORIZED=2; export AUTHORIZED; }
USER=$user HOME=/home/cp userdb_uid=2000 userdb_gid=2000 EXTRA="userdb_uid userdb_gid"
export USER HOME userdb_uid userdb_gid EXTRA
exec "$@"
`

func TestOAuth2AndCheckpasswordDrivers(t *testing.T) {
	testenv.Require(t, "sh", "head", "tr", "sed")
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-alice" {
			_ = json.NewEncoder(w).Encode(map[string]any{"active": false})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "email": "alice@example.com"})
	}))
	defer idp.Close()
	conf := `
base_dir = $DIR/run
auth_mechanisms = plain xoauth2 oauthbearer
auth_failure_delay = 0
passdb {
  driver = oauth2
  args = $DIR/dovecot-oauth2.conf.ext
}
passdb {
  driver = checkpassword
  args = max_children=4 timeout=20s $DIR/checkpassword.sh
}
userdb {
  driver = checkpassword
  args = max_children=4 timeout=20s $DIR/checkpassword.sh
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  unix_listener auth-userdb {
    mode = 0666
  }
}
`
	p := startAuthd(t, conf, "run/auth-client", map[string]string{
		"dovecot-oauth2.conf.ext": "introspection_url = " + idp.URL + "/introspect\n",
		"checkpassword.sh":        cpScript,
	})
	if err := os.Chmod(p.path("checkpassword.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	sock := p.path("run/auth-client")
	if out, code := authdTest(t, "-a", sock, "alice@example.com", "tok-alice"); code != 0 {
		t.Errorf("token as PLAIN password: exit %d\n%s", code, out)
	}
	if out, code := authdTest(t, "-a", sock, "alice@example.com", "tok-wrong"); code != 77 {
		t.Errorf("wrong token: exit %d\n%s", code, out)
	}
	// The oauth2 passdb refuses cp's password as a token; the
	// checkpassword passdb then accepts it.
	if out, code := authdTest(t, "-a", sock, "cp@example.com", "anything"); code != 0 {
		t.Errorf("checkpassword user: exit %d\n%s", code, out)
	}
	out, code := authdCmd(t, "user", "-a", p.path("run/auth-userdb"), "cp@example.com")
	if code != 0 {
		t.Fatalf("userdb lookup: exit %d\n%s", code, out)
	}
	mustHaveFields(t, out, map[string]string{"uid": "2000", "gid": "2000", "home": "/home/cp"})
	if out, code := authdCmd(t, "user", "-a", p.path("run/auth-userdb"), "nobody@example.com"); code != 67 {
		t.Errorf("unknown user: exit %d\n%s", code, out)
	}
	if strings.Contains(p.stderr.String(), "tok-alice") {
		t.Errorf("the token reached the log:\n%s", p.stderr.String())
	}
}
