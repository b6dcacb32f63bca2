package load

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// refusingProtocol is a protocol whose Dial always fails with errRefused.
type refusingProtocol struct{}

var errRefused = errors.New("refusing protocol dialled")

func (refusingProtocol) Dial(context.Context, *Config) (Conn, error) { return nil, errRefused }

// TestRegistryBelongsToTheCaller: a run uses exactly the registry it is
// given. What one caller adds to its registry is invisible to another's,
// and a run without one is refused rather than given a shared default.
func TestRegistryBelongsToTheCaller(t *testing.T) {
	users, _ := GenerateUsers(3, "", "")
	cfg := func(r Registry, proto string) Config {
		return Config{
			Target: Target{Network: "unix", Address: "/nonexistent/auth"}, Protocols: r, Protocol: proto,
			Duration: time.Second, Timeout: time.Second, Users: users,
		}
	}
	if _, err := Run(t.Context(), cfg(nil, "client")); err == nil || !strings.Contains(err.Error(), "no protocols") {
		t.Errorf("run without a registry: %v", err)
	}

	mine := Builtin()
	mine["refusing"] = refusingProtocol{}
	if _, err := Run(t.Context(), cfg(mine, "refusing")); !errors.Is(err, errRefused) {
		t.Errorf("run with the caller's protocol: %v, want %v", err, errRefused)
	}

	other := Builtin()
	_, err := Run(t.Context(), cfg(other, "refusing"))
	if err == nil || !strings.Contains(err.Error(), `unknown protocol "refusing" (this build has: client, master)`) {
		t.Errorf("another caller's registry saw the protocol: %v", err)
	}
	if len(other) != 2 || other["client"] == mine["client"] {
		t.Errorf("Builtin registries share their protocol values: %v / %v", other, mine)
	}
}
