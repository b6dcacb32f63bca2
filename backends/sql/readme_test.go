package sql

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEDriverFiles: every dovecot-sql.conf.ext in README.md parses,
// its connect string is valid for its driver, and its queries compile.
// (The drivers are not built: the certificate files the examples name
// live on the reader's machine.)
func TestREADMEDriverFiles(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	drivers := map[string]bool{}
	for _, block := range strings.Split(string(data), "```") {
		body := strings.TrimPrefix(block, "\n")
		if !strings.HasPrefix(body, "# /etc/dovecot/dovecot-sql.conf.ext") {
			continue
		}
		s, err := ParseConf("README", []byte(body))
		if err != nil {
			t.Errorf("%v\n%s", err, body)
			continue
		}
		dl, err := s.checkDriver()
		if err != nil {
			t.Fatal(err)
		}
		drivers[s.Driver] = true
		switch dl {
		case dPgSQL:
			_, err = parsePgConnect(s.Connect)
		case dMySQL:
			_, err = parseConnect(s.Connect)
		}
		if err != nil {
			t.Errorf("%s connect: %v", s.Driver, err)
		}
		for _, q := range []string{s.PasswordQuery, s.UserQuery, s.IterateQuery} {
			if _, err := compileQueryFor(dl, "q", q); err != nil {
				t.Errorf("%s: %v", s.Driver, err)
			}
		}
	}
	if !drivers["mysql"] || !drivers["pgsql"] || !drivers["sqlite"] {
		t.Errorf("README examples for drivers %v, want mysql, pgsql and sqlite", drivers)
	}
}
