package main

import (
	"strings"
	"testing"
	"time"
)

// Stored hashes whose cost parameters would crash or stall the daemon
// (docs/schemes.md §7): scrypt with p = 2^29 asks for a 64 GiB buffer, a
// fatal error the runtime cannot recover from; bcrypt cost 31 is about 36
// hours of one core.
const (
	hostileScrypt = "{CRYPT}$7$1/........Usaltsalt$xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	hostileBcrypt = "{BLF-CRYPT}$2y$31$KN.E500HUwXqF5Xz7F87NeEpPCWeNQmTMiqgthMo69lAJGe38gN.S"
)

// TestHostileHashRows: with those rows in the passwd-file the daemon stays
// up, each of their logins is a temporary failure (exit 75) answered at
// once, the log names user and parameter but not the hash, and a normal
// user logs in right after.
func TestHostileHashRows(t *testing.T) {
	files := map[string]string{"users": baseUsers["users"] +
		"mallory@example.com:" + hostileScrypt + ":1010:1010::/home/mallory::\n" +
		"trudy@example.com:" + hostileBcrypt + ":1011:1011::/home/trudy::\n"}
	p := startAuthd(t, baseConf, "run/auth-client", files)
	sock := p.path("run/auth-client")
	for _, user := range []string{"mallory@example.com", "trudy@example.com"} {
		start := time.Now()
		out, code := authdTest(t, "-a", sock, user, "secret")
		// A liveness bound: without the budget this login would run for
		// hours (or end the process), not a performance assertion.
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: answered after %v", user, d)
		}
		if code != 75 {
			t.Fatalf("%s: exit %d, want 75 (temporary failure): %s", user, code, out)
		}
		p.stillServing(t)
	}
	if out, code := authdTest(t, "-a", sock, "alice@example.com", "wonderland"); code != 0 {
		t.Fatalf("normal user after the hostile rows: exit %d: %s", code, out)
	}
	p.stillServing(t)
	// The log reaches the test through a pipe, after the replies: wait
	// for the last row's line before reading it.
	wants := []string{"over the cost budget", "mallory@example.com", "param=p", "trudy@example.com", "param=cost"}
	eventually(func() bool { return strings.Contains(p.stderr.String(), "param=cost") })
	logs := p.stderr.String()
	for _, want := range wants {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	for _, hash := range []string{"Usaltsalt", "KN.E500HUwXqF5Xz7F87Ne"} {
		if strings.Contains(logs, hash) {
			t.Errorf("the log quotes a stored hash (%q):\n%s", hash, logs)
		}
	}
}
