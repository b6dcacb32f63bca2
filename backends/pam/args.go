package pam

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/vars"
)

// This file is built with and without the pam tag, so that argument
// parsing is the same code, and tested, in both builds.

// DefaultService is the PAM service name without a service argument, as
// in Dovecot.
const DefaultService = "dovecot"

// DefaultWorkers is the number of PAM transactions run at once without
// workers=. Dovecot's equivalent is the auth-worker process_limit.
const DefaultWorkers = 8

// DefaultMaxRequests is Dovecot's default max_requests
// (PASSDB_PAM_DEFAULT_MAX_REQUESTS).
const DefaultMaxRequests = 100

// maxWorkers bounds workers=: every worker is an OS thread.
const maxWorkers = 1024

// ErrNotBuilt is returned by New in a binary built without PAM (make
// build-static, go build without the pam tag, or make build on a machine
// without libpam0g-dev).
var ErrNotBuilt = errors.New("this authd was built without PAM support; install libpam0g-dev and rebuild with `make build` (cgo: CGO_ENABLED=1 go build -tags pam)")

// config is the parsed passdb args.
type config struct {
	service        *vars.Template
	session        bool
	setcred        bool
	failureShowMsg bool
	maxRequests    int
	cacheKey       *vars.Template // nil: not cached
	workers        int
}

// parseArgs reads passdb pam args the way Dovecot 2.3's pam_preinit does
// (src/auth/passdb-pam.c):
//
//	[session=yes] [setcred=yes] [failure_show_msg=yes] [max_requests=N]
//	[cache_key=KEY] [blocking=yes] [workers=N] [SERVICE]
//
// SERVICE must be the last word and may hold %-variables (%s is the
// request's service, so `args = %s` gives imap, pop3, smtp …); "*" is the
// old spelling of %Ls. "-session" is the old spelling of session=yes.
// blocking=yes is accepted and ignored, as in Dovecot.
//
// Differences, all stricter or additive: a bad max_requests value is a
// configuration error (Dovecot logs and goes on); the "=no" forms of the
// yes/no flags are accepted and mean no (Dovecot would take a last
// "setcred=no" as the service name); workers=N is authd's own.
//
// max_requests keeps Dovecot's meaning — how many requests one worker
// handles before it is replaced (Dovecot restarts its auth worker
// process; authd retires the worker's thread, see pool) — and does not
// bound concurrency. workers=N does that.
func parseArgs(args string) (config, error) {
	c := config{maxRequests: DefaultMaxRequests, workers: DefaultWorkers}
	service := DefaultService
	words := strings.Fields(args)
	bad := func(format string, a ...any) (config, error) {
		return config{}, fmt.Errorf("%w: pam: "+format, append([]any{backends.ErrConfig}, a...)...)
	}
	for i, w := range words {
		key, val, hasVal := strings.Cut(w, "=")
		switch {
		case w == "-session":
			c.session = true
		case hasVal && key == "session":
			v, ok := yesNo(val)
			if !ok {
				return bad("session=%q: want yes or no", val)
			}
			c.session = v
		case hasVal && key == "setcred":
			v, ok := yesNo(val)
			if !ok {
				return bad("setcred=%q: want yes or no", val)
			}
			c.setcred = v
		case hasVal && key == "failure_show_msg":
			v, ok := yesNo(val)
			if !ok {
				return bad("failure_show_msg=%q: want yes or no", val)
			}
			c.failureShowMsg = v
		case hasVal && key == "blocking":
			// Dovecot ignores it "for backwards compatibility"; PAM
			// always runs off the request path here.
			if _, ok := yesNo(val); !ok {
				return bad("blocking=%q: want yes or no", val)
			}
		case hasVal && key == "cache_key":
			t, err := vars.Parse(val)
			if err != nil {
				return bad("cache_key: %v", err)
			}
			if val != "" {
				c.cacheKey = t
			}
		case hasVal && key == "max_requests":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return bad("max_requests=%q: want a number ≥ 0 (0: never replace a worker)", val)
			}
			c.maxRequests = n
		case hasVal && key == "workers":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > maxWorkers {
				return bad("workers=%q: want a number from 1 to %d", val, maxWorkers)
			}
			c.workers = n
		case w == "*":
			service = "%Ls"
		case i == len(words)-1:
			service = w
		default:
			return bad("unknown setting %q (a service name must be the last argument)", w)
		}
	}
	t, err := vars.Parse(service)
	if err != nil {
		return bad("service %q: %v", service, err)
	}
	if u := t.Unknown(); len(u) > 0 {
		return bad("service %q: unknown variables %s", service, strings.Join(u, ", "))
	}
	if t.Static() && !validService(service) {
		return bad("service %q: not a PAM service name", service)
	}
	c.service = t
	return c, nil
}

func yesNo(v string) (bool, bool) {
	switch v {
	case "yes":
		return true, true
	case "no":
		return false, true
	}
	return false, false
}

// validService accepts what can name a file in /etc/pam.d. An expanded
// %s comes from the client (the service= of an auth request), so no
// path, whitespace or control characters get through to pam_start. It
// cannot stop a client from naming another existing service; see the
// package comment.
func validService(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '+') {
			return false
		}
	}
	return true
}
