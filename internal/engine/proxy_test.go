package engine_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/engine"
	authfields "github.com/authd-project/authd/internal/fields"
)

// fakeResolver answers from a table and records the lookups.
type fakeResolver struct {
	hosts    map[string][]string
	asked    []string
	deadline time.Duration // time left on the last lookup's context
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.asked = append(r.asked, network+" "+host)
	if dl, ok := ctx.Deadline(); ok {
		r.deadline = time.Until(dl)
	}
	list, ok := r.hosts[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []netip.Addr
	for _, s := range list {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func parseFields(s string) authfields.Fields {
	var fs authfields.Fields
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, "=")
		fs = append(fs, authfields.Field{Key: k, Value: v})
	}
	return fs
}

// TestProxyFinish follows Dovecot 2.3's auth_request_proxy_finish case by
// case (engine/proxy.go).
func TestProxyFinish(t *testing.T) {
	r := &fakeResolver{hosts: map[string][]string{
		"imap1.example.com": {"192.0.2.11", "2001:db8::11"},
		"self.example.com":  {"2001:db8::99", "192.0.2.1"},
		"localhost":         {"127.0.0.1"},
	}}
	pf := engine.NewProxyFinisher([]netip.Addr{netip.MustParseAddr("192.0.2.50")}, r, nil)
	info := &engine.Info{LocalIP: "192.0.2.1", RealLocalIP: "192.0.2.1", LocalPort: "143", RemoteIP: "198.51.100.7"}
	cases := []struct {
		name, in, want string
		status         engine.Status
	}{
		{"host is an address", "proxy host=192.0.2.11 port=143", "proxy host=192.0.2.11 port=143", engine.StatusOK},
		{"host is a name", "proxy host=imap1.example.com destuser=bob port=993 ssl=yes", "proxy host=imap1.example.com destuser=bob port=993 ssl=yes hostip=192.0.2.11", engine.StatusOK},
		{"hostip given", "proxy host=imap1.example.com hostip=192.0.2.12", "proxy host=imap1.example.com hostip=192.0.2.12", engine.StatusOK},
		{"maybe, elsewhere", "proxy_maybe host=imap1.example.com starttls=any-cert", "host=imap1.example.com starttls=any-cert hostip=192.0.2.11 proxy", engine.StatusOK},
		// One of the name's addresses is the local one.
		{"maybe, self by name", "proxy_maybe host=self.example.com destuser=bob quota=1G", "quota=1G hostip=2001:db8::99", engine.StatusOK},
		{"maybe, self by address", "proxy_maybe host=192.0.2.1 port=143 quota=1G", "quota=1G", engine.StatusOK},
		{"maybe, self, other port", "proxy_maybe host=192.0.2.1 port=10143", "host=192.0.2.1 port=10143 proxy", engine.StatusOK},
		{"maybe, auth_proxy_self", "proxy_maybe host=192.0.2.50", "", engine.StatusOK},
		{"maybe, self, proxy_always", "proxy_maybe proxy_always host=192.0.2.1", "proxy", engine.StatusOK},
		{"no host (director)", "proxy_maybe", "lip=192.0.2.1 lport=143 proxy", engine.StatusOK},
		{"lookup fails", "proxy host=nowhere.invalid port=143 destuser=x quota=1G", "quota=1G", engine.StatusTempFail},
		{"bad hostip", "proxy host=imap1.example.com hostip=not-an-ip", "hostip=not-an-ip", engine.StatusTempFail},
		{"not a proxy", "quota=1G host=imap1.example.com", "quota=1G host=imap1.example.com", engine.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := engine.Result{Status: engine.StatusOK, User: "alice", Fields: parseFields(c.in), ProxyPassword: "pw"}
			got := pf.Finish(context.Background(), info, in)
			if got.Status != c.status || got.Fields.String() != parseFields(c.want).String() {
				t.Fatalf("got %v %q, want %v %q", got.Status, got.Fields.String(), c.status, parseFields(c.want).String())
			}
			if got.Status == engine.StatusTempFail && (got.User != "alice" || !strings.Contains(got.Reason, "proxy:")) {
				t.Errorf("temporary failure: %+v", got)
			}
			if strings.HasPrefix(c.in, "proxy_maybe") && got.Status == engine.StatusOK && !got.Fields.Has("proxy") && got.ProxyPassword != "" {
				t.Error("the typed password is kept for a login that stays here")
			}
			// A reply that is still a proxy keeps it, for pass=.
			if got.Status == engine.StatusOK && got.Fields.Has("proxy") && got.ProxyPassword != "pw" {
				t.Errorf("a proxy reply lost the typed password: %q", got.ProxyPassword)
			}
			// The passdb's fields are not changed under the cache's feet.
			if in.Fields.String() != parseFields(c.in).String() {
				t.Errorf("input fields changed: %q", in.Fields.String())
			}
		})
	}
	// Failures and results without proxy fields are left alone.
	fail := engine.Result{Status: engine.StatusFail, Fields: parseFields("proxy host=nowhere.invalid")}
	if got := pf.Finish(context.Background(), info, fail); got.Status != engine.StatusFail || got.Fields.String() != fail.Fields.String() {
		t.Errorf("failure changed: %+v", got)
	}
}

// TestProxyTimeout: the lookup waits at most proxy_timeout seconds, and
// Dovecot's 10 s without it, never past the request's own deadline.
func TestProxyTimeout(t *testing.T) {
	r := &fakeResolver{hosts: map[string][]string{"imap1.example.com": {"192.0.2.11"}}}
	pf := engine.NewProxyFinisher(nil, r, nil)
	info := &engine.Info{}
	for _, c := range []struct {
		fields string
		ctxFor time.Duration
		max    time.Duration
	}{
		{"proxy host=imap1.example.com proxy_timeout=2", time.Hour, 2 * time.Second},
		{"proxy host=imap1.example.com", time.Hour, engine.DefaultProxyDNSTimeout},
		{"proxy host=imap1.example.com proxy_timeout=bad", time.Hour, engine.DefaultProxyDNSTimeout},
		{"proxy host=imap1.example.com proxy_timeout=60", 3 * time.Second, 3 * time.Second},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), c.ctxFor)
		got := pf.Finish(ctx, info, engine.Result{Status: engine.StatusOK, Fields: parseFields(c.fields)})
		cancel()
		if got.Status != engine.StatusOK || r.deadline <= 0 || r.deadline > c.max || r.deadline < c.max/2 {
			t.Errorf("%s: %v, the lookup had %v, want at most %v", c.fields, got.Status, r.deadline, c.max)
		}
	}
}
