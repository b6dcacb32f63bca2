package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SlapdOptions configures StartSlapd. Zero values mean the defaults.
type SlapdOptions struct {
	Suffix string // default "dc=example,dc=com"
	RootDN string // default "cn=admin,<Suffix>"
	RootPW string // cleartext; default "adminpw"

	// Schema is extra schema text (attributetype / objectclass
	// definitions), included after core, cosine, inetorgperson and nis.
	Schema string
	// ACL replaces the default access rules: userPassword readable by
	// cn=authd,ou=services,<Suffix> (search-then-verify), usable for bind by
	// anonymous, hidden from everyone else; everything else readable by all.
	ACL string
	// Config is appended to the database section (indexes, limits,
	// overlays).
	Config string
	// LDIF is loaded with slapadd before the start; it must contain the
	// suffix entry itself. Empty: an empty database.
	LDIF string
	// TLS, when set, adds an ldaps:// listener (LDAPSURI) and enables
	// StartTLS on URI, with a certificate for 127.0.0.1 and localhost
	// issued by this CA; client certificates from the CA are verified
	// when sent and make the SASL EXTERNAL identity "cn=<first host>".
	TLS *CA
}

// Slapd is a private OpenLDAP slapd (realservers.md §3): slapd.conf with an
// mdb database, listening on ldap://127.0.0.1:<free port> and on an ldapi://
// socket, running as the test's user.
type Slapd struct {
	URI      string // "ldap://127.0.0.1:port"
	LDAPIURI string // "ldapi://%2F...%2Fldapi"
	LDAPSURI string // "ldaps://127.0.0.1:port" when TLS is set
	BaseDN   string // the suffix
	RootDN   string
	RootPW   string
	Dir      string
	Conf     string // slapd.conf
	Log      string // slapd's stderr

	mu   sync.Mutex
	proc *proc
	argv []string
	port int
}

const defaultACL = `access to attrs=userPassword
  by self write
  by anonymous auth
  by dn.exact="cn=authd,ou=services,%s" read
  by * none
access to *
  by * read
`

// StartSlapd writes slapd.conf, loads opts.LDIF with slapadd, starts slapd in
// the foreground (-d 0, so the child is slapd itself) and returns once it
// answers an LDAP bind. Stop runs at cleanup. The database is opened with
// dbnosync: writes reach the OS at once (they survive Kill) without an fsync
// per update.
func StartSlapd(t testing.TB, opts SlapdOptions) *Slapd {
	t.Helper()
	Require(t, "slapd", "slapadd")
	if opts.Suffix == "" {
		opts.Suffix = "dc=example,dc=com"
	}
	if opts.RootDN == "" {
		opts.RootDN = "cn=admin," + opts.Suffix
	}
	if opts.RootPW == "" {
		opts.RootPW = "adminpw"
	}
	if opts.ACL == "" {
		opts.ACL = fmt.Sprintf(defaultACL, opts.Suffix)
	}
	dir := Dir(t)
	s := &Slapd{
		BaseDN: opts.Suffix,
		RootDN: opts.RootDN,
		RootPW: opts.RootPW,
		Dir:    dir,
		Conf:   filepath.Join(dir, "slapd.conf"),
		Log:    filepath.Join(dir, "slapd.log"),
		port:   FreePort(t),
	}
	s.URI = fmt.Sprintf("ldap://127.0.0.1:%d", s.port)
	// An ldapi URL carries the socket path %2F-encoded in the host part.
	s.LDAPIURI = "ldapi://" + strings.ReplaceAll(filepath.Join(dir, "ldapi"), "/", "%2F")
	mkdirs(t, filepath.Join(dir, "db"))

	var conf strings.Builder
	// nis needs cosine, and posixAccount lives in nis: this order matters.
	for _, sch := range []string{"core", "cosine", "inetorgperson", "nis"} {
		fmt.Fprintf(&conf, "include /etc/ldap/schema/%s.schema\n", sch)
	}
	if opts.Schema != "" {
		extra := filepath.Join(dir, "extra.schema")
		writeFile(t, extra, opts.Schema)
		fmt.Fprintf(&conf, "include %s\n", extra)
	}
	fmt.Fprintf(&conf, `pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload pw-sha2
loglevel none
password-hash {SSHA}
`, dir)
	listeners := s.URI + "/ " + s.LDAPIURI + "/"
	if opts.TLS != nil {
		cert, key := opts.TLS.Issue(t, dir, "server", "127.0.0.1", "localhost")
		// TLSVerifyClient try: a client certificate is asked for and
		// checked when sent (it then names the SASL EXTERNAL identity, the
		// certificate's subject), and not required.
		fmt.Fprintf(&conf, "TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\nTLSVerifyClient try\n",
			opts.TLS.CertFile, cert, key)
		s.LDAPSURI = fmt.Sprintf("ldaps://127.0.0.1:%d", FreePort(t))
		listeners += " " + s.LDAPSURI + "/"
	}
	fmt.Fprintf(&conf, `
database mdb
maxsize 104857600
suffix %q
rootdn %q
rootpw %q
directory %s/db
dbnosync
index objectClass eq
index uid,mail eq
%s
%s
`, opts.Suffix, opts.RootDN, opts.RootPW, dir, opts.ACL, opts.Config)
	writeFile(t, s.Conf, conf.String())

	if opts.LDIF != "" {
		ldif := filepath.Join(dir, "data.ldif")
		writeFile(t, ldif, opts.LDIF)
		run(t, cleanEnv(), "", mustBin(t, "slapadd"), "-f", s.Conf, "-l", ldif, "-q")
	}
	s.argv = []string{mustBin(t, "slapd"), "-f", s.Conf, "-h", listeners, "-d", "0"}
	logOnFailure(t, s.Log)
	t.Cleanup(s.Stop)
	s.start(t)
	return s
}

func (s *Slapd) start(t testing.TB) {
	t.Helper()
	p, err := startProc(s.Log, cleanEnv(), false, s.argv...)
	if err != nil {
		t.Fatalf("testenv: starting slapd: %v", err)
	}
	s.proc = p
	addr := loopback(s.port)
	waitReady(t, "slapd", p, 20*time.Second, func(ctx context.Context) error {
		return ldapAnonymousBind(ctx, addr)
	}, s.Log)
}

// AddLDIF adds entries to the running server with ldapadd as RootDN over
// ldapi.
func (s *Slapd) AddLDIF(t testing.TB, ldif string) {
	t.Helper()
	Require(t, "ldapadd")
	run(t, cleanEnv("LDAPNOINIT=1"), ldif, mustBin(t, "ldapadd"), "-x", "-H", s.LDAPIURI, "-D", s.RootDN, "-w", s.RootPW)
}

// Kill stops slapd with SIGKILL, as an outage, and waits for it. The
// database and ports are kept for Restart.
func (s *Slapd) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proc.stop(syscall.SIGKILL, time.Second)
}

// Restart starts slapd again with the same database and listeners (after
// stopping it if it still runs) and waits until it is ready.
func (s *Slapd) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proc.stop(syscall.SIGTERM, 10*time.Second)
	s.start(t)
}

// Stop stops slapd (SIGTERM, < 0.01 s) and waits. It is idempotent and also
// runs at cleanup.
func (s *Slapd) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proc.stop(syscall.SIGTERM, 10*time.Second)
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

// ldapAnonymousBind sends an LDAPv3 anonymous simple bind (message id 1) and
// expects a BindResponse with resultCode success. slapd accepts connections
// only once its backends are open, so this is a real readiness probe.
func ldapAnonymousBind(ctx context.Context, addr string) error {
	c, err := dialProbe(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	// SEQUENCE { INTEGER 1, [APPLICATION 0] { INTEGER 3, OCTET STRING "", [0] "" } }
	req := []byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00}
	if _, err := c.Write(req); err != nil {
		return err
	}
	// SEQUENCE { INTEGER 1, [APPLICATION 1] { ENUMERATED 0, "", "" } }: the
	// first 10 bytes are fixed for a short success reply.
	var resp [10]byte
	if _, err := io.ReadFull(c, resp[:]); err != nil {
		return err
	}
	want := []byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00}
	if !bytes.Equal(resp[:], want) {
		return fmt.Errorf("unexpected bind response % x", resp)
	}
	return nil
}
