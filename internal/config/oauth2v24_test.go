package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends/oauth2"
)

// oauth2Of reads a 2.4 oauth2 passdb's settings as the daemon does.
func oauth2Of(t *testing.T, d DB) oauth2.Settings {
	t.Helper()
	var list []oauth2.Setting24
	for _, x := range d.DriverSettings {
		list = append(list, oauth2.Setting24{Key: x.Key, Value: x.Value, Origin: x.Pos.String()})
	}
	s, err := oauth2.FromSettings24(list)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOAuth2V24: the oauth2_* settings of the top level, of oauth2 { } and
// of the passdb block (innermost wins) reach the driver's Settings with
// 2.4's names and defaults.
func TestOAuth2V24(t *testing.T) {
	c := load24(t, `auth_mechanisms = oauthbearer xoauth2
oauth2 {
  introspection_mode = get
  username_attribute = sub
  http_client_request_timeout = 5s
}
passdb oauth2 {
  mechanisms_filter = oauthbearer xoauth2
  oauth2 {
    introspection_mode = post
    introspection_url = http://127.0.0.1:9/introspect
    client_id = authd
    client_secret = s3cret
    active_attribute = active
    scope {
      mail = yes
      imap = yes
    }
    fields {
      quota = %{oauth2:quota}
    }
    ssl_client_ca_file = /etc/ssl/ca.pem
    ssl_client_require_valid_cert = no
  }
}
`)
	// post with client credentials: 2.4.1 does not send them.
	if len(c.Passdbs) != 1 || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].Error(), "posts the token alone") {
		t.Fatalf("passdbs %d warnings %v", len(c.Passdbs), c.Warnings)
	}
	s := oauth2Of(t, c.Passdbs[0])
	switch {
	case !s.V24 || s.IntrospectionMode != "post" || s.IntrospectionURL != "http://127.0.0.1:9/introspect":
		t.Errorf("mode %q url %q v24 %v", s.IntrospectionMode, s.IntrospectionURL, s.V24)
	case s.UsernameAttribute != "sub" || s.UsernameValidationFormat != "%{user}":
		t.Errorf("username attribute %q format %q", s.UsernameAttribute, s.UsernameValidationFormat)
	case s.ClientID != "authd" || s.ClientSecret != "s3cret":
		t.Errorf("client %q", s.ClientID)
	case s.ActiveAttribute != "active" || s.ActiveValue != "":
		t.Errorf("active %q=%q", s.ActiveAttribute, s.ActiveValue)
	case s.Scope != "imap mail" && s.Scope != "mail imap":
		t.Errorf("scope %q", s.Scope)
	case len(s.Fields24) != 1 || s.Fields24[0] != [2]string{"quota", "%{oauth2:quota}"}:
		t.Errorf("fields %v", s.Fields24)
	case s.TLSCACertFile != "/etc/ssl/ca.pem" || !s.TLSAllowInvalidCert:
		t.Errorf("tls ca %q invalid ok %v", s.TLSCACertFile, s.TLSAllowInvalidCert)
	case s.TimeoutMsecs != 5000 || s.MaxParallelConnections != 10 || s.MaxIdleTimeMsecs != 60000:
		t.Errorf("timeout %d parallel %d idle %d", s.TimeoutMsecs, s.MaxParallelConnections, s.MaxIdleTimeMsecs)
	}
}

// TestOAuth2V24Bad: bad values are errors at their file:line, settings
// authd cannot apply are named, and 2.4.1's own checks apply.
func TestOAuth2V24Bad(t *testing.T) {
	const pass = "passdb oauth2 {\n  mechanisms_filter = oauthbearer\n  oauth2 {\n"
	for _, tc := range []struct{ body, want string }{
		{pass + "    introspection_url = http://h/i\n    force_introspection = maybe\n  }\n}\n", "t.conf:7: oauth2_force_introspection"},
		{pass + "    introspection_url = http://h/i\n  }\n}\n", "oauth2_introspection_mode is not set"},
		{pass + "    introspection_mode = auth\n  }\n}\n", "needs oauth2_tokeninfo_url or oauth2_introspection_url"},
		{pass + "    introspection_mode = sideways\n    introspection_url = http://h/i\n  }\n}\n", "invalid introspection_mode"},
		{pass + "    introspection_mode = get\n    introspection_url = http://h/i\n    client_id = x\n  }\n}\n", "oauth2_client_id and oauth2_client_secret must be given together"},
		{pass + "    introspection_mode = get\n    introspection_url = http://h/i\n    http_client_proxy_url = http://proxy/\n  }\n}\n", "t.conf:8: http_client_proxy_url: this HTTP/TLS client setting is not applied"},
		{pass + "    introspection_mode = get\n    introspection_url = http://h/i\n    http_client_rawlog_dir = /tmp/raw\n  }\n}\n", "rawlog_dir is not supported"},
		{pass + "    introspection_mode = get\n    introspection_url = http://h/i\n    http_client_request_timeout = soon\n  }\n}\n", "t.conf:8: http_client_request_timeout"},
		{pass + "    introspection_mode = get\n    introspection_url = http://h/i\n    fields {\n      quota = %{oauth2:quota\n    }\n  }\n}\n", "oauth2_fields"},
		{pass + "    introspection_mode = get\n    introspection_url = http://h/i\n    username_validation_format = %Lu\n  }\n}\n", "2.3's variable syntax"},
		{pass + "    introspection_mode = local\n  }\n}\n", "not supported by authd with a Dovecot 2.4 configuration"},
		{pass + "    introspection_mode = local\n    oauth2_local_validation {\n      dict fs {\n      }\n    }\n  }\n}\n", "t.conf:7: oauth2_local_validation { }: JWT validation keys from a dict"},
	} {
		_, err := LoadBytes("t.conf", []byte(head24+tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %q", tc.body, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "http://proxy") {
			t.Errorf("value quoted in %v", err)
		}
	}
}

// TestOAuth2V24Mechanisms: an oauth2 passdb that PLAIN reaches loads with
// a warning, since Dovecot 2.4 would do a password grant there.
func TestOAuth2V24Mechanisms(t *testing.T) {
	c := load24(t, "passdb oauth2 {\n  oauth2 {\n    introspection_mode = get\n    introspection_url = http://h/i\n  }\n}\n")
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].Error(), "password grant") {
		t.Errorf("warnings %v", c.Warnings)
	}
}

// TestOAuth2V24NoPassdb: OAUTHBEARER without an oauth2 passdb (Dovecot
// 2.4's way: the mechanism checks the token) loads with a warning.
func TestOAuth2V24NoPassdb(t *testing.T) {
	c := load24(t, "auth_mechanisms = plain oauthbearer\noauth2 {\n  introspection_mode = get\n  introspection_url = http://h/i\n}\npassdb static {\n  password = x\n}\n")
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].Error(), "t.conf:3: auth_mechanisms has oauthbearer or xoauth2 but there is no oauth2 passdb") {
		t.Errorf("warnings %v", c.Warnings)
	}
}

// TestOAuth2V24DumpRoundTrip: authd check's 2.4 dump of an oauth2 setup
// loads back into the same driver settings.
func TestOAuth2V24DumpRoundTrip(t *testing.T) {
	c := load24(t, "oauth2 {\n  introspection_mode = get\n  introspection_url = http://h/i\n  http_client_request_timeout = 5s\n  scope {\n    mail = yes\n  }\n}\n"+
		"passdb oauth2 {\n  mechanisms_filter = xoauth2\n  oauth2 {\n    ssl_client_ca_file = /etc/ssl/ca.pem\n    fields {\n      host = %{oauth2:h}\n    }\n  }\n}\n")
	var buf bytes.Buffer
	c.DumpWith(&buf, DumpOptions{Secrets: true})
	c2, err := LoadBytes("dump.conf", buf.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	a, b := settingsMap(c.Passdbs[0].DriverSettings), settingsMap(c2.Passdbs[0].DriverSettings)
	if !reflect.DeepEqual(a, b) || b["ssl_client_ca_file"] != "/etc/ssl/ca.pem" || b["http_client_request_timeout"] != "5s" {
		t.Errorf("before %v\nafter  %v\n%s", a, b, buf.String())
	}
}
