package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/vars"
)

// TestDebian13StockConfig loads Debian 13's whole stock dovecot.conf tree
// (Dovecot 2.4.1), as an operator would point authd at it.
func TestDebian13StockConfig(t *testing.T) {
	c, err := Load("testdata/debian13/dovecot.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.Syntax != vars.Syntax24 || c.ConfigVersion != "2.4.0" {
		t.Errorf("syntax %v version %q", c.Syntax, c.ConfigVersion)
	}
	if len(c.Passdbs) != 1 || c.Passdbs[0].Driver != "pam" || c.Passdbs[0].Name != "pam" ||
		c.Passdbs[0].Pos != (Pos{File: "testdata/debian13/conf.d/auth-system.conf.ext", Line: 12}) {
		t.Errorf("passdbs %+v", c.Passdbs)
	}
	if len(c.Userdbs) != 1 || c.Userdbs[0].Driver != "passwd" {
		t.Errorf("userdbs %+v", c.Userdbs)
	}
	if c.Passdbs[0].DefaultPasswordScheme != "PLAIN" || !c.Passdbs[0].FieldsImportAll {
		t.Errorf("pam defaults %+v", c.Passdbs[0])
	}
	// 20-lmtp.conf strips the domain for LMTP.
	if got := c.Auth.ProtocolUsernameFormat["lmtp"]; got != "%{user | username | lower}" {
		t.Errorf("lmtp auth_username_format %q", got)
	}
	for _, want := range []string{"protocol imap", "protocol lmtp", "service imap-login", "namespace inbox", "mail_driver", "ssl_server_cert_file"} {
		if !slices.Contains(c.Ignored, want) {
			t.Errorf("Ignored lacks %q: %v", want, c.Ignored)
		}
	}
	for _, f := range c.Files {
		if strings.Contains(f, "private") {
			t.Errorf("read %s", f)
		}
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
}

// TestDebian13AuthIncludes includes each of Debian 13's auth-*.conf.ext
// files as they are, the way 10-auth.conf does.
func TestDebian13AuthIncludes(t *testing.T) {
	abs, err := filepath.Abs("testdata/debian13/conf.d")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(abs, "auth-*.conf.ext"))
	if len(files) != 8 {
		t.Fatalf("found %d auth files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			conf := head24 + "!include " + f + "\n"
			c, err := LoadBytes("t.conf", []byte(conf))
			if filepath.Base(f) == "auth-system.conf.ext" {
				if err != nil || len(c.Passdbs) != 1 || c.Passdbs[0].Driver != "pam" || c.Userdbs[0].Driver != "passwd" {
					t.Errorf("%v %+v", err, c)
				}
				return
			}
			// Everything else in them is commented out.
			checkErrs(t, err, []string{"no passdb configured"})
		})
	}
}

// TestDebian13AuthExamples loads the examples commented out in Debian
// 13's auth-*.conf.ext, uncommented (testdata/debian13-examples; Dovecot
// 2.4.1's doveconf accepts each), and checks what authd read.
func TestDebian13AuthExamples(t *testing.T) {
	type db struct{ name, driver string }
	tests := []struct {
		file             string
		passdbs, userdbs []db
		check            func(t *testing.T, c *Config)
	}{
		{file: "auth-deny.conf", passdbs: []db{{"deny", "passwd-file"}, {"pam", "pam"}},
			check: func(t *testing.T, c *Config) {
				if !c.Passdbs[0].Deny || settingsMap(c.Passdbs[0].DriverSettings)["passwd_file_path"] != "/etc/dovecot/deny-users" {
					t.Errorf("deny %+v", c.Passdbs[0])
				}
			}},
		{file: "auth-master.conf", passdbs: []db{{"master-passwd-file", "passwd-file"}, {"pam", "pam"}},
			check: func(t *testing.T, c *Config) {
				if !c.Passdbs[0].Master {
					t.Errorf("master %+v", c.Passdbs[0])
				}
			}},
		{file: "auth-ldap.conf", passdbs: []db{{"ldap", "ldap"}}, userdbs: []db{{"prefetch", "prefetch"}, {"ldap", "ldap"}, {"static", "static"}},
			check: func(t *testing.T, c *Config) {
				p := c.Passdbs[0]
				if settingsMap(p.DriverSettings)["passdb_ldap_filter"] != "(&(objectClass=posixAccount)(uid=%{user}))" ||
					len(p.Fields) != 5 || p.Fields[1] != (Field{Key: "password", Value: "%{ldap:userPassword}", Pos: p.Fields[1].Pos}) ||
					p.DefaultPasswordScheme != "CRYPT" || p.FieldsImportAll {
					t.Errorf("ldap passdb %+v", p)
				}
			}},
		{file: "auth-oauth2.conf", passdbs: []db{{"oauth2", "oauth2"}},
			check: func(t *testing.T, c *Config) {
				if !slices.Equal(c.Auth.Mechanisms, []string{"PLAIN", "XOAUTH2", "OAUTHBEARER"}) {
					t.Errorf("mechanisms %v", c.Auth.Mechanisms)
				}
				if got := settingsMap(c.OAuth2); got["oauth2_username_attribute"] != "email" || got["oauth2_introspection_mode"] != "get" {
					t.Errorf("oauth2 %v", got)
				}
			}},
		{file: "auth-passwdfile.conf", passdbs: []db{{"passwd-file", "passwd-file"}}, userdbs: []db{{"passwd-file", "passwd-file"}},
			check: func(t *testing.T, c *Config) {
				if c.Passdbs[0].DefaultPasswordScheme != "CRYPT" || settingsMap(c.Passdbs[0].DriverSettings)["auth_username_format"] != "%{user}" {
					t.Errorf("passdb %+v", c.Passdbs[0])
				}
				if f := c.Userdbs[0].Fields; len(f) != 2 || f[0].Key != "quota_rule:default" || f[0].Value != "*:storage=1G" {
					t.Errorf("userdb fields %+v", f)
				}
			}},
		{file: "auth-sql.conf", passdbs: []db{{"sql", "sql"}, {"static", "static"}}, userdbs: []db{{"sql", "sql"}, {"prefetch", "prefetch"}, {"static", "static"}},
			check: func(t *testing.T, c *Config) {
				s := c.Passdbs[0].SQL
				if s == nil || s.Driver != "mysql" || len(s.Hosts) != 1 || s.Hosts[0].Host != "/var/run/mysqld/mysqld.sock" {
					t.Fatalf("sql %+v", s)
				}
				if c.Passdbs[1].Skip != SkipAuthenticated || c.Userdbs[2].Skip != SkipFound {
					t.Errorf("skips %v %v", c.Passdbs[1].Skip, c.Userdbs[2].Skip)
				}
				if q := settingsMap(c.Userdbs[0].DriverSettings)["userdb_sql_iterate_query"]; q != "SELECT username AS user,domain FROM users" {
					t.Errorf("iterate_query %q", q)
				}
			}},
		{file: "auth-static.conf", passdbs: []db{{"static", "static"}, {"static2", "static"}}, userdbs: []db{{"static", "static"}}},
		{file: "auth-system.conf", passdbs: []db{{"pam", "pam"}}, userdbs: []db{{"passwd", "passwd"}, {"passwd-file", "passwd-file"}, {"static", "static"}},
			check: func(t *testing.T, c *Config) {
				if got := settingsMap(c.Passdbs[0].DriverSettings); got["passdb_pam_max_requests"] != "20" || got["passdb_pam_session"] != "yes" {
					t.Errorf("pam %v", got)
				}
				if settingsMap(c.Userdbs[2].DriverSettings)["userdb_static_allow_all_users"] != "yes" {
					t.Errorf("static %+v", c.Userdbs[2])
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Load("testdata/debian13-examples/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got := func(l []DB) (out []db) {
				for _, d := range l {
					out = append(out, db{d.Name, d.Driver})
				}
				return out
			}
			if tt.userdbs == nil {
				tt.userdbs = []db{{"", "static"}} // Dovecot's stand-in
			}
			if !slices.Equal(got(c.Passdbs), tt.passdbs) || !slices.Equal(got(c.Userdbs), tt.userdbs) {
				t.Errorf("passdbs %v userdbs %v", got(c.Passdbs), got(c.Userdbs))
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}
