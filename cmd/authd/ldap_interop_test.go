package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/testenv"
)

// The production dovecot-ldap.conf.ext, verbatim but for hosts
// (the test server's address): no dn, so authd searches anonymously, which
// the production directory allows (see the ACL below).
const ldapProdConf = `hosts = %s
sasl_bind = no
tls = no
ldap_version = 3
base = dc=%%d,dc=control,dc=isp
deref = never
scope = subtree
user_attrs = homeDirectory=home=/var/mail/%%$,uidNumber=uid,gidNumber=gid,mail=mail
user_filter = (&(cn=%%u)(status=valid))
pass_attrs = uid=cn,userPassword=password,\
  homeDirectory=userdb_home,uidNumber=userdb_uid,gidNumber=userdb_gid
pass_filter = (&(cn=%%u)(status=valid))
default_pass_scheme = PLAIN
`

// ldapServiceAccount is what most directories need on top: a service
// account that may read userPassword.
const ldapServiceAccount = "dn = cn=authd,ou=services,dc=control,dc=isp\ndnpass = svcpw\n"

// ldapProdACL: the production setup reads userPassword anonymously (a
// directory on localhost); the service account may read it too, and
// nobody else.
const ldapProdACL = `access to attrs=userPassword
  by anonymous read
  by dn.exact="cn=authd,ou=services,dc=control,dc=isp" read
  by * none
access to *
  by * read
`

const ldapTestSchema = `attributetype ( 1.3.6.1.4.1.4203.666.11.98.1 NAME 'status'
	EQUALITY caseIgnoreMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{64} SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.4203.666.11.98.10 NAME 'mailStatus'
	SUP top AUXILIARY
	MAY status )
`

func TestLDAPThroughAuthd(t *testing.T) {
	testenv.Require(t, "slapd", "slappasswd", "doveadm")
	ssha := testenv.Slappasswd(t, "-s", "sshapw")
	crypt := testenv.Slappasswd(t, "-h", "{CRYPT}", "-c", "$6$rounds=1000$%.16s", "-s", "cryptpw")
	svc := testenv.Slappasswd(t, "-s", "svcpw")
	var ldif strings.Builder
	entry := func(dn string, kv ...string) {
		fmt.Fprintf(&ldif, "dn: %s\n", dn)
		for i := 0; i+1 < len(kv); i += 2 {
			fmt.Fprintf(&ldif, "%s: %s\n", kv[i], kv[i+1])
		}
		ldif.WriteString("\n")
	}
	const suffix = "dc=control,dc=isp"
	entry(suffix, "objectClass", "dcObject", "objectClass", "organization", "o", "control", "dc", "control")
	entry("ou=services,"+suffix, "objectClass", "organizationalUnit", "ou", "services")
	entry("cn=authd,ou=services,"+suffix, "objectClass", "organizationalRole", "objectClass", "simpleSecurityObject", "cn", "authd", "userPassword", svc)
	entry("dc=example.com,"+suffix, "objectClass", "domain", "dc", "example.com")
	users := []struct{ name, stored, status string }{
		{"ssha", ssha, "valid"},
		{"crypt", crypt, "valid"},
		{"plain", "{PLAIN}plainpw", "valid"},
		{"bare", "barepw", "valid"}, // no {scheme}: default_pass_scheme = PLAIN
		{"locked", "{PLAIN}lockedpw", "locked"},
	}
	for i, u := range users {
		entry("cn="+u.name+"@example.com,dc=example.com,"+suffix,
			"objectClass", "inetOrgPerson", "objectClass", "posixAccount", "objectClass", "mailStatus",
			"cn", u.name+"@example.com", "sn", u.name, "uid", u.name,
			"uidNumber", fmt.Sprint(2001+i), "gidNumber", fmt.Sprint(3001+i),
			"homeDirectory", "example.com/"+u.name, "mail", u.name+"@example.com",
			"userPassword", u.stored, "status", u.status)
	}
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{Suffix: suffix, Schema: ldapTestSchema, ACL: ldapProdACL,
		LDIF: ldif.String(), Config: "index cn,status eq"})
	hostport := strings.TrimPrefix(sl.URI, "ldap://")

	conf := `
base_dir = $DIR/run
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {
  driver = ldap
  args = $DIR/dovecot-ldap.conf.ext
}
userdb {
  driver = ldap
  args = $DIR/dovecot-ldap.conf.ext
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
	for variant, extra := range map[string]string{"verbatim": "", "service-account": ldapServiceAccount} {
		t.Run(variant, func(t *testing.T) {
			checkLDAPProd(t, conf, extra+fmt.Sprintf(ldapProdConf, hostport))
		})
	}
}

// checkLDAPProd runs authd with the production file and checks it through
// doveadm: every scheme logs in, wrong passwords, unknown and locked users
// are refused, and doveadm user shows each user's home, uid and gid.
func checkLDAPProd(t *testing.T, conf, ldapConf string) {
	p := startAuthd(t, conf, "run/auth-client", map[string]string{
		"dovecot-ldap.conf.ext": ldapConf,
	})
	da := testenv.NewDoveadm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(args ...string) (string, int) {
		t.Helper()
		out, code, err := da.Run(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out, code
	}
	client, userdb := p.path("run/auth-client"), p.path("run/auth-userdb")
	for _, tc := range []struct {
		user, pass string
		want       int
	}{
		{"ssha@example.com", "sshapw", 0},
		{"crypt@example.com", "cryptpw", 0},
		{"plain@example.com", "plainpw", 0},
		{"bare@example.com", "barepw", 0},
		{"ssha@example.com", "wrong", 77},
		{"locked@example.com", "lockedpw", 77}, // status is not valid
		{"nosuch@example.com", "x", 77},
	} {
		if out, code := run("auth", "test", "-a", client, tc.user, tc.pass); code != tc.want {
			t.Errorf("auth test %s/%s: rc %d, want %d\n%s", tc.user, tc.pass, code, tc.want, out)
		}
	}
	for i, name := range []string{"ssha", "crypt", "plain", "bare"} {
		out, code := run("user", "-a", userdb, name+"@example.com")
		if code != 0 {
			t.Errorf("doveadm user %s: rc %d\n%s", name, code, out)
			continue
		}
		mustHaveFields(t, out, map[string]string{
			"home": "/var/mail/example.com/" + name,
			"uid":  fmt.Sprint(2001 + i),
			"gid":  fmt.Sprint(3001 + i),
			"mail": name + "@example.com",
		})
	}
	if out, code := run("user", "-a", userdb, "locked@example.com"); code != 67 {
		t.Errorf("doveadm user for a locked user: rc %d\n%s", code, out)
	}
}
