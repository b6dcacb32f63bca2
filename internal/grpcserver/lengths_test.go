package grpcserver_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/grpcserver"
)

// lookupCounter counts passdb lookups.
type lookupCounter struct{ n atomic.Int64 }

func (o *lookupCounter) PassdbLookup(string, string, time.Duration) { o.n.Add(1) }
func (o *lookupCounter) UserdbLookup(string, string, time.Duration) {}
func (o *lookupCounter) Verify(string, time.Duration)               {}
func (o *lookupCounter) HashOverBudget(string, string)              {}
func (o *lookupCounter) VerifyShed(string)                          {}

// Authenticate refuses a password over 1,024 bytes and a name over 256
// like a wrong password, before any lookup, even when the password is
// the stored one.
func TestAuthenticateInputLengths(t *testing.T) {
	long := strings.Repeat("p", engine.MaxPasswordLen+1)
	name := strings.Repeat("n", engine.MaxNameLen-1) + "@x"
	eng := newEngine(t, "long@x:"+long+"::::::\n"+name+":pw::::::\n")
	var obs lookupCounter
	eng.SetObserver(&obs)
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})
	c := dial(t, srv, nil)
	for _, tc := range []struct{ what, user, pass string }{
		{"1,025-byte password", "long@x", long},
		{"257-byte user name", name, "pw"},
	} {
		resp, err := c.Authenticate(context.Background(), &authdv1.AuthenticateRequest{User: tc.user, Password: []byte(tc.pass)})
		if err != nil || resp.GetResult() != authdv1.AuthResult_AUTH_RESULT_FAILED {
			t.Errorf("%s: %v %v, want FAILED", tc.what, resp.GetResult(), err)
		}
	}
	if n := obs.n.Load(); n != 0 {
		t.Errorf("%d passdb lookups for refused requests", n)
	}
}
