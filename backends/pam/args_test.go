package pam

import (
	"errors"
	"testing"

	"github.com/authd-project/authd/backends"
)

func TestParseArgs(t *testing.T) {
	cases := []struct {
		args string
		want config // service compared as its source text
		svc  string
		key  string // cache_key's source text
	}{
		{"", config{maxRequests: 100, workers: 8}, "dovecot", ""},
		{"imap", config{maxRequests: 100, workers: 8}, "imap", ""},
		{"%s", config{maxRequests: 100, workers: 8}, "%s", ""},
		{"*", config{maxRequests: 100, workers: 8}, "%Ls", ""},
		{"session=yes setcred=yes failure_show_msg=yes max_requests=5 cache_key=%u%s workers=2 mail",
			config{session: true, setcred: true, failureShowMsg: true, maxRequests: 5, workers: 2}, "mail", "%u%s"},
		{"-session blocking=yes", config{session: true, maxRequests: 100, workers: 8}, "dovecot", ""},
		{"session=yes setcred=no", config{session: true, maxRequests: 100, workers: 8}, "dovecot", ""},
		{"max_requests=0 %Ls", config{maxRequests: 0, workers: 8}, "%Ls", ""},
		{"  session=yes   dovecot-imap  ", config{session: true, maxRequests: 100, workers: 8}, "dovecot-imap", ""},
	}
	for _, c := range cases {
		got, err := parseArgs(c.args)
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if s := got.service.String(); s != c.svc {
			t.Errorf("%q: service %q, want %q", c.args, s, c.svc)
		}
		got.service = nil
		key := ""
		if got.cacheKey != nil {
			key = got.cacheKey.String()
		}
		if key != c.key {
			t.Errorf("%q: cache key %q, want %q", c.args, key, c.key)
		}
		got.cacheKey = nil
		if got != c.want {
			t.Errorf("%q: %+v, want %+v", c.args, got, c.want)
		}
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, args := range []string{
		"imap session=yes",  // the service must be last, as in Dovecot
		"max_requests=x",    // Dovecot only logs this
		"max_requests=-1",   //
		"workers=0",         //
		"workers=100000",    //
		"session=maybe",     //
		"%{nosuchvar}",      // unknown variable
		"../../etc/shadow",  // not a service name
		"foo=bar",           // not a setting, not a service name
		"dovecot extra",     //
		"failure_show_msg=", //
	} {
		if _, err := parseArgs(args); !errors.Is(err, backends.ErrConfig) {
			t.Errorf("%q: err %v, want ErrConfig", args, err)
		}
	}
}

func TestValidService(t *testing.T) {
	for _, s := range []string{"dovecot", "imap", "IMAP", "dovecot-imap", "mail.v2", "x_y", "a+b"} {
		if !validService(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", ".", "..", ".hidden", "a/b", "../x", "a b", "a\x00b", "a\tb", "é", string(make([]byte, 65))} {
		if validService(s) {
			t.Errorf("%q accepted", s)
		}
	}
}
