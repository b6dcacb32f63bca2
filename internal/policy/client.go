package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authd-project/authd/internal/vars"
)

// Stage says when the engine asks: before the lookup, or after the
// authentication succeeded.
type Stage uint8

// The stages, Dovecot's auth_policy_check_before_auth and _after_auth.
const (
	BeforeAuth Stage = iota
	AfterAuth
)

// MaxDelay caps a delay the server asks for (Dovecot's own cap for a
// passdb's delay_until): a server answering status=999999 must not park
// requests for days.
const MaxDelay = 5 * time.Minute

// Verdict is the answer to a check.
type Verdict struct {
	// Refuse: fail the authentication now, like a wrong password.
	Refuse bool
	// Delay: wait this long before going on (the engine skips it for
	// no-penalty requests and after authentication, as Dovecot does).
	Delay time.Duration
	// Reason is the server's msg, for the client's FAIL reply.
	Reason string
	// Answered: the server's answer was read (well formed or not), so
	// Refused below is what the next report's policy_reject says. A server
	// that could not be reached leaves policy_reject as it was.
	Answered bool
	// Refused: the answer said refuse (or was garbled under
	// auth_policy_reject_on_fail), even in log-only mode.
	Refused bool
}

// Options are the client's own knobs; zero values take the defaults.
type Options struct {
	Log *slog.Logger
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
	// Workers send reports (default 4); QueueSize reports may wait for
	// them (default 4096) before new ones are dropped.
	Workers, QueueSize int
}

// Client asks a policy server and reports to it. Its methods are safe for
// concurrent use. Reports are sent by Run's workers.
type Client struct {
	set        Settings
	newHash    func() hash.Hash
	allowURL   string
	reportURL  string
	server     string // the URL for logs, without a password
	headerName string
	headerVal  string
	timeout    time.Duration
	hc         *http.Client
	log        *slog.Logger
	errLog     rateLimit
	workers    int

	queue  chan []byte
	closed atomic.Bool
	stats  counters
}

// New builds a client for set (set.URL must not be empty).
func New(set Settings, o Options) (*Client, error) {
	if set.URL == "" {
		return nil, errors.New("no auth_policy_server_url")
	}
	if err := set.Check(); err != nil {
		return nil, err
	}
	newHash, _ := vars.HashMethod(set.HashMech)
	name, value, _ := SplitAPIHeader(set.APIHeader)
	c := &Client{
		set: set, newHash: newHash, headerName: name, headerVal: value,
		allowURL: commandURL(set.URL, "allow"), reportURL: commandURL(set.URL, "report"),
		timeout: set.Timeout, log: o.Log, workers: o.Workers,
		queue: make(chan []byte, max(o.QueueSize, 0)),
	}
	if u, err := url.Parse(set.URL); err == nil {
		c.server = u.Redacted()
	}
	if c.timeout <= 0 {
		c.timeout = httpDefaultTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if o.QueueSize <= 0 {
		c.queue = make(chan []byte, 4096)
	}
	if c.workers <= 0 {
		c.workers = 4
	}
	tr := o.Transport
	if tr == nil {
		// As Dovecot's client: up to 100 connections, idle ones closed
		// after 10 s, no proxy from the environment.
		tr = &http.Transport{
			MaxConnsPerHost: 100, MaxIdleConnsPerHost: 100, IdleConnTimeout: 10 * time.Second,
			ForceAttemptHTTP2: true, TLSHandshakeTimeout: c.timeout,
		}
	}
	c.hc = &http.Client{Transport: tr, CheckRedirect: noRedirects}
	if set.LogOnly {
		c.log.Warn("auth policy: log-only mode: verdicts of the policy server are logged, not applied")
	}
	return c, nil
}

// noRedirects: Dovecot's client does not follow redirects either; a 3xx is
// an HTTP error.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Check asks the server whether the request may go on (command=allow). It
// answers at once, allowing, when the stage's check is off. A server that
// fails or answers garbage gives the configured fail verdict. err is set
// only when ctx ended first: nobody waits for the answer any more.
func (c *Client) Check(ctx context.Context, stage Stage, req *Request) (Verdict, error) {
	if stage == BeforeAuth && !c.set.CheckBeforeAuth || stage == AfterAuth && !c.set.CheckAfterAuth {
		return Verdict{}, nil
	}
	body := c.body(req, nil)
	status, msg, answered, err := c.ask(ctx, body)
	if err != nil {
		return Verdict{}, err
	}
	v := Verdict{Reason: msg, Answered: answered, Refused: answered && status < 0}
	switch {
	case status != 0 && c.set.LogOnly:
		c.log.Info("auth policy: verdict ignored (log-only mode)", append(req.logAttrs(), "action", action(status), "msg", msg)...)
		return v, nil
	case status < 0:
		v.Refuse = true
	case status > 0:
		v.Delay = min(time.Duration(status)*time.Second, MaxDelay)
	}
	if status != 0 {
		c.log.Debug("auth policy: verdict", append(req.logAttrs(), "action", action(status), "msg", msg)...)
	}
	return v, nil
}

func action(status int) string {
	switch {
	case status < 0:
		return "refuse"
	case status > 0:
		return fmt.Sprintf("delay %d s", status)
	}
	return "allow"
}

// Report queues command=report for a finished authentication; it never
// blocks. success is whether it succeeded; policyReject is the last
// answered check's Refused. When the queue is full the report is dropped
// and counted.
func (c *Client) Report(req *Request, success, policyReject bool) {
	if !c.set.ReportAfterAuth {
		return
	}
	// The body is built now: the password must not wait in the queue.
	body := c.body(req, &outcome{success: success, policyReject: policyReject})
	if c.closed.Load() {
		c.stats.dropped.Add(1)
		return
	}
	select {
	case c.queue <- body:
	default:
		c.stats.dropped.Add(1)
	}
}

// Run sends queued reports until ctx ends, then returns once every worker
// has stopped. Reports still queued are dropped and counted.
func (c *Client) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case body := <-c.queue:
					if ctx.Err() != nil {
						c.stats.dropped.Add(1)
						return
					}
					c.send(ctx, body)
				}
			}
		}()
	}
	wg.Wait()
	for {
		select {
		case <-c.queue:
			c.stats.dropped.Add(1)
		default:
			return
		}
	}
}

// Close stops accepting reports and closes idle connections. Call it
// after Run returned.
func (c *Client) Close() {
	c.closed.Store(true)
	c.hc.CloseIdleConnections()
}

// body builds a request's JSON.
func (c *Client) body(req *Request, report *outcome) []byte {
	vc := vars.Context{}
	if req.Vars != nil {
		vc = *req.Vars
	}
	vc.RequestedUsername = req.Username
	vc.HashedPassword = hashPassword(c.newHash, c.set.Nonce, c.set.HashTruncate, req.Username, req.Password)
	return c.set.Attributes.appendBody(make([]byte, 0, 256), &vc, req.TLS, report)
}

// ask posts a check and reads the answer. status is the server's, or the
// fail value (-1 with auth_policy_reject_on_fail, else 0) when there is
// none; answered says whether an answer was read (Dovecot sets
// policy_reject only then). err is set only when ctx ended.
func (c *Client) ask(ctx context.Context, body []byte) (status int, msg string, answered bool, err error) {
	failed := 0
	if c.set.RejectOnFail {
		failed = -1
	}
	data, err := c.post(ctx, c.allowURL, body, true)
	switch {
	case ctx.Err() != nil:
		return 0, "", false, fmt.Errorf("auth policy check: %w", ctx.Err())
	case errors.Is(err, errNoAnswer):
		c.fail("allow", err)
		return failed, "", false, nil
	case err != nil:
		c.fail("allow", err)
		return failed, "", true, nil
	}
	a, err := parseAnswer(data)
	if err != nil {
		c.fail("allow", fmt.Errorf("bad answer: %w", err))
		return failed, "", true, nil
	}
	if !a.hasStatus {
		// Dovecot keeps its fail value and calls that an answer.
		c.fail("allow", errors.New("the answer has no status"))
		return failed, a.msg, true, nil
	}
	c.stats.requests[cmdAllow][resOK].Add(1)
	c.stats.verdict(a.status)
	return a.status, a.msg, true, nil
}

// errNoAnswer marks failures before an answer: no connection, a timeout
// waiting for the headers, an HTTP error status, an empty body.
var errNoAnswer = errors.New("no answer")

// logAttrs identifies a request in log lines without its user name (the
// engine's own auth line names the user, cut to size).
func (r *Request) logAttrs() []any {
	if r.Vars == nil {
		return nil
	}
	return []any{"rip", r.Vars.RemoteIP, "service", r.Vars.Service, "session", r.Vars.Session}
}

// post sends body and returns the answer's body (read only when want).
// An error wrapping errNoAnswer means no answer arrived; any other error
// came while reading one.
func (c *Client) post(ctx context.Context, target string, body []byte, want bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "authd/auth-policy-client")
	if c.headerName != "" {
		req.Header.Set(c.headerName, c.headerVal)
	}
	if u := req.URL.User; u != nil {
		pw, _ := u.Password()
		req.SetBasicAuth(u.Username(), pw)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	defer resp.Body.Close()
	// Dovecot takes 200-209 only.
	if resp.StatusCode/10 != 20 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return nil, fmt.Errorf("%w: HTTP status %s", errNoAnswer, resp.Status)
	}
	if !want {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading the answer: %w", err)
	case len(data) > maxResponse:
		return nil, errTooLarge
	case len(data) == 0:
		return nil, fmt.Errorf("%w: empty answer", errNoAnswer)
	}
	return data, nil
}

// send posts one report; its answer is not read.
func (c *Client) send(ctx context.Context, body []byte) {
	if _, err := c.post(ctx, c.reportURL, body, false); err != nil {
		if ctx.Err() != nil {
			c.stats.dropped.Add(1) // stopping: cut short, not the server's fault
			return
		}
		c.fail("report", err)
		return
	}
	c.stats.requests[cmdReport][resOK].Add(1)
}

// fail counts a failed request and logs it, at most once a second.
func (c *Client) fail(cmd string, err error) {
	i := cmdAllow
	if cmd == "report" {
		i = cmdReport
	}
	c.stats.requests[i][resError].Add(1)
	if n, ok := c.errLog.allow(time.Now()); ok {
		c.log.Warn("auth policy: request failed", "command", cmd, "server", c.server, "err", err, "suppressed", n)
	}
}

// rateLimit lets one event through per second and counts the others.
type rateLimit struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *rateLimit) allow(now time.Time) (suppressed int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.last) < time.Second {
		r.suppressed++
		return 0, false
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return n, true
}
