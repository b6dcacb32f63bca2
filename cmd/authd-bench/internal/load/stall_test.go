package load

import (
	"testing"
	"time"
)

// TestStalledServerEnds checks that a run against a server that completes
// the handshake and then never answers still ends by itself, shortly
// after Duration + Timeout, with every request counted as unanswered.
func TestStalledServerEnds(t *testing.T) {
	sock := fakeAuthServer(t, false, "")
	users, _ := GenerateUsers(10, "", "")
	start := time.Now()
	res, err := Run(t.Context(), Config{
		Target: Target{Network: "unix", Address: sock}, Protocols: Builtin(), Conns: 3, Depth: 4,
		Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, Timeout: 300 * time.Millisecond,
		Users: users,
	})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("run took %v", el)
	}
	if res.Requests != 0 || res.Late.Unanswered != 12 {
		t.Errorf("requests %d, unanswered %d; want 0 and 12", res.Requests, res.Late.Unanswered)
	}
}
