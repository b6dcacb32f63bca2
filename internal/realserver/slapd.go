package realserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// SlapdOptions configures StartSlapd. Zero values mean the defaults.
type SlapdOptions struct {
	Instance
	Suffix string // default "dc=example,dc=com"
	RootDN string // default "cn=admin,<Suffix>"
	RootPW string // cleartext; default "adminpw"

	// Schema is extra schema text (attributetype / objectclass
	// definitions), included after core, cosine, inetorgperson and nis.
	Schema string
	// ACL replaces DefaultACL(Suffix).
	ACL string
	// Config is appended to the database section (indexes, limits,
	// overlays).
	Config string
	// LDIF is loaded with slapadd before the start; it must contain the
	// suffix entry itself. Empty: an empty database.
	LDIF string
	// TLS, when set, adds an ldaps:// listener (Slapd.LDAPSURI) and
	// enables StartTLS on URI; client certificates from TLS.CA are checked
	// when sent and then name the SASL EXTERNAL identity.
	TLS *TLSFiles
	// MaxSize is the mdb map size in bytes; default 100 MiB, ample for
	// tests. A benchmark's directory of many users wants more.
	MaxSize int64
}

// DefaultACL is the access control StartSlapd uses unless told otherwise:
// userPassword readable by cn=authd,ou=services,<suffix> (search then
// verify), usable for bind by anonymous, hidden from everyone else;
// everything else readable by all.
func DefaultACL(suffix string) string {
	return fmt.Sprintf(`access to attrs=userPassword
  by self write
  by anonymous auth
  by dn.exact="cn=authd,ou=services,%s" read
  by * none
access to *
  by * read
`, suffix)
}

// ExampleLDIF is the top of the directory StartSlapd's defaults expect:
// the suffix dc=example,dc=com, ou=people for the accounts, ou=services,
// and the service account cn=authd,ou=services,dc=example,dc=com with
// userPassword servicePassword (a stored value such as "{SSHA}…"), which
// DefaultACL lets read passwords. Callers append their people.
func ExampleLDIF(servicePassword string) string {
	return `dn: dc=example,dc=com
objectClass: top
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=services,dc=example,dc=com
objectClass: organizationalUnit
ou: services

dn: cn=authd,ou=services,dc=example,dc=com
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: authd
userPassword: ` + servicePassword + "\n\n"
}

// Slapd is a private OpenLDAP slapd (docs/testing.md §3): slapd.conf with
// an mdb database, listening on ldap://127.0.0.1:<free port> and on an
// ldapi:// socket, running as this process's user. It stops in < 0.01 s.
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

	server
	in   Instance
	argv []string
	port int
}

// StartSlapd writes slapd.conf, loads o.LDIF with slapadd, starts slapd in
// the foreground (-d 0, so the child is slapd itself) and returns once it
// answers an LDAP bind. The caller must Stop it. The database is opened
// with dbnosync: writes reach the OS at once (they survive Kill) without an
// fsync per update.
func StartSlapd(ctx context.Context, o SlapdOptions) (*Slapd, error) {
	bins, err := lookBins("slapd", "slapadd")
	if err != nil {
		return nil, err
	}
	o.Suffix = orDefault(o.Suffix, "dc=example,dc=com")
	o.RootDN = orDefault(o.RootDN, "cn=admin,"+o.Suffix)
	o.RootPW = orDefault(o.RootPW, "adminpw")
	o.ACL = orDefault(o.ACL, DefaultACL(o.Suffix))
	if o.MaxSize <= 0 {
		o.MaxSize = 100 << 20
	}
	if err := Mkdirs(filepath.Join(o.Dir, "db")); err != nil {
		return nil, err
	}
	s := &Slapd{
		BaseDN: o.Suffix, RootDN: o.RootDN, RootPW: o.RootPW, Dir: o.Dir,
		Conf: filepath.Join(o.Dir, "slapd.conf"), Log: filepath.Join(o.Dir, "slapd.log"), in: o.Instance,
		server: server{grace: 10 * time.Second},
	}
	s.launch = s.start
	if s.port, err = o.port(); err != nil {
		return nil, err
	}
	s.URI = fmt.Sprintf("ldap://127.0.0.1:%d", s.port)
	// An ldapi URL carries the socket path %2F-encoded in the host part.
	s.LDAPIURI = "ldapi://" + strings.ReplaceAll(filepath.Join(o.Dir, "ldapi"), "/", "%2F")
	listeners := s.URI + "/ " + s.LDAPIURI + "/"
	if o.TLS != nil {
		port, err := o.port()
		if err != nil {
			return nil, err
		}
		s.LDAPSURI = fmt.Sprintf("ldaps://127.0.0.1:%d", port)
		listeners += " " + s.LDAPSURI + "/"
	}
	conf, err := s.config(o)
	if err != nil {
		return nil, err
	}
	if err := WriteFile(s.Conf, []byte(conf)); err != nil {
		return nil, err
	}
	if o.LDIF != "" {
		ldif := filepath.Join(o.Dir, "data.ldif")
		if err := WriteFile(ldif, []byte(o.LDIF)); err != nil {
			return nil, err
		}
		if _, err := RunCmd(ctx, CleanEnv(), "", bins[1], "-f", s.Conf, "-l", ldif, "-q"); err != nil {
			return nil, err
		}
	}
	s.argv = []string{bins[0], "-f", s.Conf, "-h", listeners, "-d", "0"}
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// config renders slapd.conf (and writes the extra schema file it includes).
func (s *Slapd) config(o SlapdOptions) (string, error) {
	var conf strings.Builder
	// nis needs cosine, and posixAccount lives in nis: this order matters.
	for _, sch := range []string{"core", "cosine", "inetorgperson", "nis"} {
		fmt.Fprintf(&conf, "include /etc/ldap/schema/%s.schema\n", sch)
	}
	if o.Schema != "" {
		extra := filepath.Join(o.Dir, "extra.schema")
		if err := WriteFile(extra, []byte(o.Schema)); err != nil {
			return "", err
		}
		fmt.Fprintf(&conf, "include %s\n", extra)
	}
	fmt.Fprintf(&conf, `pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload pw-sha2
loglevel none
password-hash {SSHA}
`, o.Dir)
	if o.TLS != nil {
		// TLSVerifyClient try: a client certificate is asked for and
		// checked when sent (it then names the SASL EXTERNAL identity, the
		// certificate's subject), and not required.
		fmt.Fprintf(&conf, "TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\nTLSVerifyClient try\n",
			o.TLS.CA, o.TLS.Cert, o.TLS.Key)
	}
	fmt.Fprintf(&conf, `
database mdb
maxsize %d
suffix %q
rootdn %q
rootpw %q
directory %s/db
dbnosync
index objectClass eq
index uid,mail eq
%s
%s
`, o.MaxSize, o.Suffix, o.RootDN, o.RootPW, o.Dir, o.ACL, o.Config)
	return conf.String(), nil
}

func (s *Slapd) start(ctx context.Context) (*Proc, error) {
	addr := loopback(s.port)
	return startAndWait(ctx, s.in, "slapd", s.Log, 20*time.Second, func(ctx context.Context) error {
		return ldapAnonymousBind(ctx, addr)
	}, s.argv)
}

// ldapAnonymousBind sends an LDAPv3 anonymous simple bind (message id 1) and
// expects a BindResponse with resultCode success. slapd accepts connections
// only once its backends are open, so this is a real readiness probe.
func ldapAnonymousBind(ctx context.Context, addr string) error {
	c, err := DialProbe(ctx, addr)
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
