package ldap

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends/conformance"
	"github.com/authd-project/authd/internal/testenv"
)

// The test directory: one slapd with suffix dc=control,dc=isp holding
//
//	cn=authd,ou=services              the service account (read on userPassword)
//	dc=example.com / ou=people        conformance.Users, uid=<name>
//	dc=example.org / ou=people        the production-config users, cn=<name>@example.org
//	dc=example.org / ou=hidden        users whose userPassword the service account cannot read
const (
	suffix    = "dc=control,dc=isp"
	serviceDN = "cn=authd,ou=services," + suffix
	servicePW = "svc secret"
	confBase  = "ou=people,dc=example.com," + suffix
)

// testSchema adds what the production config filters on: a status
// attribute, carried by an auxiliary class so it can join inetOrgPerson
// and posixAccount entries. 1.3.6.1.4.1.4203.666 is OpenLDAP's arc for
// experiments.
const testSchema = `attributetype ( 1.3.6.1.4.1.4203.666.11.99.1 NAME 'status'
	DESC 'authd test: account status'
	EQUALITY caseIgnoreMatch
	SUBSTR caseIgnoreSubstringsMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{64} SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.4203.666.11.99.2 NAME 'mailLocation'
	DESC 'authd test: userdb mail'
	EQUALITY caseExactMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{1024} SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.4203.666.11.99.3 NAME 'authdGroup'
	DESC 'authd test: multi-valued gid'
	EQUALITY integerMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 )
objectclass ( 1.3.6.1.4.1.4203.666.11.99.10 NAME 'authdAccount'
	DESC 'authd test: auxiliary account data'
	SUP top AUXILIARY
	MAY ( status $ mailLocation $ authdGroup ) )
`

// testACL: the service account reads every userPassword except those
// under ou=hidden, which only a bind can use. The SASL EXTERNAL identities
// of this process (ldapi peer credentials) and of the TLS client
// certificate TestTLS issues (cn=authd-client) get the same read access.
func testACL() string {
	peer := fmt.Sprintf("gidNumber=%d+uidNumber=%d,cn=peercred,cn=external,cn=auth", os.Getgid(), os.Getuid())
	return fmt.Sprintf(`access to dn.subtree="ou=hidden,dc=example.org,%[1]s" attrs=userPassword
  by anonymous auth
  by * none
access to attrs=userPassword
  by self write
  by anonymous auth
  by dn.exact="%[2]s" read
  by dn.exact="%[3]s" read
  by dn.exact="cn=authd-client" read
  by * none
access to *
  by * read
`, suffix, serviceDN, peer)
}

// ldif builds LDIF records; values that are not LDIF SAFE-STRINGs
// (RFC 2849) are base64-encoded.
type ldif struct{ strings.Builder }

func (l *ldif) attr(name, value string) {
	safe := value == "" || value[0] != ' ' && value[0] != ':' && value[0] != '<' && value[len(value)-1] != ' '
	for i := 0; i < len(value) && safe; i++ {
		if c := value[i]; c == 0 || c == '\n' || c == '\r' || c >= 0x80 {
			safe = false
		}
	}
	if safe {
		fmt.Fprintf(l, "%s: %s\n", name, value)
	} else {
		fmt.Fprintf(l, "%s:: %s\n", name, base64.StdEncoding.EncodeToString([]byte(value)))
	}
}

func (l *ldif) entry(dn string, kv ...string) {
	l.attr("dn", dn)
	for i := 0; i+1 < len(kv); i += 2 {
		l.attr(kv[i], kv[i+1])
	}
	l.WriteString("\n")
}

// prodUser is a user of the production-config tree.
type prodUser struct {
	uid, stored, plain, status string
	hidden                     bool
}

func (u prodUser) name() string { return u.uid + "@example.org" }
func (u prodUser) dn() string {
	ou := "people"
	if u.hidden {
		ou = "hidden"
	}
	return "uid=" + EscapeDN(u.uid) + ",ou=" + ou + ",dc=example.org," + suffix
}

// directory is the shared test server and its users.
type directory struct {
	*testenv.Slapd
	prod map[string]prodUser // by uid
}

// dirOptions vary the test server.
type dirOptions struct {
	// extra is added to each conformance user (e.g. a description telling
	// two servers apart).
	extra map[string]string
	// tls adds an ldaps:// listener and StartTLS with a certificate from
	// this CA.
	tls *testenv.CA
}

// startDirectory starts slapd with the test tree.
func startDirectory(t testing.TB, opts dirOptions) *directory {
	t.Helper()
	testenv.Require(t, "slapd", "slapadd", "slappasswd")
	ssha := testenv.Slappasswd(t, "-s", "sshapw")
	// Cheap rounds: the default costs milliseconds per check (docs/testing.md §3).
	crypt := testenv.Slappasswd(t, "-h", "{CRYPT}", "-c", "$6$rounds=1000$%.16s", "-s", "cryptpw")
	secret := testenv.Slappasswd(t, "-s", "secretpw")
	svc := testenv.Slappasswd(t, "-s", servicePW)

	dir := &directory{prod: map[string]prodUser{}}
	for _, u := range []prodUser{
		{uid: "ssha", stored: ssha, plain: "sshapw", status: "valid"},
		{uid: "crypt", stored: crypt, plain: "cryptpw", status: "valid"},
		{uid: "plain", stored: "{PLAIN}plainpw", plain: "plainpw", status: "valid"},
		{uid: "bare", stored: "barepw", plain: "barepw", status: "valid"}, // default_pass_scheme
		{uid: "locked", stored: "{PLAIN}lockedpw", plain: "lockedpw", status: "locked"},
		{uid: "multi", stored: "{PLAIN}multipw", plain: "multipw", status: "valid"},
		{uid: "secret", stored: secret, plain: "secretpw", status: "valid", hidden: true},
	} {
		dir.prod[u.uid] = u
	}

	var l ldif
	l.entry(suffix, "objectClass", "dcObject", "objectClass", "organization", "o", "control", "dc", "control")
	l.entry("ou=services,"+suffix, "objectClass", "organizationalUnit", "ou", "services")
	l.entry(serviceDN, "objectClass", "organizationalRole", "objectClass", "simpleSecurityObject", "cn", "authd", "userPassword", svc)
	for _, dom := range []string{"example.com", "example.org"} {
		l.entry("dc="+dom+","+suffix, "objectClass", "domain", "dc", dom)
		l.entry("ou=people,dc="+dom+","+suffix, "objectClass", "organizationalUnit", "ou", "people")
	}
	l.entry("ou=hidden,dc=example.org,"+suffix, "objectClass", "organizationalUnit", "ou", "hidden")

	for _, u := range conformance.Users {
		// The odd names (o'brien@…, star*(x)@…) go into the DN through
		// EscapeDN; the uid value itself is stored as is.
		kv := []string{
			"objectClass", "inetOrgPerson", "objectClass", "posixAccount", "objectClass", "authdAccount",
			"uid", u.Name, "cn", u.Name, "sn", "conformance",
			"uidNumber", u.UID, "gidNumber", u.GID, "homeDirectory", u.Home,
			"userPassword", u.Password,
		}
		if m, ok := u.Extra["userdb_mail"]; ok {
			kv = append(kv, "mailLocation", m)
		}
		for k, v := range opts.extra {
			kv = append(kv, k, v)
		}
		l.entry("uid="+EscapeDN(u.Name)+","+confBase, kv...)
	}
	n := 2000
	for _, uid := range []string{"ssha", "crypt", "plain", "bare", "locked", "multi", "secret"} {
		u := dir.prod[uid]
		n++
		kv := []string{
			"objectClass", "inetOrgPerson", "objectClass", "posixAccount", "objectClass", "authdAccount",
			"uid", u.uid, "cn", u.name(), "sn", u.uid,
			"uidNumber", fmt.Sprint(n), "gidNumber", fmt.Sprint(n + 1000), "homeDirectory", "example.org/" + u.uid,
			"userPassword", u.stored, "status", u.status, "mail", u.name(),
		}
		if uid == "multi" {
			kv = append(kv, "mail", "second@example.org", "authdGroup", "10", "authdGroup", "20")
		}
		l.entry(u.dn(), kv...)
	}

	dir.Slapd = testenv.StartSlapd(t, testenv.SlapdOptions{
		Suffix: suffix,
		Schema: testSchema,
		ACL:    testACL(),
		LDIF:   l.String(),
		Config: "index cn,status eq",
		TLS:    opts.tls,
	})
	return dir
}
