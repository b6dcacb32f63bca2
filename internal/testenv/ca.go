package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/realserver"
)

// CA is a throwaway certificate authority for TLS tests (SQL over TLS,
// ldaps/StartTLS). Keys are ECDSA P-256: generation is instant, and OpenSSL
// (mariadbd) and GnuTLS (slapd) both accept them.
type CA struct {
	CertFile string         // the CA certificate, PEM
	CertPEM  []byte         // the same, in memory
	Pool     *x509.CertPool // contains only this CA

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA creates a CA whose certificate is written to a new Dir.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testenv: NewCA: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "authd test CA"},
		NotBefore:             time.Now().Add(-time.Hour), // tolerate clock skew between processes
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testenv: NewCA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testenv: NewCA: %v", err)
	}
	ca := &CA{
		CertFile: filepath.Join(Dir(t), "ca.pem"),
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Pool:     x509.NewCertPool(),
		cert:     cert,
		key:      key,
	}
	ca.Pool.AddCert(cert)
	writeFile(t, ca.CertFile, string(ca.CertPEM))
	return ca
}

// Issue writes a certificate for hosts (IP addresses or DNS names; the first
// is also the CN), valid for server and client auth, and its PKCS#8 key, as
// dir/name.pem and dir/name.key. Both are mode 0644 so that a server which
// drops privileges can still read them; they protect nothing.
func (ca *CA) Issue(t testing.TB, dir, name string, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testenv: Issue: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if len(hosts) > 0 {
		tmpl.Subject.CommonName = hosts[0]
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("testenv: Issue: %v", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testenv: Issue: %v", err)
	}
	certFile = filepath.Join(dir, name+".pem")
	keyFile = filepath.Join(dir, name+".key")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})))
	return certFile, keyFile
}

// ClientConfig returns a TLS client config that trusts only this CA.
func (ca *CA) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("testenv: serial: %v", err)
	}
	return n
}

// serverFiles issues a server certificate for 127.0.0.1 and localhost into
// dir and returns the files a realserver launcher takes; nil for a nil CA.
func (ca *CA) serverFiles(t testing.TB, dir string) *realserver.TLSFiles {
	t.Helper()
	if ca == nil {
		return nil
	}
	cert, key := ca.Issue(t, dir, "server", "127.0.0.1", "localhost")
	return &realserver.TLSFiles{CA: ca.CertFile, Cert: cert, Key: key}
}
