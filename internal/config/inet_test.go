package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestInetListener(t *testing.T) {
	c := mustLoad(t, minimal+`service auth {
  inet_listener postfix {
    address = 127.0.0.1, ::1
    port = 12345
    allow_nets = 192.0.2.10 198.51.100.0/24,2001:db8::/32
  }
  inet_listener {
    port = 12346
  }
  inet_listener disabled {
    port = 0
  }
}
listen = 192.0.2.1
`)
	if len(c.InetListeners) != 2 {
		t.Fatalf("%d inet listeners: %+v", len(c.InetListeners), c.InetListeners)
	}
	pf := c.InetListeners[0]
	wantListen := []InetAddr{{Network: "tcp4", Addr: "127.0.0.1:12345"}, {Network: "tcp6", Addr: "[::1]:12345"}}
	if pf.Label() != "postfix" || pf.Port != 12345 || !slices.Equal(pf.Listen, wantListen) {
		t.Errorf("postfix: %+v", pf)
	}
	for ip, want := range map[string]bool{"192.0.2.10": true, "192.0.2.11": false, "198.51.100.77": true, "::ffff:198.51.100.1": true, "2001:db8::5": true, "127.0.0.1": false, "::1": false} {
		if got := pf.Allowed(netip.MustParseAddr(ip)); got != want {
			t.Errorf("allow_nets: %s allowed %v, want %v", ip, got, want)
		}
	}
	// No address: Dovecot's listen, even when set after the block (an
	// explicit address, so not optional); no
	// allow_nets: loopback only.
	un := c.InetListeners[1]
	if un.Label() != "inet:12346" || !slices.Equal(un.Listen, []InetAddr{{Network: "tcp4", Addr: "192.0.2.1:12346"}}) {
		t.Errorf("unnamed: %+v", un)
	}
	for ip, want := range map[string]bool{"127.0.0.1": true, "127.3.2.1": true, "::1": true, "::ffff:127.0.0.1": true, "192.0.2.1": false, "10.0.0.1": false} {
		if got := un.Allowed(netip.MustParseAddr(ip)); got != want {
			t.Errorf("default allowlist: %s allowed %v, want %v", ip, got, want)
		}
	}
	// The plaintext warning, for `authd check`.
	n := 0
	for _, w := range c.Warnings {
		if strings.Contains(w.Error(), "plaintext") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d plaintext warnings, want 2: %v", n, c.Warnings)
	}
	var dump strings.Builder
	c.Dump(&dump)
	for _, want := range []string{"inet_listener postfix {", "address = 127.0.0.1, ::1", "allow_nets = 192.0.2.10/32 198.51.100.0/24 2001:db8::/32", "allow_nets = 127.0.0.0/8 ::1/128"} {
		if !strings.Contains(dump.String(), want) {
			t.Errorf("dump lacks %q:\n%s", want, dump.String())
		}
	}
}

func TestInetListenerDefaultAddress(t *testing.T) {
	c := mustLoad(t, minimal+"service auth {\n  inet_listener {\n    port = 12345\n  }\n}\n")
	want := []InetAddr{{Network: "tcp4", Addr: "0.0.0.0:12345", Optional: true}, {Network: "tcp6", Addr: "[::]:12345", Optional: true}}
	if got := c.InetListeners[0].Listen; !slices.Equal(got, want) {
		t.Errorf("listen %+v, want Dovecot's default *, :: (%+v)", got, want)
	}
}

func TestInetListenerErrors(t *testing.T) {
	_, err := LoadBytes("t.conf", []byte(minimal+`service auth {
  inet_listener a {
    port = 70000
    ssl = yes
    haproxy = yes
    allow_nets = 192.0.2.0/33 , example.com
    bogus = 1
    sub {
    }
  }
  inet_listener auth-master {
    port = 1
  }
  inet_listener b {
    address = bad/name
    port = 2
  }
  inet_listener c {
    address = 127.0.0.1
    port = 3
  }
  inet_listener d {
    address = 127.0.0.1
    port = 3
  }
  inet_listener e {
    port = 4
    allow_nets = ,
  }
}
`))
	checkErrs(t, err, []string{
		`t.conf:6: port: "70000" is not a port number`,
		"t.conf:7: ssl = yes: authd's inet_listener has no TLS",
		"t.conf:8: haproxy = yes",
		`t.conf:9: allow_nets: "192.0.2.0/33" is not an address or a network`,
		`t.conf:9: allow_nets: "example.com" is not an address or a network`,
		`t.conf:10: unknown setting "bogus" in inet_listener { }`,
		`t.conf:11: section "sub" is not allowed in inet_listener { }`,
		"t.conf:14: inet_listener auth-master: authd serves only the client protocol over TCP",
		`t.conf:17: inet_listener b: address "bad/name" is neither an IP address`,
		"t.conf:25: inet_listener d: 127.0.0.1:3 is already used by inet_listener c",
		"t.conf:31: allow_nets is empty",
	})
}

// TestInetListenerDumpLoadsBack: authd check's output, in either
// language, gives the same listeners back (addresses without the port,
// Dovecot's default left implicit), and a 2.4 file takes inet_listener
// as a 2.3 one does.
func TestInetListenerDumpLoadsBack(t *testing.T) {
	block := "service auth {\n  inet_listener postfix {\n    address = 127.0.0.1, ::1\n    port = 12345\n  }\n  inet_listener {\n    port = 12346\n  }\n}\n"
	for name, text := range map[string]string{
		"2.3": minimal + block,
		"2.4": "dovecot_config_version = 2.4.1\npassdb static {\n  password = pw\n}\n" + block,
	} {
		c := mustLoad(t, text)
		if len(c.InetListeners) != 2 {
			t.Fatalf("%s: %d inet listeners", name, len(c.InetListeners))
		}
		var out strings.Builder
		c.Dump(&out)
		back, err := LoadBytes("dump.conf", []byte(out.String()))
		if err != nil {
			t.Fatalf("%s: the dump does not load back: %v\n%s", name, err, out.String())
		}
		for i, l := range c.InetListeners {
			got := back.InetListeners[i]
			if !slices.Equal(got.Listen, l.Listen) || got.Port != l.Port || !slices.Equal(got.AllowNets, l.AllowNets) {
				t.Errorf("%s: listener %d %+v came back as %+v", name, i, l, got)
			}
		}
	}
}
