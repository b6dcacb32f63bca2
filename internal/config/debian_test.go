package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDebianStockConfig loads Debian's whole stock dovecot.conf tree, as an
// operator would point authd at it.
func TestDebianStockConfig(t *testing.T) {
	for _, path := range []string{"testdata/debian/dovecot.conf", "testdata/debian-full.conf"} {
		t.Run(path, func(t *testing.T) {
			c, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Passdbs) != 1 || c.Passdbs[0].Driver != "pam" ||
				c.Passdbs[0].Pos != (Pos{File: "testdata/debian/conf.d/auth-system.conf.ext", Line: 10}) {
				t.Errorf("passdbs %+v", c.Passdbs)
			}
			if len(c.Userdbs) != 1 || c.Userdbs[0].Driver != "passwd" {
				t.Errorf("userdbs %+v", c.Userdbs)
			}
			if got := strings.Join(c.Auth.Mechanisms, " "); got != "PLAIN" {
				t.Errorf("mechanisms %q", got)
			}
			for _, want := range []string{
				"mail_location", "mail_privileged_group", "namespace inbox", "protocol imap",
				"protocol !indexer-worker", "service imap-login", "service auth-worker",
				"ssl", "ssl_cert", "ssl_key", "ssl_dh", "plugin", "dict",
			} {
				if !slices.Contains(c.Ignored, want) {
					t.Errorf("Ignored lacks %q: %v", want, c.Ignored)
				}
			}
			if !slices.IsSorted(c.Ignored) {
				t.Errorf("Ignored not sorted: %v", c.Ignored)
			}
			// ssl_cert = </etc/dovecot/private/dovecot.pem is not read.
			for _, f := range c.Files {
				if strings.Contains(f, "private") || strings.HasSuffix(f, ".pem") {
					t.Errorf("read %s", f)
				}
			}
			for _, want := range []string{"conf.d/10-auth.conf", "conf.d/auth-system.conf.ext", "conf.d/90-quota.conf"} {
				if !slices.Contains(c.Files, filepath.Join("testdata/debian", want)) {
					t.Errorf("Files lacks %s: %v", want, c.Files)
				}
			}
			if len(c.Warnings) != 0 {
				t.Errorf("warnings: %v", c.Warnings)
			}
		})
	}
}

// TestDebianAuthIncludes loads each of Debian's auth-*.conf.ext files the
// way 10-auth.conf suggests (`!include auth-sql.conf.ext` …).
func TestDebianAuthIncludes(t *testing.T) {
	abs, err := filepath.Abs("testdata/debian/conf.d")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		files   []string
		passdbs []string // driver names in order
		errs    []string
	}{
		{files: []string{"auth-sql"}, passdbs: []string{"sql"}},
		{files: []string{"auth-ldap"}, passdbs: []string{"ldap"}},
		{files: []string{"auth-passwdfile"}, passdbs: []string{"passwd-file"}},
		{files: []string{"auth-checkpassword"}, passdbs: []string{"checkpassword"}},
		{files: []string{"auth-dict"}, passdbs: []string{"dict"}},
		{files: []string{"auth-deny", "auth-master", "auth-system"}, passdbs: []string{"passwd-file", "passwd-file", "pam"}},
		// Everything in auth-static.conf.ext is commented out.
		{files: []string{"auth-static"}, errs: []string{"no passdb configured"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.files, "+"), func(t *testing.T) {
			var conf strings.Builder
			for _, f := range tt.files {
				conf.WriteString("!include " + filepath.Join(abs, f+".conf.ext") + "\n")
			}
			c, err := LoadBytes("t.conf", []byte(conf.String()))
			checkErrs(t, err, tt.errs)
			if err != nil {
				return
			}
			var got []string
			for _, p := range c.Passdbs {
				got = append(got, p.Driver)
			}
			if !slices.Equal(got, tt.passdbs) {
				t.Errorf("passdbs %v, want %v", got, tt.passdbs)
			}
		})
	}
}
