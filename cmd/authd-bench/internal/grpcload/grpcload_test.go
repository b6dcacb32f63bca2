package grpcload

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/cmd/authd-bench/internal/load"
)

// fakeAuth answers Authenticate from the generator's default user set:
// pwNNNNN is right for userNNNNN@example.com; "down@…" is a temporary
// failure.
type fakeAuth struct {
	authdv1.UnimplementedAuthServiceServer
}

func (fakeAuth) Authenticate(_ context.Context, r *authdv1.AuthenticateRequest) (*authdv1.AuthenticateResponse, error) {
	if strings.HasPrefix(r.GetUser(), "down@") {
		return nil, status.Error(codes.Unavailable, "backend down")
	}
	if r.GetInfo().GetService() != "imap" {
		return nil, status.Error(codes.InvalidArgument, "service")
	}
	num := strings.TrimSuffix(strings.TrimPrefix(r.GetUser(), "user"), "@example.com")
	if string(r.GetPassword()) == "pw"+num {
		return &authdv1.AuthenticateResponse{Result: authdv1.AuthResult_AUTH_RESULT_OK, User: r.GetUser()}, nil
	}
	return &authdv1.AuthenticateResponse{Result: authdv1.AuthResult_AUTH_RESULT_FAILED}, nil
}

func serve(t *testing.T, network, addr string) net.Addr {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	authdv1.RegisterAuthServiceServer(s, fakeAuth{})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr()
}

func TestGRPCLoad(t *testing.T) {
	protos := load.Registry{"grpc": Protocol{}}
	users, _ := load.GenerateUsers(100, "", "")
	tcp := serve(t, "tcp", "127.0.0.1:0")
	sock := filepath.Join(t.TempDir(), "grpc.sock")
	serve(t, "unix", sock)
	for name, target := range map[string]string{"tcp": tcp.String(), "unix": "unix:" + sock} {
		t.Run(name, func(t *testing.T) {
			tg, err := load.ParseTarget(target)
			if err != nil {
				t.Fatal(err)
			}
			r, err := load.Run(t.Context(), load.Config{
				Target: tg, Protocols: protos, Protocol: "grpc", Conns: 2, Depth: 4, Duration: 500 * time.Millisecond,
				Warmup: 100 * time.Millisecond, Users: users, WrongShare: 0.25, Seed: 7,
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests == 0 || r.OK+r.Fail != r.Requests || r.Fail != r.WrongSent || r.Unexpected != 0 || r.Errors != 0 {
				t.Errorf("%+v", r)
			}
		})
	}
	t.Run("tempfail", func(t *testing.T) {
		tg, _ := load.ParseTarget(tcp.String())
		r, err := load.Run(t.Context(), load.Config{
			Target: tg, Protocols: protos, Protocol: "grpc", Conns: 1, Depth: 2, Duration: 200 * time.Millisecond,
			Users: &load.Users{Names: []string{"down@example.com"}, Passwords: []string{"x"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.TempFail == 0 || r.TempFail != r.Requests {
			t.Errorf("tempfail %d of %d", r.TempFail, r.Requests)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		tg, _ := load.ParseTarget("unix:" + filepath.Join(t.TempDir(), "none"))
		_, err := load.Run(t.Context(), load.Config{Target: tg, Protocols: protos, Protocol: "grpc", Duration: time.Second,
			Timeout: 500 * time.Millisecond, Users: &load.Users{Names: []string{"a"}, Passwords: []string{"b"}}})
		if err == nil {
			t.Error("connected to nothing")
		}
		if errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	})
}
