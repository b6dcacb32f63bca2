package testenv

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"net"
	"strings"
	"testing"
	"time"
)

// Unit tests of the hand-written SASL client steps against the RFC
// examples and docs/protocol.md §4.3's worked exchanges, and of the SMTP/IMAP
// drivers against scripted fake servers (a server that fails to prove
// itself must make the client fail).

func TestSASLClientCRAMMD5(t *testing.T) {
	// RFC 2195 §2.
	got := cramMD5Response("tim", "tanstaaftanstaaf", []byte("<1896.697170952@postoffice.reston.mci.net>"))
	if want := "tim b913a602c7eda7a495b4e6e7334d3890"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// docs/protocol.md §4.3.
	got = cramMD5Response("alice@example.com", "secret", []byte("<4821963517264830.1795342708@mail.example.com>"))
	if want := "alice@example.com f2138134e241df00888cfabe4ea1f9a6"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	c := &cramMD5Client{user: "tim", pass: "x"}
	if ir, _ := c.initial(); ir != nil {
		t.Fatal("CRAM-MD5 is server-first: no initial response")
	}
	if err := c.complete(); err == nil {
		t.Fatal("success before the challenge was answered must be an error")
	}
	if _, err := c.next(nil); err == nil {
		t.Fatal("empty challenge accepted")
	}
}

func TestSASLClientSCRAM(t *testing.T) {
	for _, v := range []struct {
		name                 string
		hash                 func() hash.Hash
		user, pass, cnonce   string
		serverFirst          string
		clientFinal, verifyV string
	}{
		{
			"RFC 5802 SCRAM-SHA-1", sha1.New, "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL",
			"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
		},
		{
			"RFC 7677 SCRAM-SHA-256", sha256.New, "user", "pencil", "rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		},
		{
			"docs/protocol.md SCRAM-SHA-256", sha256.New, "alice@example.com", "secret", "rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096",
			"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=qPROXk2LQPAqppoUkQcX/lyi/e3LVJLsFlSoiAqGcSk=",
			"v=OEuDN02Ajjz7tnXu0NYWf+ILrP7pBYINUb2C84+WPXw=",
		},
		{
			"docs/protocol.md SCRAM-SHA-1", sha1.New, "alice@example.com", "secret", "rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096",
			"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=OoHvZ/jn6YHsgQKTXpv8pmJ0sBU=",
			"v=OXDsb9UoyDTX/bLZRiXR5cLxD70=",
		},
	} {
		t.Run(v.name, func(t *testing.T) {
			newClient := func() *scramClient {
				return &scramClient{hash: v.hash, user: v.user, pass: v.pass, cnonce: v.cnonce}
			}
			// With an initial response.
			c := newClient()
			first, err := c.initial()
			if err != nil || string(first) != "n,,n="+v.user+",r="+v.cnonce {
				t.Fatalf("client-first %q, %v", first, err)
			}
			final, err := c.next([]byte(v.serverFirst))
			if err != nil || string(final) != v.clientFinal {
				t.Fatalf("client-final %q, %v\nwant %q", final, err, v.clientFinal)
			}
			if err := c.complete(); err == nil {
				t.Fatal("complete before v= must fail")
			}
			last, err := c.next([]byte(v.verifyV))
			if err != nil || len(last) != 0 {
				t.Fatalf("after v=: %q, %v", last, err)
			}
			if err := c.complete(); err != nil {
				t.Fatal(err)
			}

			// Without one: the server's empty challenge asks for it.
			c = newClient()
			if first, err := c.next(nil); err != nil || string(first) != "n,,n="+v.user+",r="+v.cnonce {
				t.Fatalf("client-first after an empty challenge: %q, %v", first, err)
			}

			// A wrong server signature fails the client.
			c = newClient()
			c.initial()
			c.next([]byte(v.serverFirst))
			bad := []byte(v.verifyV)
			bad[3] ^= 1
			if _, err := c.next(bad); err == nil || !strings.Contains(err.Error(), "wrong server signature") {
				t.Fatalf("wrong v= accepted: %v", err)
			}
			if err := c.complete(); err == nil {
				t.Fatal("complete after a wrong v= must fail")
			}
		})
	}

	// Server-first messages a client must refuse.
	for _, sf := range []string{
		"r=someoneelse,s=QSXCR+Q6sek8bf92,i=4096",    // nonce not ours
		"r=fyko,s=QSXCR+Q6sek8bf92,i=4096",           // nonce not extended
		"m=ext,r=fyko+xyz,s=QSXCR+Q6sek8bf92,i=4096", // mandatory extension
		"e=other-error",                                        // server error
		"r=fyko+xyz,s=!!!,i=4096",                              // salt not base64
		"r=fyko+xyz,s=QSXCR+Q6sek8bf92,i=0",                    // iteration count
		"r=fyko+xyz,s=QSXCR+Q6sek8bf92",                        // missing i=
		"garbage",                                              // not attributes
		"r=fyko+xyz,s=QSXCR+Q6sek8bf92,i=4096,",                // empty attribute
		"r=fyko+xyz,s=QSXCR+Q6sek8bf92,i=99999999999999999999", // overflow
	} {
		c := &scramClient{hash: sha1.New, user: "user", pass: "pencil", cnonce: "fyko"}
		c.initial()
		if out, err := c.next([]byte(sf)); err == nil {
			t.Errorf("server-first %q accepted, answered %q", sf, out)
		}
	}
	c := &scramClient{hash: sha1.New, user: "a,b=c", pass: "p", cnonce: "n"}
	if first, _ := c.initial(); string(first) != "n,,n=a=2Cb=3Dc,r=n" {
		t.Errorf("saslname escaping: %q", first)
	}
	// A server-final error.
	c = &scramClient{hash: sha256.New, user: "user", pass: "pencil", cnonce: "rOprNGfwEbeRWgbNEkqO"}
	c.initial()
	c.next([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
	if _, err := c.next([]byte("e=invalid-proof")); err == nil {
		t.Error("server-final e= accepted")
	}
}

func TestSASLClientDigestMD5(t *testing.T) {
	for _, v := range []struct {
		name, user, pass, cnonce, uri string
		challenge, response, rspauth  string
	}{
		{
			// RFC 2831 §4, the IMAP example (unquoted algorithm and charset).
			"RFC 2831", "chris", "secret", "OA6MHXh6VqTrRk", "imap/elwood.innosoft.com",
			`realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,charset=utf-8`,
			`charset=utf-8,username="chris",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",nc=00000001,cnonce="OA6MHXh6VqTrRk",digest-uri="imap/elwood.innosoft.com",response=d388dad90d4bbd760a152321f2143af7,qop=auth`,
			"rspauth=ea40f60335c427b5527b84dbabcdfffd",
		},
		{
			// docs/protocol.md §4.3 (Dovecot's challenge format).
			"docs/protocol.md", "alice", "secret", "wDF6hqjY5GOx/K7T", "imap/mail.example.com",
			`realm="example.com",nonce="OA6MHXh6VqTrRkVwhqIjqA==",qop="auth",charset="utf-8",algorithm="md5-sess"`,
			`charset=utf-8,username="alice",realm="example.com",nonce="OA6MHXh6VqTrRkVwhqIjqA==",nc=00000001,cnonce="wDF6hqjY5GOx/K7T",digest-uri="imap/mail.example.com",response=c574b85519d9cfaf0c57a038264b9dc3,qop=auth`,
			"rspauth=4e63e5d858971af27e6b7807d534ea80",
		},
	} {
		t.Run(v.name, func(t *testing.T) {
			newClient := func() *digestMD5Client {
				return &digestMD5Client{user: v.user, pass: v.pass, cnonce: v.cnonce, digestURI: v.uri}
			}
			c := newClient()
			if ir, _ := c.initial(); ir != nil {
				t.Fatal("DIGEST-MD5 is server-first: no initial response")
			}
			resp, err := c.next([]byte(v.challenge))
			if err != nil || string(resp) != v.response {
				t.Fatalf("response %q, %v\nwant     %q", resp, err, v.response)
			}
			if err := c.complete(); err == nil {
				t.Fatal("complete before rspauth must fail")
			}
			last, err := c.next([]byte(v.rspauth))
			if err != nil || len(last) != 0 {
				t.Fatalf("after rspauth: %q, %v", last, err)
			}
			if err := c.complete(); err != nil {
				t.Fatal(err)
			}
			c = newClient()
			c.next([]byte(v.challenge))
			if _, err := c.next([]byte(strings.Replace(v.rspauth, "a", "b", 1))); err == nil {
				t.Fatal("wrong rspauth accepted")
			}
		})
	}

	// Several realms: the first is used; quoted values may hold commas and
	// escapes.
	ch, err := parseDigestChallenge([]byte(`realm="one.example",realm="two.example", nonce="a\"b,c" , qop="auth,auth-int",algorithm=md5-sess`))
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.realms) != 2 || ch.realms[0] != "one.example" || ch.nonce != `a"b,c` || len(ch.qop) != 2 {
		t.Fatalf("parsed %+v", ch)
	}
	// No realm at all: the response carries none and A1 uses "".
	c := &digestMD5Client{user: "u", pass: "p", cnonce: "c", digestURI: "smtp/h"}
	resp, err := c.next([]byte(`nonce="n",qop="auth",algorithm=md5-sess`))
	if err != nil || strings.Contains(string(resp), "realm=") || strings.Contains(string(resp), "charset") {
		t.Fatalf("no realm: %q, %v", resp, err)
	}
	want, _ := digestMD5Values("u", "", "p", "n", "c", "smtp/h")
	if !strings.Contains(string(resp), "response="+want+",") {
		t.Fatalf("no realm: %q lacks response=%s", resp, want)
	}
	for _, bad := range []string{
		`realm="x",qop="auth",algorithm=md5-sess`,           // no nonce
		`nonce="n",qop="auth-conf",algorithm=md5-sess`,      // no qop=auth
		`nonce="n",qop="auth"`,                              // no algorithm
		`nonce="n",qop="auth",algorithm=md5`,                // wrong algorithm
		`nonce="n",nonce="m",qop="auth",algorithm=md5-sess`, // two nonces
		`nonce="n,qop="auth",algorithm=md5-sess`[:12],       // unterminated
		`nonce`, // no '='
	} {
		c := &digestMD5Client{user: "u", pass: "p", digestURI: "smtp/h"}
		if out, err := c.next([]byte(bad)); err == nil {
			t.Errorf("challenge %q accepted, answered %q", bad, out)
		}
	}
}

func TestSASLClientAPOP(t *testing.T) {
	// RFC 1939 §7.
	if got := apopDigest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf"); got != "c4c9334bac560ecc979e58001b3e22fb" {
		t.Fatalf("digest %s", got)
	}
	for greeting, want := range map[string]string{
		"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>": "<1896.697170952@dbc.mtview.ca.us>",
		"+OK Dovecot ready. <2ad6.7.6b02c18f.QUFBQQ==@vm>":        "<2ad6.7.6b02c18f.QUFBQQ==@vm>",
		"+OK <a> greeting <b.c@d>":                                "<b.c@d>",
		"+OK Dovecot ready.":                                      "",
		"+OK broken <":                                            "",
	} {
		if got := apopTimestamp(greeting); got != want {
			t.Errorf("apopTimestamp(%q) = %q, want %q", greeting, got, want)
		}
	}
}

// fakeServer accepts one connection on a loopback port and runs script on
// it; the script's error, if any, fails the test at cleanup.
func fakeServer(t *testing.T, script func(r *bufio.Reader, w net.Conn) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		done <- script(bufio.NewReader(c), c)
	}()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("fake server: %v", err)
		}
	})
	return ln.Addr().String()
}

func readCRLF(r *bufio.Reader) (string, error) {
	s, err := r.ReadString('\n')
	return strings.TrimRight(s, "\r\n"), err
}

// scramServer is an independent server side of SCRAM for the fake
// servers: it answers client-first and checks client-final's proof,
// returning the server signature.
type scramServer struct {
	h               func() hash.Hash
	pass            string
	clientFirstBare string
	serverFirst     string
	salted          []byte
}

func (s *scramServer) first(clientFirst string) (string, error) {
	bare, ok := strings.CutPrefix(clientFirst, "n,,")
	if !ok {
		return "", fmt.Errorf("client-first %q without n,,", clientFirst)
	}
	_, cnonce, ok := strings.Cut(bare, ",r=")
	if !ok {
		return "", fmt.Errorf("client-first %q without r=", clientFirst)
	}
	salt := []byte("fake-salt-16byte")
	s.clientFirstBare = bare
	s.serverFirst = "r=" + cnonce + "SRV,s=" + base64.StdEncoding.EncodeToString(salt) + ",i=4096"
	s.salted, _ = pbkdf2.Key(s.h, s.pass, salt, 4096, s.h().Size())
	return s.serverFirst, nil
}

func (s *scramServer) mac(key []byte, msg string) []byte {
	m := hmac.New(s.h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// final checks the proof and returns "v=...".
func (s *scramServer) final(clientFinal string) (string, error) {
	without, proofB64, ok := strings.Cut(clientFinal, ",p=")
	if !ok {
		return "", fmt.Errorf("client-final %q without p=", clientFinal)
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil {
		return "", err
	}
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + without
	clientKey := s.mac(s.salted, "Client Key")
	sig := s.mac(func() []byte { h := s.h(); h.Write(clientKey); return h.Sum(nil) }(), authMessage)
	for i := range sig {
		sig[i] ^= proof[i%len(proof)]
	}
	if !hmac.Equal(sig, clientKey) {
		return "", fmt.Errorf("wrong proof in %q", clientFinal)
	}
	return "v=" + base64.StdEncoding.EncodeToString(s.mac(s.mac(s.salted, "Server Key"), authMessage)), nil
}

func TestSMTPAuthSASLFakeServer(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	unb64 := func(s string) string { b, _ := base64.StdEncoding.DecodeString(s); return string(b) }
	// mode: "ok" sends the right v=, "badv" a wrong one, "nov" none.
	smtp := func(mode string) func(r *bufio.Reader, w net.Conn) error {
		return func(r *bufio.Reader, w net.Conn) error {
			srv := &scramServer{h: sha256.New, pass: "pencil"}
			fmt.Fprintf(w, "220 fake ESMTP\r\n")
			if l, _ := readCRLF(r); !strings.HasPrefix(l, "EHLO ") {
				return fmt.Errorf("want EHLO, got %q", l)
			}
			fmt.Fprintf(w, "250-fake\r\n250 AUTH SCRAM-SHA-256\r\n")
			l, _ := readCRLF(r)
			ir, ok := strings.CutPrefix(l, "AUTH SCRAM-SHA-256 ")
			if !ok {
				return fmt.Errorf("want AUTH SCRAM-SHA-256 with an initial response, got %q", l)
			}
			sf, err := srv.first(unb64(ir))
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "334 %s\r\n", b64([]byte(sf)))
			l, _ = readCRLF(r)
			v, err := srv.final(unb64(l))
			if err != nil {
				fmt.Fprintf(w, "535 5.7.8 bad\r\n")
				return err
			}
			switch mode {
			case "badv":
				v = "v=" + b64(make([]byte, 32))
			case "nov":
				fmt.Fprintf(w, "235 2.7.0 ok without v\r\n")
				readCRLF(r) // QUIT, or nothing
				return nil
			}
			fmt.Fprintf(w, "334 %s\r\n", b64([]byte(v)))
			l, _ = readCRLF(r)
			switch {
			case mode == "ok" && l == "":
				fmt.Fprintf(w, "235 2.7.0 Authentication successful\r\n")
			case mode == "badv" && l == "*":
				fmt.Fprintf(w, "501 5.7.0 Authentication aborted\r\n")
			default:
				return fmt.Errorf("mode %s: client answered the server-final with %q", mode, l)
			}
			readCRLF(r)
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	code, msg, err := SMTPAuthSASL(ctx, fakeServer(t, smtp("ok")), "SCRAM-SHA-256", "user", "pencil")
	if err != nil || code != 235 {
		t.Errorf("right v=: %d %q %v", code, msg, err)
	}
	code, _, err = SMTPAuthSASL(ctx, fakeServer(t, smtp("badv")), "SCRAM-SHA-256", "user", "pencil")
	if err == nil || !strings.Contains(err.Error(), "wrong server signature") || code != 501 {
		t.Errorf("wrong v=: code %d, err %v; want the client to abort with an error", code, err)
	}
	code, _, err = SMTPAuthSASL(ctx, fakeServer(t, smtp("nov")), "SCRAM-SHA-256", "user", "pencil")
	if err == nil || code != 235 {
		t.Errorf("235 without v=: code %d, err %v; want an error", code, err)
	}
	if _, _, err := SMTPAuthSASL(ctx, "127.0.0.1:1", "GSSAPI", "u", "p"); err == nil {
		t.Error("unsupported mechanism accepted")
	}
}

func TestIMAPAuthenticateFakeServer(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	unb64 := func(s string) string { b, _ := base64.StdEncoding.DecodeString(s); return string(b) }
	imap := func(badV bool) func(r *bufio.Reader, w net.Conn) error {
		return func(r *bufio.Reader, w net.Conn) error {
			srv := &scramServer{h: sha1.New, pass: "pencil"}
			fmt.Fprintf(w, "* OK [CAPABILITY IMAP4rev1 AUTH=SCRAM-SHA-1] fake ready\r\n")
			if l, _ := readCRLF(r); l != "a1 AUTHENTICATE SCRAM-SHA-1" {
				return fmt.Errorf("got %q", l)
			}
			fmt.Fprintf(w, "+ \r\n")
			l, _ := readCRLF(r)
			sf, err := srv.first(unb64(l))
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "* untagged noise\r\n+ %s\r\n", b64([]byte(sf)))
			l, _ = readCRLF(r)
			v, err := srv.final(unb64(l))
			if err != nil {
				return err
			}
			if badV {
				v = "v=" + b64(make([]byte, 20))
			}
			fmt.Fprintf(w, "+ %s\r\n", b64([]byte(v)))
			l, _ = readCRLF(r)
			switch {
			case !badV && l == "":
				fmt.Fprintf(w, "a1 OK Logged in\r\n")
			case badV && l == "*":
				fmt.Fprintf(w, "a1 BAD Authentication aborted by client.\r\n")
			default:
				return fmt.Errorf("client answered the server-final with %q", l)
			}
			if l, _ := readCRLF(r); l != "a2 LOGOUT" {
				return fmt.Errorf("want LOGOUT, got %q", l)
			}
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tagged, err := IMAPAuthenticate(ctx, fakeServer(t, imap(false)), "scram-sha-1", "user", "pencil")
	if err != nil || tagged != "a1 OK Logged in" {
		t.Errorf("right v=: %q %v", tagged, err)
	}
	tagged, err = IMAPAuthenticate(ctx, fakeServer(t, imap(true)), "SCRAM-SHA-1", "user", "pencil")
	if err == nil || !strings.HasPrefix(tagged, "a1 BAD") {
		t.Errorf("wrong v=: %q %v; want the client to abort with an error", tagged, err)
	}
}

func TestPOP3APOPFakeServer(t *testing.T) {
	ts := "<1896.697170952@dbc.mtview.ca.us>"
	addr := fakeServer(t, func(r *bufio.Reader, w net.Conn) error {
		fmt.Fprintf(w, "+OK POP3 server ready %s\r\n", ts)
		if l, _ := readCRLF(r); l != "APOP mrose c4c9334bac560ecc979e58001b3e22fb" {
			return fmt.Errorf("got %q", l)
		}
		fmt.Fprintf(w, "+OK maildrop has 1 message (369 octets)\r\n")
		readCRLF(r)
		return nil
	})
	reply, err := POP3APOP(context.Background(), addr, "mrose", "tanstaaf")
	if err != nil || !strings.HasPrefix(reply, "+OK maildrop") {
		t.Fatalf("%q %v", reply, err)
	}
	addr = fakeServer(t, func(r *bufio.Reader, w net.Conn) error {
		fmt.Fprintf(w, "+OK no APOP here\r\n")
		readCRLF(r)
		return nil
	})
	if _, err := POP3APOP(context.Background(), addr, "mrose", "tanstaaf"); err == nil {
		t.Fatal("greeting without a timestamp accepted")
	}
}
