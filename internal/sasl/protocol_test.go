package sasl_test

import (
	"bufio"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/sasl"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/internal/vars"
)

// These tests run the mechanisms behind the real client-protocol server
// (internal/dovecot), as it builds Env today: Engine and Info only, so
// default Settings. They pin what works before the lead wires Settings,
// SPID and CUID in, and the exchanges of docs/protocol.md §4.3 that need no
// fixed randomness.

type protoConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

const protoUsers = "alice@example.com:{PLAIN}secret:1000:1000::/home/alice::\n" +
	"crypt@example.com:{SHA512-CRYPT}$6$authdtestsalt$KGhEqWWWFQGkbQfYrwqa/HEGsz7zNKaCMdr.9RoPb6mPMNNyySHg45oyGGdSyU4Sl87doPEl5z54TxFY0EEQa.::::::\n"

// dovecotUsernameChars is Dovecot's default auth_username_chars.
const dovecotUsernameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@"

// serveAuthd serves the client protocol with the given mechanisms over a
// passwd-file holding users, and returns the socket path.
func serveAuthd(t *testing.T, users string, mechs ...string) (path string, eng *engine.Engine) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "users")
	if err := os.WriteFile(file, []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := passwdfile.New("scheme=PLAIN "+file, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := vars.ParseFields("")
	eng, err = engine.New(engine.Settings{DefaultRealm: "example.com", UsernameChars: dovecotUsernameChars}, []engine.DBSpec{{
		Driver: "passwd-file", Passdb: db, DefaultFields: tmpl,
		ResultSuccess: config.RuleReturnOK, ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue,
	}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var defs []sasl.Def
	for _, m := range mechs {
		defs = append(defs, sasl.Defs[m])
	}
	srv := dovecot.NewClientServer(dovecot.ClientConfig{Engine: eng, Mechs: defs, Shared: dovecot.NewShared(4242)})
	t.Cleanup(func() { eng.Close() }) // after the server's own cleanup
	return testenv.ServeUnix(t, filepath.Join(dir, "auth-client"), testenv.Served{Serve: srv.Serve, Shutdown: srv.Shutdown, Run: srv.Run}), eng
}

// dialAuth connects to a client-protocol socket (authd's or Dovecot's) and
// does the handshake (docs/protocol.md §1.2).
func dialAuth(t *testing.T, path string) *protoConn {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &protoConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	for c.read() != "DONE" {
	}
	c.send("VERSION\t1\t2")
	c.send("CPID\t" + strconv.Itoa(os.Getpid()))
	return c
}

func startServer(t *testing.T, mechs ...string) *protoConn {
	t.Helper()
	path, _ := serveAuthd(t, protoUsers, mechs...)
	return dialAuth(t, path)
}

func (c *protoConn) send(line string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(line + "\n")); err != nil {
		c.t.Fatal(err)
	}
}

func (c *protoConn) read() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

func (c *protoConn) expect(want string) {
	c.t.Helper()
	if got := c.read(); got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

// cont reads a CONT for id and returns its decoded challenge.
func (c *protoConn) cont(id string) []byte {
	c.t.Helper()
	line := c.read()
	b64, ok := strings.CutPrefix(line, "CONT\t"+id+"\t")
	if !ok {
		c.t.Fatalf("got %q, want CONT for %s", line, id)
	}
	d, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		c.t.Fatal(err)
	}
	return d
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestProtocolOAuth replays the observed OAUTHBEARER and XOAUTH2
// exchanges of docs/protocol.md §4.3 through the real protocol layer.
func TestProtocolOAuth(t *testing.T) {
	c := startServer(t, "OAUTHBEARER", "XOAUTH2")
	c.send("AUTH\t43\tOAUTHBEARER\tservice=imap\tresp=bixhPWFsaWNlQGV4YW1wbGUuY29tLAFob3N0PW1haWwuZXhhbXBsZS5jb20BcG9ydD0xNDMBYXV0aD1CZWFyZXIgdkY5ZGZ0NHFtVGMyTnZiM1JsY2tCaGJIUmhkbWx6ZEdFdVkyOXRDZz09AQE=")
	c.expect("CONT\t43\teyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=")
	c.send("CONT\t43\tAQ==")
	c.expect("FAIL\t43\tuser=alice@example.com")
	c.send("AUTH\t44\tXOAUTH2\tservice=imap\tresp=dXNlcj1hbGljZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB2RjlkZnQ0cW1UYzJOdmIzUmxja0JoYkhSaGRtbHpkR0V1WTI5dENnPT0BAQ==")
	c.expect("CONT\t44\teyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0=")
	c.send("CONT\t44\t")
	c.expect("FAIL\t44\tuser=alice@example.com")
	c.send("AUTH\t45\tXOAUTH2\tservice=imap\tresp=" + b64("user=alice@example.com\x01auth=Bearer secret\x01\x01"))
	c.expect("OK\t45\tuser=alice@example.com")
}

// TestProtocolCRAMMD5: a real challenge, answered; a {SHA512-CRYPT} user
// gets a plain FAIL; NUL in the answer is refused by the protocol layer.
func TestProtocolCRAMMD5(t *testing.T) {
	c := startServer(t, "CRAM-MD5")
	re := regexp.MustCompile(`^<[0-9]{16}\.[0-9]+@[^>]+>$`)
	answer := func(user string, ch []byte) string {
		m := hmac.New(md5.New, []byte("secret"))
		m.Write(ch)
		return b64(user + " " + hex.EncodeToString(m.Sum(nil)))
	}
	c.send("AUTH\t1\tCRAM-MD5\tservice=imap")
	ch := c.cont("1")
	if !re.Match(ch) {
		t.Fatalf("challenge %q", ch)
	}
	c.send("CONT\t1\t" + answer("alice@example.com", ch))
	c.expect("OK\t1\tuser=alice@example.com")

	c.send("AUTH\t2\tCRAM-MD5\tservice=imap")
	c.send("CONT\t2\t" + answer("crypt@example.com", c.cont("2")))
	c.expect("FAIL\t2\tuser=crypt@example.com")

	c.send("AUTH\t3\tCRAM-MD5\tservice=imap")
	c.cont("3")
	c.send("CONT\t3\t" + b64("alice\x00 0"))
	c.expect("FAIL\t3")
}

// TestProtocolFinalData: SCRAM's v= and DIGEST-MD5's rspauth go out as a
// last CONT, the empty answer gets OK (docs/protocol.md §1.5).
func TestProtocolFinalData(t *testing.T) {
	c := startServer(t, "DIGEST-MD5", "SCRAM-SHA-256")
	c.send("AUTH\t1\tDIGEST-MD5\tservice=imap")
	ch := c.cont("1")
	m := regexp.MustCompile(`^realm="",nonce="([A-Za-z0-9+/=]{24})",qop="auth",charset="utf-8",algorithm="md5-sess"$`).FindSubmatch(ch)
	if m == nil {
		t.Fatalf("challenge %q", ch)
	}
	nonce := string(m[1])
	// realm "": the digest is MD5(alice::secret), the lookup name
	// alice@example.com (auth_default_realm).
	h := func(s string) string { d := md5.Sum([]byte(s)); return hex.EncodeToString(d[:]) }
	urp := md5.Sum([]byte("alice::secret"))
	a1 := h(string(urp[:]) + ":" + nonce + ":cn")
	resp := h(a1 + ":" + nonce + ":00000001:cn:auth:" + h("AUTHENTICATE:smtp/localhost"))
	rsp := h(a1 + ":" + nonce + ":00000001:cn:auth:" + h(":smtp/localhost"))
	c.send("CONT\t1\t" + b64(`username="alice",nonce="`+nonce+`",cnonce="cn",nc=00000001,qop=auth,digest-uri="smtp/localhost",response=`+resp))
	if got := string(c.cont("1")); got != "rspauth="+rsp {
		t.Fatalf("final %q, want rspauth=%s", got, rsp)
	}
	c.send("CONT\t1\t")
	c.expect("OK\t1\tuser=alice@example.com\toriginal_user=alice")

	// SCRAM: the server-first message is accepted as is; a wrong proof
	// fails naming the user.
	c.send("AUTH\t2\tSCRAM-SHA-256\tservice=imap\tresp=" + b64("n,,n=alice@example.com,r=abc"))
	sf := string(c.cont("2"))
	if !regexp.MustCompile(`^r=abc[!-~]{64},s=[A-Za-z0-9+/=]+,i=4096$`).MatchString(sf) {
		t.Fatalf("server-first %q", sf)
	}
	r, _, _ := strings.Cut(sf, ",")
	c.send("CONT\t2\t" + b64("c=biws,"+r+",p="+base64.StdEncoding.EncodeToString(make([]byte, 32))))
	c.expect("FAIL\t2\tuser=alice@example.com")
}

// TestProtocolUnwired: until Settings, SPID and CUID reach Env, APOP and
// EXTERNAL fail closed and ANONYMOUS uses the default name.
func TestProtocolUnwired(t *testing.T) {
	c := startServer(t, "APOP", "EXTERNAL", "ANONYMOUS")
	chal := "<1092.1.6b02c18f.AAAA@vm>"
	d := md5.Sum([]byte(chal + "secret"))
	c.send("AUTH\t1\tAPOP\tservice=pop3\tresp=" + base64.StdEncoding.EncodeToString(append([]byte(chal+"\x00alice@example.com\x00"), d[:]...)))
	c.expect("FAIL\t1")
	c.send("AUTH\t2\tEXTERNAL\tservice=imap\tvalid-client-cert\tcert_username=alice@example.com\tresp=")
	c.expect("FAIL\t2")
	c.send("AUTH\t3\tANONYMOUS\tservice=imap\tresp=dHJhY2UtaW5mbw==")
	c.expect("OK\t3\tuser=anonymous\tanonymous")
}
