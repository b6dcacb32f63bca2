package config

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/testenv"
)

// These tests compare authd's configuration with the real one: Dovecot's
// doveconf (Debian's dovecot-core 2.3.19.1). They skip when doveconf is not
// installed, and fail instead when AUTHD_REQUIRE_INTEGRATION=1
// (testenv.Require). The reader's own syntax cases are compared with
// doveconf in internal/conffile.

func needDoveconf(t *testing.T) string {
	t.Helper()
	testenv.Require(t, "doveconf")
	for _, p := range []string{"doveconf", "/usr/bin/doveconf", "/usr/sbin/doveconf"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("doveconf: testenv.Require found it, but not where expected")
	return ""
}

// doveconf runs doveconf on conf and returns its stdout and whether it
// accepted the file. -x expands $variables the way the running server does.
func doveconf(t *testing.T, bin, dir, conf string, args ...string) (string, bool) {
	t.Helper()
	path := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"-c", path}, args...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	return string(out), err == nil
}

// TestDovecotAgreesOnValues checks that a value reads the same in authd and
// in Dovecot: quoting, comments, continuation lines, $variables.
func TestDovecotAgreesOnValues(t *testing.T) {
	bin := needDoveconf(t)
	t.Setenv("AUTHD_TEST_VAR", "from-env")
	values := []string{
		"auth_default_realm = plain",
		"auth_default_realm=nospace",
		"auth_default_realm =   lots   of   space   ",
		`auth_default_realm = "quoted # not a comment"`,
		`auth_default_realm = 'single'`,
		`auth_default_realm = "a" "b"`,
		`auth_default_realm = "esc \" \\ \n \t x"`,
		`auth_default_realm = "unterminated # x`,
		`auth_default_realm = "`,
		`auth_default_realm = x # comment`,
		`auth_default_realm = x#ambiguous`,
		"auth_default_realm = a \\\n   b\\\nc",
		"auth_default_realm = \"a \\\nb\"",
		"auth_default_realm = a \\\n\nauth_realms = x",
		"auth_default_realm = a \\\n# c\nauth_realms = x",
		"auth_default_realm = $auth_mechanisms  x   y",
		"auth_mechanisms = plain login\nauth_default_realm = $auth_mechanisms",
		"auth_default_realm = \"$auth_mechanisms\"",
		"auth_default_realm = x\t$auth_mechanisms",
		"auth_default_realm = x \t $auth_mechanisms",
		"auth_default_realm = pre$auth_mechanisms",
		"auth_default_realm = $auth_failure_delay $auth_cache_ttl $auth_cache_size $auth_debug",
		"auth_default_realm = $first_valid_uid $default_internal_user $mail_log_prefix",
		"auth_default_realm = $ENV:AUTHD_TEST_VAR $ENV:AUTHD_TEST_UNSET_X z",
		"auth_default_realm = a\nauth_default_realm = $auth_default_realm b",
		"auth_default_realm = <realm.txt",
		"auth_default_realm = < realm.txt",
	}
	for _, v := range values {
		t.Run(v, func(t *testing.T) {
			conf := minimal + v + "\n"
			dir := t.TempDir()
			// No trailing newline: Dovecot would keep it, authd drops it.
			if err := os.WriteFile(filepath.Join(dir, "realm.txt"), []byte("from file"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, ok := doveconf(t, bin, dir, conf, "-x", "-h", "auth_default_realm")
			if !ok {
				t.Fatalf("doveconf rejected:\n%s", conf)
			}
			want := strings.TrimSuffix(out, "\n")
			c, err := LoadBytes(filepath.Join(dir, "authd.conf"), []byte(conf))
			if err != nil {
				t.Fatalf("authd rejected: %v", err)
			}
			if c.Auth.DefaultRealm != want {
				t.Errorf("authd %q, Dovecot %q", c.Auth.DefaultRealm, want)
			}
		})
	}
}

// TestDovecotAgreesOnValidity checks that authd accepts what Dovecot
// accepts and rejects what it rejects, except for the deliberate
// differences listed in authdOnly.
func TestDovecotAgreesOnValidity(t *testing.T) {
	bin := needDoveconf(t)
	snippets := []string{
		"auth_debug = y", "auth_debug = 1", "auth_debug = 0", "auth_debug = n", "auth_debug = TRUE",
		"auth_failure_delay = 2", "auth_failure_delay = 0", "auth_failure_delay = 1 hr",
		"auth_failure_delay = 2500 ms", "auth_failure_delay = 2000 ms", "auth_failure_delay = 1 w",
		"auth_cache_ttl = 99999999999 secs", "auth_cache_ttl = 4294967295 secs",
		"auth_cache_size = 10", "auth_cache_size = 100B", "auth_cache_size = 1 kiB", "auth_cache_size = 10 x",
		"auth_worker_max_count = 0", "first_valid_uid = -1", "first_valid_uid = 4294967296",
		"auth_verbose_passwords = sha1:3", "auth_verbose_passwords = sha1:0", "auth_verbose_passwords = md5",
		"auth_mechanisms = PLAIN", "auth_mechanisms =", "auth_mechanisms = bogus",
		"auth_mechanisms = anonymous\nauth_anonymous_username =",
		"auth_mechanisms_typo = plain", "frobnicate {\n}", "}", "passdb {", "foo",
		"passdb {\n driver = pam\n pass = yes\n}",
		"passdb {\n}",
		"passdb {\n driver = x\n skip = found\n}",
		"userdb {\n driver = x\n skip = found\n}",
		"userdb {\n driver = x\n deny = yes\n}",
		"passdb {\n driver = x\n result_failure = return-ok\n}\n" + minimal,
		"passdb {\n driver = x\n auth_realms = x\n}",
		"passdb {\n driver = x\n args = $driver\n}",
		"passdb {\n driver = x\n args = $auth_mechanisms\n}",
		"auth_realms = $nope", "auth_realms = $", "auth_realms = a$nope",
		"service auth {\n unix_listener x {\n  mode = 0789\n }\n}",
		"service auth {\n unix_listener x {\n  bogus = 1\n }\n}",
		"service auth {\n client_limit = 10\n user = root\n}",
		"service imap-login {\n bogus = 1\n}",
		"service imap-login {\n inet_listener imap {\n  port = 0\n }\n}",
		"service {\n user = x\n}",
		"plugin {\n anything = 1\n}", "plugin {\n x {\n }\n}", "dict {\n q = mysql:/x\n}",
		"namespace {\n prefix = x\n}", "namespace x {\n mailbox y {\n  auto = subscribe\n }\n}",
		"protocol imap {\n mail_plugins = $mail_plugins imap_quota\n}",
		"protocol imap {\n protocol pop3 {\n }\n}",
		"remote 10.0.0.0/8 {\n local 10.0.0.1 {\n }\n}",
		"local 10.0.0.1 {\n auth_mechanisms = plain\n}",
		"local 10.0.0.1 {\n disable_plaintext_auth = no\n}",
		"!include /nonexistent/x.conf", "!include_try /nonexistent/x.conf", "!include_try /nonexistent/*.conf",
		"ssl_protocols = !SSLv3", "auth_user = root", "fsync_disable = yes",
		"managesieve_max_line_length = 65536",
	}
	// authdOnly lists where authd deliberately differs from Dovecot, with
	// the reason; authd's result is the opposite of Dovecot's for these.
	fatal := "Dovecot's auth process refuses this at startup (i_fatal); doveconf does not check it"
	authdOnly := map[string]string{
		"managesieve_max_line_length = 65536":                    "doveconf here lacks Pigeonhole's settings module; authd knows its names",
		"auth_mechanisms =":                                      fatal,
		"auth_mechanisms = bogus":                                fatal,
		"auth_mechanisms = anonymous\nauth_anonymous_username =": fatal,
		"passdb {\n driver = pam\n pass = yes\n}":                fatal,
	}
	for _, s := range snippets {
		t.Run(s, func(t *testing.T) {
			conf := minimal + s + "\n"
			dir := t.TempDir()
			_, dovecotOK := doveconf(t, bin, dir, conf, "-x")
			_, err := LoadBytes(filepath.Join(dir, "authd.conf"), []byte(conf))
			authdOK := err == nil
			if reason := authdOnly[s]; reason != "" {
				if authdOK == dovecotOK {
					t.Errorf("expected a deliberate difference (%s), but both say ok=%v", reason, authdOK)
				}
				return
			}
			if authdOK != dovecotOK {
				t.Errorf("Dovecot ok=%v, authd ok=%v (%v)\n%s", dovecotOK, authdOK, err, conf)
			}
		})
	}
}

// TestDovecotCommentedExamples uncomments, one at a time, every top-level
// `#key = value` example in Debian's stock conf.d files and checks that authd
// and Dovecot agree on whether it is valid. This exercises a few hundred
// real setting names and values authd must accept and ignore.
func TestDovecotCommentedExamples(t *testing.T) {
	bin := needDoveconf(t)
	files, _ := filepath.Glob("testdata/debian/conf.d/*.conf")
	extras, _ := filepath.Glob("testdata/debian-extras/*.conf")
	files = append(files, extras...)
	example := regexp.MustCompile(`^\s*#\s*([a-z_0-9]+\s*=.*)$`)
	// Deliberate differences: authd rejects Dovecot auth features it does
	// not implement rather than silently ignoring them.
	authdRejects := regexp.MustCompile(`^auth_mechanisms = .*(gssapi|ntlm|otp|gss-spnego)`)
	n := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		depth, line := 0, 0
		for sc.Scan() {
			line++
			text := sc.Text()
			trimmed := strings.TrimSpace(text)
			if !strings.HasPrefix(trimmed, "#") {
				depth += strings.Count(trimmed, "{") - strings.Count(trimmed, "}")
				continue
			}
			m := example.FindStringSubmatch(text)
			if depth != 0 || m == nil {
				continue
			}
			snippet := m[1]
			name := filepath.Base(f) + ":" + strconv.Itoa(line)
			n++
			t.Run(name, func(t *testing.T) {
				conf := minimal + snippet + "\n"
				// -m auth: like authd, Dovecot then does not open
				// the files of other modules' `<file` settings.
				dir := t.TempDir()
				_, dovecotOK := doveconf(t, bin, dir, conf, "-x", "-m", "auth")
				_, err := LoadBytes(filepath.Join(dir, "authd.conf"), []byte(conf))
				authdOK := err == nil
				if authdRejects.MatchString(snippet) {
					if authdOK {
						t.Errorf("authd accepted %q", snippet)
					}
					return
				}
				key, _, _ := strings.Cut(snippet, "=")
				if authdOK && !dovecotOK && authdSettings[strings.TrimSpace(key)] == nil {
					// authd checks only the names of settings it
					// ignores, not their values.
					t.Logf("%q: value rejected by Dovecot, ignored by authd", snippet)
					return
				}
				if authdOK != dovecotOK {
					t.Errorf("%q: Dovecot ok=%v, authd ok=%v (%v)", snippet, dovecotOK, authdOK, err)
				}
			})
		}
		fh.Close()
	}
	if n < 100 {
		t.Errorf("only %d examples found", n)
	}
}
