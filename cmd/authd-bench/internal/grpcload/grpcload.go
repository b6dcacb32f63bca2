// Package grpcload drives authd's gRPC API (api/proto/authd/v1) for the
// load generator: each load connection is one gRPC client connection (one
// HTTP/2 connection) on which Depth goroutines call Authenticate in a loop.
// An outcome is the call's answer: its result, or its status code.
//
// It lives apart from package load so that the generator's core needs
// only the standard library; cmd/authd-bench adds it to the registry it
// builds:
//
//	protos := load.Builtin()
//	protos["grpc"] = grpcload.Protocol{}
//
// Targets are a loopback host:port or a unix socket (load.ParseTarget
// refuses anything else). Without Config.TLS the connection is plaintext,
// which authd allows on loopback and unix sockets.
package grpcload

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/cmd/authd-bench/internal/load"
)

// Protocol is the "grpc" load protocol: Authenticate with the user's
// password (the engine sees it as AUTH PLAIN).
type Protocol struct{}

type conn struct {
	cc   *grpc.ClientConn
	api  authdv1.AuthServiceClient
	info *authdv1.RequestInfo
}

// Dial implements load.Protocol. It connects eagerly, so that connection
// set-up is not part of the measurement and an unreachable server is
// reported before the run.
func (Protocol) Dial(ctx context.Context, cfg *load.Config) (load.Conn, error) {
	var target string
	switch cfg.Target.Network {
	case "unix":
		p, err := filepath.Abs(cfg.Target.Address)
		if err != nil {
			return nil, err
		}
		target = "unix://" + p
	case "tcp":
		target = "passthrough:///" + cfg.Target.Address
	default:
		return nil, fmt.Errorf("grpc: unsupported network %q", cfg.Target.Network)
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("grpc %s: %w", cfg.Target, err)
	}
	cc.Connect()
	for {
		s := cc.GetState()
		if s == connectivity.Ready {
			break
		}
		if s == connectivity.TransientFailure || !cc.WaitForStateChange(ctx, s) {
			cc.Close()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("grpc %s: not ready: %w", cfg.Target, ctx.Err())
			}
			return nil, fmt.Errorf("grpc %s: connection failed", cfg.Target)
		}
	}
	info := &authdv1.RequestInfo{Service: cfg.Service, RemoteIp: cfg.RemoteIP}
	return &conn{cc: cc, api: authdv1.NewAuthServiceClient(cc), info: info}, nil
}

func (c *conn) Close() error { return c.cc.Close() }

// Run implements load.Conn with depth goroutines; the Worker is used under
// a mutex, since it belongs to one goroutine at a time.
func (c *conn) Run(depth int, deadline time.Time, w *load.Worker) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var mu sync.Mutex
	var firstErr error
	var g sync.WaitGroup
	for range depth {
		g.Go(func() {
			for {
				mu.Lock()
				r, ok := w.Next()
				mu.Unlock()
				if !ok {
					return
				}
				info := c.info
				if r.RIP != "" {
					// Honoured from trusted callers only (docs/operations.md §5).
					info = &authdv1.RequestInfo{Service: c.info.Service, RemoteIp: r.RIP}
				}
				start := time.Now()
				resp, err := c.api.Authenticate(ctx, &authdv1.AuthenticateRequest{
					User: r.User, Password: []byte(r.Password), Info: info,
				})
				o := outcome(resp, err)
				mu.Lock()
				w.Done(r, start, o)
				if o == load.OutcomeError && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				if o == load.OutcomeUnanswered || o == load.OutcomeError {
					return
				}
			}
		})
	}
	g.Wait()
	return firstErr
}

// outcome maps an Authenticate answer as grpcserver documents it: a
// result for definite answers, UNAVAILABLE for "could not tell".
func outcome(resp *authdv1.AuthenticateResponse, err error) load.Outcome {
	if err != nil {
		switch status.Code(err) {
		case codes.Unavailable:
			return load.OutcomeTempFail
		case codes.DeadlineExceeded:
			return load.OutcomeUnanswered
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return load.OutcomeUnanswered
		}
		return load.OutcomeError
	}
	switch resp.GetResult() {
	case authdv1.AuthResult_AUTH_RESULT_OK:
		return load.OutcomeOK
	case authdv1.AuthResult_AUTH_RESULT_UNSPECIFIED:
		return load.OutcomeError
	}
	return load.OutcomeFail
}
