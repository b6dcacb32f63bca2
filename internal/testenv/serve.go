package testenv

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// Served is one of authd's protocol servers (dovecot.ClientServer,
// dovecot.MasterServer) as ServeUnix drives it.
type Served struct {
	// Serve handles one connection; each runs on its own goroutine.
	Serve func(net.Conn)
	// Shutdown, if set, runs at cleanup once the listener is closed; an
	// error fails the test.
	Shutdown func(context.Context) error
	// Run, if set, is the server's background loop (ClientServer.Run),
	// stopped after Shutdown.
	Run func(context.Context)
}

// ServeUnix serves s on a unix socket at path until the test ends and
// returns path. Cleanup closes the listener, waits for the accept loop,
// shuts the server down (5 s at most) and waits for its loop, so nothing
// the test started outlives it.
func ServeUnix(t testing.TB, path string, s Served) string {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("testenv: ServeUnix: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var run sync.WaitGroup
	if s.Run != nil {
		run.Go(func() { s.Run(ctx) })
	}
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.Serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-acceptDone
		if s.Shutdown != nil {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			if err := s.Shutdown(sctx); err != nil {
				t.Errorf("testenv: shutting down %s: %v", path, err)
			}
		}
		cancel()
		run.Wait()
	})
	return path
}
