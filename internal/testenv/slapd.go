package testenv

import (
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/realserver"
)

// SlapdOptions configures StartSlapd; the fields mean what they mean in
// realserver.SlapdOptions (zero values: the defaults), except TLS.
type SlapdOptions struct {
	Suffix string // default "dc=example,dc=com"
	RootDN string // default "cn=admin,<Suffix>"
	RootPW string // cleartext; default "adminpw"
	// Schema (extra definitions), ACL (replaces realserver.DefaultACL),
	// Config (appended to the database section) and LDIF (loaded with
	// slapadd, suffix entry included).
	Schema, ACL, Config, LDIF string
	// TLS, when set, adds an ldaps:// listener (LDAPSURI) and enables
	// StartTLS on URI, with a certificate for 127.0.0.1 and localhost
	// issued by this CA; client certificates from the CA are verified
	// when sent and make the SASL EXTERNAL identity "cn=<first host>".
	TLS *CA
}

// Slapd is a private OpenLDAP slapd (realserver.Slapd: docs/testing.md §3):
// slapd.conf with an mdb database, listening on ldap://127.0.0.1:<free port>
// and on an ldapi:// socket, running as the test's user. Its fields (URI,
// LDAPIURI, LDAPSURI, BaseDN, RootDN, RootPW, Dir, Conf, Log) and Kill and
// Stop are realserver's; Restart takes the test instead of a context.
type Slapd struct {
	*realserver.Slapd
}

// StartSlapd writes slapd.conf, loads opts.LDIF with slapadd, starts slapd in
// the foreground (-d 0, so the child is slapd itself) and returns once it
// answers an LDAP bind. Stop runs at cleanup. The database is opened with
// dbnosync: writes reach the OS at once (they survive Kill) without an fsync
// per update.
func StartSlapd(t testing.TB, opts SlapdOptions) *Slapd {
	t.Helper()
	Require(t, "slapd", "slapadd")
	dir := Dir(t)
	s, err := realserver.StartSlapd(t.Context(), realserver.SlapdOptions{
		Instance: instance(dir), TLS: opts.TLS.serverFiles(t, dir),
		Suffix: opts.Suffix, RootDN: opts.RootDN, RootPW: opts.RootPW,
		Schema: opts.Schema, ACL: opts.ACL, Config: opts.Config, LDIF: opts.LDIF,
	})
	if err != nil {
		startFailed(t, err)
	}
	t.Cleanup(s.Stop)
	logOnFailure(t, s.Log)
	return &Slapd{s}
}

// AddLDIF adds entries to the running server with ldapadd as RootDN over
// ldapi.
func (s *Slapd) AddLDIF(t testing.TB, ldif string) {
	t.Helper()
	Require(t, "ldapadd")
	run(t, cleanEnv("LDAPNOINIT=1"), ldif, mustBin(t, "ldapadd"), "-x", "-H", s.LDAPIURI, "-D", s.RootDN, "-w", s.RootPW)
}

// Restart starts slapd again with the same database and listeners (after
// stopping it if it still runs) and waits until it is ready.
func (s *Slapd) Restart(t testing.TB) {
	t.Helper()
	if err := s.Slapd.Restart(t.Context()); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// Slappasswd runs slappasswd with args and returns the hash it prints, e.g.
// Slappasswd(t, "-s", "pw") for {SSHA}, or
// Slappasswd(t, "-h", "{CRYPT}", "-c", "$6$rounds=1000$%.16s", "-s", "pw")
// for a cheap sha512-crypt.
func Slappasswd(t testing.TB, args ...string) string {
	t.Helper()
	Require(t, "slappasswd")
	return strings.TrimSpace(run(t, cleanEnv(), "", append([]string{mustBin(t, "slappasswd")}, args...)...))
}
