package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRefusesNonLoopback(t *testing.T) {
	for _, target := range []string{"10.0.0.1:143", "example.com:9389", "[2001:db8::1]:1", "0.0.0.0:1"} {
		var out, errb bytes.Buffer
		if code := run([]string{"run", "-a", target, "-t", "1s"}, &out, &errb); code != 2 {
			t.Errorf("%s: exit %d, want 2", target, code)
		}
		if !strings.Contains(errb.String(), "loopback") {
			t.Errorf("%s: %q", target, errb.String())
		}
	}
}

func TestUsageErrors(t *testing.T) {
	// Each refused for its own reason, said on stderr.
	cases := map[string]struct {
		args []string
		want string
	}{
		"no target":         {[]string{"run"}, "-a TARGET is required"},
		"unknown command":   {[]string{"frobnicate"}, `unknown command "frobnicate"`},
		"extra args":        {[]string{"run", "-a", "/tmp/x", "extra"}, `unexpected arguments ["extra"]`},
		"bad users file":    {[]string{"-a", "/tmp/x", "-users-file", "/nonexistent/users"}, "/nonexistent/users: no such file"},
		"attack on lookups": {[]string{"-a", "/tmp/x", "-attack", "10", "-proto", "master"}, "authenticating protocol"},
		"unknown scenario":  {[]string{"compare", "-authd", "/bin/true", "-scenarios", "nosuch"}, `no scenario matches "nosuch"`},
	}
	for name, tc := range cases {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code == 0 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", name, code, errb.String(), tc.want)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"run", "-a", "/nonexistent/socket", "-t", "1s", "-timeout", "1s"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "connecting") {
		t.Errorf("unreachable socket: exit %d, %q", code, errb.String())
	}
}
