package grpcserver_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/grpcserver"
)

// BenchmarkAuthenticate measures gRPC Authenticate of {PLAIN} passwd-file
// users over loopback TCP: several client connections, many requests in
// flight on each (b.SetParallelism), the whole engine, no cache. It
// reports requests per second; the target on the 2-core reference machine
// is 20k/s. Client and server share the CPUs, so the figure is a lower
// bound for the server alone.
//
//	go test -run '^$' -bench Authenticate -benchtime 5s ./internal/grpcserver/
func BenchmarkAuthenticate(b *testing.B) {
	const users = 1000
	var sb strings.Builder
	for i := range users {
		fmt.Fprintf(&sb, "user%d@example.com:{PLAIN}pass%d:%d:%d::/home/user%d::\n", i, i, 10000+i, 10000+i, i)
	}
	eng := newEngine(b, sb.String())
	for _, mode := range []string{"plaintext", "TLS"} {
		b.Run(mode, func(b *testing.B) {
			cfg := config.GRPC{}
			files := newTLSFiles(b)
			if mode == "TLS" {
				cfg.TLSCertFile, cfg.TLSKeyFile = files.serverCert, files.serverKey
			}
			srv := startGRPC(b, cfg, grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})
			const conns = 4
			clients := make([]authdv1.AuthServiceClient, conns)
			for i := range clients {
				if mode == "TLS" {
					clients[i] = dial(b, srv, files.clientTLS(b, false))
				} else {
					clients[i] = dial(b, srv, nil)
				}
				// Connect before the clock starts.
				if _, err := clients[i].Authenticate(context.Background(), &authdv1.AuthenticateRequest{User: "user0@example.com", Password: []byte("pass0")}); err != nil {
					b.Fatal(err)
				}
			}
			var next, fails atomic.Int64
			b.SetParallelism(16) // 32 goroutines on 2 cores: requests in flight on every connection
			b.ResetTimer()
			cpu0 := cpuTime()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					i := next.Add(1)
					u := i % users
					req := &authdv1.AuthenticateRequest{
						User:     fmt.Sprintf("user%d@example.com", u),
						Password: []byte(fmt.Sprintf("pass%d", u)),
						Info:     &authdv1.RequestInfo{Service: "imap"},
					}
					resp, err := clients[i%conns].Authenticate(ctx, req)
					if err != nil || resp.GetResult() != authdv1.AuthResult_AUTH_RESULT_OK {
						fails.Add(1)
					}
				}
			})
			elapsed := time.Since(start)
			cpu := cpuTime() - cpu0
			b.StopTimer()
			if n := fails.Load(); n > 0 {
				b.Fatalf("%d requests failed", n)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			// CPU per request (client and server together, both in this
			// process) tells the capacity even when other work shares the
			// machine: a busy host lowers req/s, not CPU per request.
			perReq := cpu.Seconds() / float64(b.N)
			b.ReportMetric(perReq*1e6, "cpu-µs/req")
			b.ReportMetric(float64(runtime.NumCPU())/perReq, "req/s@all-cpus")
		})
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
