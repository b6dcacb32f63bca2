package ldap

import (
	"context"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/schemes"
)

// TestSlapd24 runs the driver configured the Dovecot 2.4 way (New24):
// ldap_* settings, fields { } reading the entry as %{ldap:attr}, and an
// authentication bind whose DN is a 2.4 template.
func TestSlapd24(t *testing.T) {
	dir := startDirectory(t, dirOptions{})
	ctx := context.Background()
	base := []Setting{
		{Key: "ldap_uris", Value: dir.URI, Origin: "t.conf:1"},
		{Key: "ldap_auth_dn", Value: serviceDN, Origin: "t.conf:2"},
		{Key: "ldap_auth_dn_password", Value: servicePW, Origin: "t.conf:3"},
		{Key: "ldap_base", Value: "ou=people,dc=example.org," + suffix, Origin: "t.conf:4"},
		{Key: "passdb_ldap_filter", Value: "(&(objectClass=posixAccount)(mail=%{user}))", Origin: "t.conf:5"},
		{Key: "userdb_ldap_filter", Value: "(&(objectClass=posixAccount)(mail=%{user}))", Origin: "t.conf:6"},
	}
	d, err := New24(Settings24{
		Name: "passdb ldap", Settings: base, DefaultScheme: "PLAIN",
		PassFields: [][2]string{
			{"user", "%{ldap:mail}"}, {"password", "%{ldap:userPassword}"},
			{"userdb_home", "/var/vmail/%{ldap:homeDirectory | lower}"}, {"absent", "%{ldap:description}"},
			{"dn", "%{ldap:dn}"},
		},
		UserFields: [][2]string{{"home", "%{ldap:homeDirectory}"}, {"uid", "%{ldap:uidNumber}"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	u := dir.prod["plain"]
	pe, err := d.LookupPass(ctx, req(u.name()))
	if err != nil || pe.Outcome != backends.Found || !pe.HasPassword {
		t.Fatalf("lookup: %v %v %v", pe.Outcome, err, pe.HasPassword)
	}
	if ok, _ := schemes.Verify(pe.Scheme, pe.Data, []byte(u.plain), u.name()); !ok {
		t.Errorf("{%s} does not verify", pe.Scheme)
	}
	if v, _ := pe.Fields.Get("userdb_home"); v != "/var/vmail/example.org/plain" {
		t.Errorf("userdb_home %q in %s", v, pe.Fields)
	}
	if v, _ := pe.Fields.Get("dn"); !strings.HasPrefix(v, "uid=plain,ou=people") {
		t.Errorf("dn %q", v)
	}
	if pe.Fields.Has("absent") {
		// Dovecot 2.4 fails the lookup on a missing attribute; authd
		// leaves the field out.
		t.Errorf("a field of a missing attribute: %s", pe.Fields)
	}
	ua, err := d.LookupUser(ctx, req(u.name()))
	if err != nil || ua.Outcome != backends.Found {
		t.Fatalf("userdb: %v %v", ua.Outcome, err)
	}
	if v, _ := ua.Fields.Get("home"); v != "example.org/plain" {
		t.Errorf("home %q", v)
	}

	bind, err := New24(Settings24{
		Name: "passdb ldap",
		Settings: append(base[:4:4],
			Setting{Key: "passdb_ldap_bind", Value: "yes", Origin: "t.conf:7"},
			Setting{Key: "passdb_ldap_bind_userdn", Value: "uid=%{user | username},ou=people,dc=example.org," + suffix, Origin: "t.conf:8"}),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bind.Close() })
	// slapd checks the bind password itself: a hash it knows (SSHA).
	s := dir.prod["ssha"]
	if ans, err := bind.VerifyPass(ctx, req(s.name()), []byte(s.plain)); ans.Outcome != backends.Found || err != nil {
		t.Errorf("bind right password: %v %v", ans.Outcome, err)
	}
	if ans, err := bind.VerifyPass(ctx, req(s.name()), []byte("wrong")); ans.Outcome != backends.Mismatch || err != nil {
		t.Errorf("bind wrong password: %v %v", ans.Outcome, err)
	}
}

// TestNew24Errors: 2.4 settings are checked like the file's, with their
// position.
func TestNew24Errors(t *testing.T) {
	_, err := New24(Settings24{Name: "passdb ldap", Settings: []Setting{
		{Key: "ldap_uris", Value: "ldap://127.0.0.1", Origin: "t.conf:1"},
		{Key: "ldap_base", Value: "dc=x", Origin: "t.conf:2"},
		{Key: "passdb_ldap_filter", Value: "(uid=%{user | nosuch})", Origin: "t.conf:3"},
		{Key: "ldap_starttls", Value: "maybe", Origin: "t.conf:4"},
		{Key: "ldap_bogus", Value: "x", Origin: "t.conf:5"},
	}, PassFields: [][2]string{{"home", "%{ldap:home dir}"}}}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"t.conf:3", `unknown filter "nosuch"`, "t.conf:4: ldap_starttls", "t.conf:5: ldap_bogus: not an LDAP setting", "field home"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
