package sql

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/conformance"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/internal/vars"
)

// TestSyntax24 runs the driver with Dovecot 2.4 query templates
// (Settings.Syntax): the conformance users and the injection attempts,
// with the value after the filters going into the statement.
func TestSyntax24(t *testing.T) {
	m := startMariaDB(t, testenv.MariaDBOptions{Database: "dovecotDB"})
	loadConformance(t, m)
	s := DefaultSettings()
	s.Syntax = vars.Syntax24
	for k, v := range map[string]string{
		"driver":         "mysql",
		"connect":        tcpConnect(m),
		"password_query": "SELECT username AS user, password, userdb_mail FROM cusers WHERE username = '%{user}'",
		"user_query":     "SELECT uid, gid, home, userdb_mail AS mail FROM cusers WHERE username = '%{user | username}@%{user | domain}'",
		"iterate_query":  "SELECT username AS user FROM cusers",
	} {
		if err := s.Set(k, v, "t.conf"); err != nil {
			t.Fatal(err)
		}
	}
	d, err := NewFromSettings(s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	t.Run("passdb", func(t *testing.T) { conformance.RunPassdb(t, d) })
	t.Run("userdb", func(t *testing.T) { conformance.RunUserdb(t, d) })
	ctx := ctxT(t)
	for _, name := range injections {
		if pe, err := d.LookupPass(ctx, conformance.Request(name)); pe.Outcome == backends.Found || err != nil {
			t.Errorf("%q: %v %v", name, pe.Outcome, err)
		}
	}
	if got := d.PassCacheKey().String(); got != "%{user}" {
		t.Errorf("cache key %q", got)
	}

	// A 2.3 template in a 2.4 query is not a variable there; the checks
	// of the configuration reject it, the driver only sees text.
	s.PasswordQuery = "SELECT password FROM cusers WHERE username = '%{user | nosuch}'"
	if _, err := NewFromSettings(s, nil); err == nil || !strings.Contains(err.Error(), `unknown filter "nosuch"`) {
		t.Errorf("bad query: %v", err)
	}
}
