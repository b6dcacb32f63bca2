package testenv

import (
	"os"
	"testing"

	"github.com/authd-project/authd/internal/realserver"
)

// Hydra is a running Ory Hydra OAuth2/OpenID Connect server
// (realserver.Hydra): CreateClient, Token, Revoke, JWKS, IntrospectionURL,
// Issuer, Kill.
type Hydra = realserver.Hydra

// HydraClient is a client registered with Hydra.CreateClient.
type HydraClient = realserver.HydraClient

// StartHydra starts a private Hydra (built from the Go module proxy on
// first use, a few minutes, then cached: realserver.HydraBinary; its cache
// directory follows AUTHD_TESTENV_CACHE) on two free loopback ports, with
// an in-memory store. It is stopped at cleanup, and its log is shown if the
// test failed. Without a go command or a C compiler it skips (or fails
// under AUTHD_REQUIRE_INTEGRATION=1).
func StartHydra(t testing.TB) *Hydra {
	t.Helper()
	bin, err := realserver.HydraBinary(t.Context(), os.Getenv(EnvRootCache))
	if err != nil {
		startFailed(t, err)
	}
	h, err := realserver.StartHydra(t.Context(), realserver.HydraOptions{Instance: instance(Dir(t)), Bin: bin})
	if err != nil {
		startFailed(t, err)
	}
	t.Cleanup(h.Stop)
	logOnFailure(t, h.Log)
	return h
}
