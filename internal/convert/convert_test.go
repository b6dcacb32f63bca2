package convert

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/config"
)

// write puts files (name -> text, $DIR replaced) into a new directory.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.ReplaceAll(text, "$DIR", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// noteBefore checks that line is in out, preceded (among the comment
// lines right above it) by a convert note containing note.
func noteBefore(t *testing.T, out, note, line string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != line {
			continue
		}
		for j := i - 1; j >= 0 && strings.HasPrefix(strings.TrimSpace(lines[j]), "#"); j-- {
			if strings.Contains(lines[j], NotePrefix) && strings.Contains(lines[j], note) {
				return
			}
		}
		t.Errorf("no note %q before %q in:\n%s", note, line, out)
		return
	}
	t.Errorf("no line %q in:\n%s", line, out)
}

// TestConvertNotes: a 2.3 configuration with an include, a SQL and an LDAP
// file becomes 2.4, with a note wherever the text or a default changed.
func TestConvertNotes(t *testing.T) {
	dir := write(t, map[string]string{
		"main.conf": "auth_username_format = %Ln\ndisable_plaintext_auth = no\nmail_location = maildir:~/Maildir\n!include blocks.conf\n",
		"blocks.conf": `passdb {
  driver = passwd-file
  args = scheme=PLAIN /etc/x/%d/passwd
}
passdb {
  driver = sql
  args = $DIR/sql.conf.ext
}
passdb {
  driver = ldap
  args = $DIR/ldap.conf.ext
}
userdb {
  driver = sql
  args = $DIR/sql.conf.ext
  default_fields = home=/home/%n quota_rule:protected=*:storage=1G
}
`,
		"sql.conf.ext":  "driver = pgsql\nconnect = host=/run/pg host=db2 dbname=mail user=u password='a b'\n",
		"ldap.conf.ext": "uris = ldap://ldap.example.com\nbase = dc=%d\n",
	})
	b, err := File(filepath.Join(dir, "main.conf"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	if !strings.HasPrefix(out, "dovecot_config_version = 2.4.1\n") {
		t.Errorf("no version first:\n%s", out)
	}
	noteBefore(t, out, "Dovecot 2.3 wrote %Ln", "auth_username_format = %{user | username | lower}")
	noteBefore(t, out, "Dovecot 2.3 wrote /etc/x/%d/passwd", "passwd_file_path = /etc/x/%{user | domain}/passwd")
	noteBefore(t, out, "2.4 refuses weak ones", "auth_allow_weak_schemes = yes")
	noteBefore(t, out, "Dovecot 2.3's default for SQL (MD5)", "default_password_scheme = MD5")
	noteBefore(t, out, "Dovecot 2.3's default password_query", `passdb_sql_query = "SELECT username, domain, password FROM users WHERE username = '%{user | username}' AND domain = '%{user | domain}'"`)
	noteBefore(t, out, "Dovecot 2.3's default user_query", `userdb_sql_query = "SELECT home, uid, gid FROM users WHERE username = '%{user | username}' AND domain = '%{user | domain}'"`)
	noteBefore(t, out, "Dovecot 2.3's default pass_filter", "passdb_ldap_filter = (&(objectClass=posixAccount)(uid=%{user}))")
	noteBefore(t, out, "Dovecot 2.3 wrote dc=%d", "ldap_base = dc=%{user | domain}")
	noteBefore(t, out, "Dovecot 2.3's default pass_attrs", "user = %{ldap:uid}")
	noteBefore(t, out, "Dovecot 2.3 wrote /home/%n", "home:default = /home/%{user | username}")
	for _, want := range []string{"# " + NotePrefix + "only the auth part is converted; not written (Dovecot's other services): mail_location.",
		"auth_allow_cleartext = yes", "quota_rule:default = *:storage=1G",
		"pgsql /run/pg {", "pgsql db2 {", "password = a b", "password = %{ldap:userPassword}"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// File loads its result back; check what it means.
	c, err := config.LoadBytes("out.conf", b)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Passdbs) != 3 || c.Passdbs[0].DefaultPasswordScheme != "PLAIN" || c.Passdbs[1].SQL == nil ||
		len(c.Passdbs[1].SQL.Hosts) != 2 || c.Auth.UsernameFormat != "%{user | username | lower}" {
		t.Errorf("loaded back: %+v", c)
	}
}

// TestConvertProblems: everything without a 2.4 equivalent is listed in
// one run, each with its file:line, and nothing is written.
func TestConvertProblems(t *testing.T) {
	dir := write(t, map[string]string{
		"main.conf": `auth_username_format = %2.1u
passdb {
  driver = shadow
}
userdb {
  driver = ldap
  args = $DIR/ldap.conf.ext
  override_fields = home=%{if;%d;eq;x;/a;/b}
}
passdb {
  driver = sql
  args = $DIR/sql.conf.ext
}
`,
		"ldap.conf.ext": "uris = ldap://x\nauthd_pool_size = 4\nuser_attrs = @mailHost=host\n",
		"sql.conf.ext":  "driver = mysql\nconnect = host=db dbname=m nosuchword=1\n",
	})
	_, err := File(filepath.Join(dir, "main.conf"), Options{})
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("want Problems, got %v", err)
	}
	for _, want := range []string{
		`main.conf:1: template "%2.1u" has no Dovecot 2.4 equivalent`,
		"main.conf:2: passdb { driver = shadow }: Dovecot 2.4 has no shadow driver",
		`main.conf:5: template "%{if;%d;eq;x;/a;/b}" has no Dovecot 2.4 equivalent`,
		"ldap.conf.ext:2: authd_pool_size: has no Dovecot 2.4 equivalent",
		`ldap.conf.ext:3: user_attrs: attrs entry "@mailHost=host": @field=attribute (DN pointer) is not supported`,
		"sql.conf.ext:2: connect: nosuchword= has no Dovecot 2.4 equivalent for mysql",
	} {
		found := false
		for _, l := range p {
			found = found || strings.Contains(l, want)
		}
		if !found {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if len(p) != 6 {
		t.Errorf("want 6 problems, got %d:\n%v", len(p), err)
	}
	if strings.Contains(err.Error(), "password") {
		t.Errorf("a secret in the error: %v", err)
	}

	// Bad 2.3 input is the loader's error; a 2.4 file is refused.
	bad := write(t, map[string]string{"a.conf": "passdb {\n  driver = passwd-file\n  args = /x\n  bogus = 1\n}\n",
		"b.conf": "dovecot_config_version = 2.4.1\npassdb static {\n  password = x\n}\n"})
	if _, err := File(filepath.Join(bad, "a.conf"), Options{}); err == nil || !strings.Contains(err.Error(), "a.conf:4") {
		t.Errorf("bad 2.3 file: %v", err)
	}
	if _, err := File(filepath.Join(bad, "b.conf"), Options{}); err == nil || !strings.Contains(err.Error(), "already in Dovecot 2.4") {
		t.Errorf("2.4 file: %v", err)
	}
}
