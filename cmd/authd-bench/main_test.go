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
	cases := map[string][]string{
		"no target":        {"run"},
		"unknown command":  {"frobnicate"},
		"extra args":       {"run", "-a", "/tmp/x", "extra"},
		"bad users file":   {"-a", "/tmp/x", "-users-file", "/nonexistent/users"},
		"unknown scenario": {"compare", "-authd", "/bin/true", "-scenarios", "nosuch"},
	}
	for name, args := range cases {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code == 0 {
			t.Errorf("%s: exit 0", name)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"run", "-a", "/nonexistent/socket", "-t", "1s", "-timeout", "1s"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "connecting") {
		t.Errorf("unreachable socket: exit %d, %q", code, errb.String())
	}
}
