package dovecot_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/sasl"
)

// infoEngine records the Info of every PLAIN login.
type infoEngine struct {
	dovecot.ClientEngine
	mu    sync.Mutex
	infos []engine.Info
}

func (e *infoEngine) VerifyPlain(ctx context.Context, info *engine.Info, authzid, authcid string, pw []byte) engine.Result {
	e.mu.Lock()
	e.infos = append(e.infos, *info)
	e.mu.Unlock()
	return e.ClientEngine.VerifyPlain(ctx, info, authzid, authcid, pw)
}

func (e *infoEngine) last() engine.Info {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.infos[len(e.infos)-1]
}

// serveTCP serves srv on a loopback TCP port until the test ends.
func serveTCP(t *testing.T, srv *dovecot.ClientServer) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		srv.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.Serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		cancel()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestPeerAddress: on a TCP listener a request without rip=/lip= takes
// the connection's addresses (for the brute-force defence and
// allow_nets), one with them keeps what the client said (Postfix sends
// the SMTP client's); a unix-socket server invents nothing.
func TestPeerAddress(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	for _, peer := range []bool{true, false} {
		rec := &infoEngine{ClientEngine: env.eng}
		srv := dovecot.NewClientServer(dovecot.ClientConfig{
			Engine: rec, Mechs: []sasl.Def{sasl.Defs["PLAIN"]}, Shared: env.shared, PeerAddress: peer,
		})
		addr := serveTCP(t, srv)
		nc, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		c := &conn{t: t, nc: nc, r: bufio.NewReader(nc)}
		c.handshake()
		c.send(fmt.Sprintf(alicePlain, 1))
		if got := c.readLine(5 * time.Second); got != "OK\t1\tuser=alice@example.com" {
			t.Fatalf("peer=%v: %q", peer, got)
		}
		info := rec.last()
		clientPort := strconv.Itoa(nc.LocalAddr().(*net.TCPAddr).Port)
		_, serverPort, _ := net.SplitHostPort(addr)
		if peer {
			if info.RemoteIP != "127.0.0.1" || info.RemotePort != clientPort || info.LocalIP != "127.0.0.1" || info.LocalPort != serverPort ||
				info.RealRemoteIP != "127.0.0.1" || !info.NotLocal {
				t.Errorf("TCP without rip: %+v", info)
			}
		} else if info.RemoteIP != "" || info.LocalIP != "" || info.NotLocal {
			t.Errorf("without PeerAddress: %+v", info)
		}
		c.send("AUTH\t2\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.25\trip=198.51.100.7\tresp=AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==")
		if got := c.readLine(5 * time.Second); got != "OK\t2\tuser=alice@example.com" {
			t.Fatalf("peer=%v with rip: %q", peer, got)
		}
		if info := rec.last(); info.RemoteIP != "198.51.100.7" || info.LocalIP != "192.0.2.25" || info.RemotePort != "" {
			t.Errorf("peer=%v: Postfix's rip/lip replaced: %+v", peer, info)
		}
	}
}
