package ldap

import (
	"context"
	"net"
	"sync"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"

	"github.com/authd-project/authd/backends"
)

// bindServer answers simple binds with success, except that on its
// first connection the second bind gets a Notice of Disconnection (as a
// server going away sends) and the connection is closed.
func bindServer(t *testing.T) (addr string, conns func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			first := n == 1
			mu.Unlock()
			wg.Go(func() { serveBinds(c, first) })
		}
	})
	return ln.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func serveBinds(c net.Conn, first bool) {
	defer c.Close()
	for binds := 1; ; binds++ {
		p, err := ber.ReadPacket(c)
		if err != nil || len(p.Children) < 2 {
			return
		}
		id, op := p.Children[0].Value.(int64), goldap.ApplicationBindResponse
		code := goldap.LDAPResultSuccess
		if first && binds == 2 {
			id, op, code = 0, goldap.ApplicationExtendedResponse, goldap.LDAPResultUnavailable
		}
		env := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Response")
		env.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
		res := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ber.Tag(op), nil, "Response")
		res.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), "resultCode"))
		res.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
		res.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "diagnosticMessage"))
		env.AppendChild(res)
		if _, err := c.Write(env.Bytes()); err != nil || op != goldap.ApplicationBindResponse {
			return
		}
	}
}

// A Notice of Disconnection in place of a bind response on a reused
// connection is a network failure, as it was with go-ldap: the bind is
// tried again on a new connection, and the login is answered.
func TestRawBindRetriesAfterNotice(t *testing.T) {
	addr, conns := bindServer(t)
	d := testDB(t, "uris = ldap://"+addr+"\nbase = dc=example\nauth_bind = yes\n"+
		"auth_bind_userdn = uid=%n,dc=example\nauthd_pool_size = 1\n")
	for i := range 2 {
		ans, err := d.VerifyPass(context.Background(), req("alice"), []byte("pw"))
		if err != nil || ans.Outcome != backends.Found {
			t.Fatalf("bind %d: %v, err %v", i+1, ans.Outcome, err)
		}
	}
	if n := conns(); n != 2 {
		t.Errorf("%d connections, want 2: the second bind retried on a new one", n)
	}
}
