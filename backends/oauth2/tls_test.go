package oauth2

import (
	"crypto/tls"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/testenv"
)

// TestTLSSettings: the tls_* settings decide whom the driver trusts and
// what it presents. An IdP whose certificate cannot be verified is "could
// not tell" (the token never reaches it), unless tls_allow_invalid_cert;
// tls_ca_cert_file and tls_ca_cert_dir add the CA; tls_cert_file and
// tls_key_file are sent to an IdP that asks for a client certificate.
func TestTLSSettings(t *testing.T) {
	ca := testenv.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, dir, "idp", "127.0.0.1")
	clientCert, clientKey := ca.Issue(t, dir, "authd", "authd.example.com")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	idp := newTestIdP(t)
	seedTokens(idp)
	newTLS := func(clientAuth tls.ClientAuthType) string {
		srv := httptest.NewUnstartedServer(idp.srv.Config.Handler)
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: clientAuth, ClientCAs: ca.Pool}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL + "/introspect"
	}
	plain, mutual := newTLS(tls.NoClientCert), newTLS(tls.RequireAndVerifyClientCert)
	caDir := filepath.Join(dir, "cadir")
	if err := os.MkdirAll(caDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(caDir, "ca.pem"), ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	before := idp.introspections.Load()
	wantError(t, newDB(t, configText("introspection_url", plain)), "alice@example.com", "tok-alice")
	if n := idp.introspections.Load(); n != before {
		t.Errorf("the token reached an IdP whose certificate was not verified")
	}
	ok := backends.Found
	wantOutcome(t, newDB(t, configText("introspection_url", plain, "tls_ca_cert_file", ca.CertFile)), "alice@example.com", "tok-alice", ok)
	wantOutcome(t, newDB(t, configText("introspection_url", plain, "tls_ca_cert_dir", caDir)), "alice@example.com", "tok-alice", ok)
	wantOutcome(t, newDB(t, configText("introspection_url", plain, "tls_allow_invalid_cert", "yes")), "alice@example.com", "tok-alice", ok)
	wantError(t, newDB(t, configText("introspection_url", mutual, "tls_ca_cert_file", ca.CertFile)), "alice@example.com", "tok-alice")
	wantOutcome(t, newDB(t, configText("introspection_url", mutual, "tls_ca_cert_file", ca.CertFile,
		"tls_cert_file", clientCert, "tls_key_file", clientKey)), "alice@example.com", "tok-alice", ok)

	// Files that cannot be used are configuration errors at start.
	for _, kv := range [][]string{
		{"tls_ca_cert_file", filepath.Join(dir, "nosuch.pem")},
		{"tls_ca_cert_file", keyFile}, // a key, not a certificate
		{"tls_cert_file", clientCert}, // without tls_key_file
		{"tls_cert_file", clientCert, "tls_key_file", filepath.Join(dir, "nosuch.key")},
	} {
		path := filepath.Join(t.TempDir(), "dovecot-oauth2.conf.ext")
		if err := os.WriteFile(path, []byte(configText(append([]string{"introspection_url", plain}, kv...)...)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := New(path, nil); err == nil {
			t.Errorf("%v: accepted", kv)
		}
	}
}
