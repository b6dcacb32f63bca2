package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends/pam"
	"github.com/authd-project/authd/internal/config"
)

// Every authd.conf example in README.md loads: the syntax and settings are
// checked by the same loader authd uses (drivers are not built: their
// files live on the reader's machine, not here).
func TestREADMEConfigExamples(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	n, n24 := 0, 0
	for _, body := range fencedBlocks(string(data)) {
		v24 := strings.Contains(body, "\ndovecot_config_version = ")
		if !strings.Contains(body, "passdb {") && !strings.Contains(body, "driver = sql\n") && !v24 {
			continue
		}
		if strings.HasPrefix(body, "# /etc/dovecot/dovecot-") || strings.HasPrefix(body, "# dovecot.conf") {
			continue // a driver's own file or Dovecot's config: not authd.conf
		}
		n++
		path := filepath.Join(t.TempDir(), "authd.conf")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(path)
		if err != nil {
			t.Errorf("README example %d does not load: %v\n%s", n, err, body)
			continue
		}
		if v24 {
			n24++
			if len(c.Warnings) > 0 {
				t.Errorf("README 2.4 example %d loads with warnings %v", n, c.Warnings)
			}
		}
	}
	if n24 != 6 {
		t.Errorf("found %d Dovecot 2.4 examples in README.md, want 6", n24)
	}
	if n < 4 {
		t.Fatalf("found only %d authd.conf examples in README.md", n)
	}
}

// Every authd configuration snippet in docs/ loads too. Snippets of one
// section (grpc { }, metrics { }) get a minimal passdb, which a whole
// config needs.
func TestDocsConfigExamples(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range fencedBlocks(string(data)) {
			authd := strings.Contains(body, "passdb {") || strings.Contains(body, "grpc {") ||
				strings.Contains(body, "metrics {") || strings.Contains(body, "penalty {") || strings.Contains(body, "hash_budget {") || strings.Contains(body, "auth_cache_size") ||
				strings.Contains(body, "auth_policy_server_url") || strings.Contains(body, "redis {")
			dovecotSide := strings.Contains(body, "auth_socket_path") || strings.Contains(body, "smtpd_sasl") ||
				strings.Contains(body, "executable =")
			if !authd || dovecotSide {
				continue
			}
			n++
			if !strings.Contains(body, "passdb {") {
				body += "passdb {\n  driver = static\n  args = nopassword=y\n}\n"
			}
			path := filepath.Join(t.TempDir(), "authd.conf")
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := config.Load(path); err != nil {
				t.Errorf("%s: example does not load: %v\n%s", filepath.Base(f), err, body)
			}
		}
	}
	if n == 0 {
		t.Fatal("no configuration examples found in docs/")
	}
	t.Logf("%d examples in docs/ load", n)
}

// fencedBlocks returns the bodies of ``` code blocks without a language.
func fencedBlocks(md string) []string {
	var out []string
	var cur []string
	in, plain := false, false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			if in {
				if plain {
					out = append(out, strings.Join(cur, "\n")+"\n")
				}
				in, cur = false, nil
				continue
			}
			in, plain = true, line == "```"
			continue
		}
		if in {
			cur = append(cur, line)
		}
	}
	return out
}

// Every example in deploy/examples passes `authd check`, drivers
// included: the files they name (/etc/authd/…) are taken from
// deploy/examples, and PAM becomes shadow when this binary has no PAM.
func TestDeployExamplesCheck(t *testing.T) {
	examples, err := filepath.Abs("../../deploy/examples")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(examples, "*.conf"))
	if len(files) < 4 {
		t.Fatalf("only %d example configs", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			body := strings.ReplaceAll(string(data), "/etc/authd/", examples+"/")
			if !pam.Available {
				body = strings.ReplaceAll(body, "driver = pam", "driver = shadow")
			}
			path := filepath.Join(t.TempDir(), "authd.conf")
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errb strings.Builder
			if code := run([]string{"check", "-c", path}, nil, &out, &errb); code != 0 {
				t.Fatalf("authd check: exit %d\n%s", code, errb.String())
			}
		})
	}
}
