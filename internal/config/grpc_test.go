package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestGRPCDefaults: without a grpc { } section, and with one that sets
// only listen, every limit has its documented default, reflection is
// off, nobody is trusted and only root is admin.
func TestGRPCDefaults(t *testing.T) {
	for _, conf := range []string{minimal, minimal + "grpc {\n listen = 127.0.0.1:9389\n}\n"} {
		g := mustLoad(t, conf).GRPC
		want := GRPC{
			MaxConnections: 1024, MaxStreams: 128, MaxMessageSize: 64 << 10,
			HandshakeTimeout: 5 * time.Second, RequestTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute,
			KeepaliveMinTime: 10 * time.Second, MaxDelayedAnswers: 10000,
			AdminUIDs: []uint32{0},
			Listen:    g.Listen, Pos: g.Pos,
		}
		if !reflect.DeepEqual(g, want) {
			t.Errorf("defaults:\n got %+v\nwant %+v", g, want)
		}
	}
}

func TestGRPCSettings(t *testing.T) {
	c := mustLoad(t, minimal+`grpc {
  listen = unix:/run/authd/grpc.sock
  max_connections = 50
  max_streams = 8
  max_message_size = 32k
  handshake_timeout = 2 secs
  request_timeout = 1500 ms
  idle_timeout = 0
  keepalive_min_time = 1 min
  max_delayed_answers = 100
  reflection = yes
  admin_uids = 0, 1000
  trusted_uids = 33 33
}
`)
	g := c.GRPC
	if g.MaxConnections != 50 || g.MaxStreams != 8 || g.MaxMessageSize != 32<<10 || g.HandshakeTimeout != 2*time.Second ||
		g.RequestTimeout != 1500*time.Millisecond || g.IdleTimeout != 0 || g.KeepaliveMinTime != time.Minute ||
		g.MaxDelayedAnswers != 100 || !g.Reflection {
		t.Errorf("limits %+v", g)
	}
	if !reflect.DeepEqual(g.AdminUIDs, []uint32{0, 1000}) || !reflect.DeepEqual(g.TrustedUIDs, []uint32{33}) {
		t.Errorf("uids admin %v trusted %v", g.AdminUIDs, g.TrustedUIDs)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings %v", c.Warnings)
	}

	// Nobody: an empty list takes root's default admin role away.
	g = mustLoad(t, minimal+"grpc {\n listen = unix:/run/g.sock\n admin_uids =\n}\n").GRPC
	if len(g.AdminUIDs) != 0 {
		t.Errorf("admin_uids = (empty): %v", g.AdminUIDs)
	}

	// Certificate names need mTLS.
	g = mustLoad(t, minimal+`grpc {
  listen = 192.0.2.1:9389
  tls_cert_file = a
  tls_key_file = b
  tls_client_ca_file = c
  admin_clients = ops.example.com  backup
  trusted_clients = webmail.example.com
}
`).GRPC
	if !reflect.DeepEqual(g.AdminClients, []string{"ops.example.com", "backup"}) || !reflect.DeepEqual(g.TrustedClients, []string{"webmail.example.com"}) {
		t.Errorf("clients admin %q trusted %q", g.AdminClients, g.TrustedClients)
	}
}

func TestGRPCSettingErrors(t *testing.T) {
	for _, tc := range []struct{ conf, err string }{
		{"max_connections = 0", "max_connections: must be at least 1"},
		{"max_connections = many", "max_connections: invalid number"},
		{"max_streams = 0", "max_streams: must be at least 1"},
		{"max_message_size = 1k", "max_message_size: must be between 16 k and 16 M"},
		{"max_message_size = 1G", "max_message_size: must be between"},
		{"handshake_timeout = 0", "handshake_timeout: must be longer than 0"},
		{"request_timeout = 10", "request_timeout: time interval \"10\" is missing units"},
		{"keepalive_min_time = 0", "keepalive_min_time: must be longer than 0"},
		{"max_delayed_answers = 0", "max_delayed_answers: must be at least 1"},
		{"reflection = maybe", "reflection:"},
		{"admin_uids = root", `admin_uids: "root" is not a numeric uid`},
		{"trusted_uids = 1 -2", `trusted_uids: "-2" is not a numeric uid`},
		{"admin_clients = ops", "admin_clients and trusted_clients name client certificates: they need tls_client_ca_file"},
		{"trusted_clients = webmail", "they need tls_client_ca_file"},
		{"max_stream = 1", `unknown setting "max_stream" in grpc { } (did you mean "max_streams"?)`},
	} {
		_, err := LoadBytes("t.conf", []byte(minimal+"grpc {\n listen = 127.0.0.1:9389\n "+tc.conf+"\n}\n"))
		t.Run(tc.conf, func(t *testing.T) { checkErrs(t, err, []string{tc.err}) })
	}
}

// TestGRPCUIDsWarnOnTCP: uid lists mean nothing on a TCP listener, where
// the peer has no uid; saying so beats silently ignoring them.
func TestGRPCUIDsWarnOnTCP(t *testing.T) {
	for conf, warn := range map[string]bool{
		"listen = 127.0.0.1:9389\n trusted_uids = 33":   true,
		"listen = 127.0.0.1:9389\n admin_uids = 1000":   true,
		"listen = 127.0.0.1:9389\n admin_uids = 0":      false, // the default, written out (a dump)
		"listen = unix:/run/g.sock\n trusted_uids = 33": false,
	} {
		c := mustLoad(t, minimal+"grpc {\n "+conf+"\n}\n")
		got := len(c.Warnings) == 1 && strings.Contains(c.Warnings[0].Error(), "apply to a unix: listener only")
		if got != warn || (!warn && len(c.Warnings) != 0) {
			t.Errorf("%q: warnings %v", conf, c.Warnings)
		}
	}
}

// TestGRPCDumpRoundTrip: authd check prints every grpc { } setting, and
// the output loads back to the same section.
func TestGRPCDumpRoundTrip(t *testing.T) {
	for _, section := range []string{"", `grpc {
  listen = 127.0.0.1:9389
  tls_cert_file = /etc/authd/tls.crt
  tls_key_file = /etc/authd/tls.key
  tls_client_ca_file = /etc/authd/ca.crt
  max_connections = 9
  max_streams = 3
  max_message_size = 100k
  handshake_timeout = 750 ms
  request_timeout = 3 secs
  idle_timeout = 0
  keepalive_min_time = 30 secs
  max_delayed_answers = 5
  reflection = yes
  admin_clients = ops
  admin_uids =
  trusted_clients = webmail api
}
`} {
		c := mustLoad(t, minimal+section)
		var out bytes.Buffer
		c.Dump(&out)
		for _, want := range []string{"max_streams = ", "reflection = ", "admin_uids = ", "trusted_clients = "} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("dump lacks %q:\n%s", want, out.String())
			}
		}
		back, err := LoadBytes("dump.conf", out.Bytes())
		if err != nil {
			t.Fatalf("dump does not load: %v\n%s", err, out.String())
		}
		c.GRPC.Pos, back.GRPC.Pos = Pos{}, Pos{}
		if !reflect.DeepEqual(c.GRPC, back.GRPC) {
			t.Errorf("round trip:\n got %+v\nwant %+v", back.GRPC, c.GRPC)
		}
	}
}
