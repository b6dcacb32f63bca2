//go:build pam && cgo

package pam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	libpam "github.com/msteinert/pam/v2"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
)

// Available reports whether this binary has the PAM driver: true in a
// `-tags pam` build with cgo (make build with libpam0g-dev installed).
const Available = true

// pamDir is where Linux-PAM looks for service files; only used to warn
// about a missing one.
const pamDir = "/etc/pam.d"

// maxUser bounds the user name handed to PAM (PAM_MAX_RESP_SIZE is 512).
const maxUser = 256

// maxReason bounds a PAM message returned as reason=.
const maxReason = 256

// DB is the PAM passdb. It is safe for concurrent use; Close stops its
// workers.
type DB struct {
	cfg  config
	log  *slog.Logger
	pool *pool

	warned sync.Map // service name → struct{}: missing-file warning given
}

var (
	_ backends.Verifier = (*DB)(nil)
	_ backends.Passdb   = (*DB)(nil)
	_ backends.Closer   = (*DB)(nil)
)

// New parses args (see the package comment) and starts the workers.
func New(args string, log *slog.Logger) (*DB, error) {
	cfg, err := parseArgs(args)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.setcred {
		log.Warn("pam: setcred=yes runs pam_setcred inside the authd process; modules that change credentials (pam_group) change them for all of authd")
	}
	return &DB{cfg: cfg, log: log, pool: newPool(cfg.workers, cfg.maxRequests)}, nil
}

// PassCacheKey implements backends.PassCacheKeyer: the cache_key=
// argument; without it the passdb is not cached, as in Dovecot.
func (d *DB) PassCacheKey() *vars.Template { return d.cfg.cacheKey }

// Close stops the workers, waiting for running transactions to end.
func (d *DB) Close() error {
	d.pool.close()
	return nil
}

// LookupPass implements backends.Passdb: PAM cannot look up credentials.
func (d *DB) LookupPass(ctx context.Context, req *backends.Request) (backends.PassAnswer, error) {
	return backends.PassAnswer{Outcome: backends.NoCredentials}, nil
}

// VerifiesPasswords implements backends.Verifier: PAM always does.
func (d *DB) VerifiesPasswords() bool { return true }

// outcome is what one transaction concluded.
type outcome struct {
	answer backends.Outcome // Found means the password was right
	err    error            // could not tell
	user   string           // PAM_USER after success
	reason string           // for failure_show_msg
}

// VerifyPass implements backends.Verifier.
func (d *DB) VerifyPass(ctx context.Context, req *backends.Request, password []byte) (backends.PassAnswer, error) {
	if err := ctx.Err(); err != nil {
		return backends.PassAnswer{}, err
	}
	user := req.User
	if user == "" || len(user) > maxUser || strings.IndexByte(user, 0) >= 0 {
		// Not a name PAM could be asked about: C would cut it at the
		// NUL and check someone else.
		return backends.PassAnswer{Outcome: backends.Unknown}, nil
	}
	if bytes.IndexByte(password, 0) >= 0 {
		// Same for a password: "secret\x00junk" must not pass as
		// "secret". Nobody's password contains a NUL, so it is wrong.
		return backends.PassAnswer{Outcome: backends.Mismatch}, nil
	}
	service, err := d.service(req)
	if err != nil {
		return backends.PassAnswer{}, err
	}
	rhost := ""
	if req.Vars != nil {
		rhost = req.Vars.RemoteIP
	}

	// Copied here, not in the job: the job may outlive this call (see
	// pool.run), and the caller may wipe or reuse password once we return.
	pw := string(password)
	var res outcome
	err = d.pool.run(ctx, func() {
		res = d.transaction(service, user, pw, rhost)
		if ctx.Err() != nil {
			d.log.Debug("pam: transaction finished after its request ended", "service", service, "user", user)
		}
	})
	if err != nil {
		// Nothing of res may be read here: the transaction may still
		// be running (see pool.run).
		return backends.PassAnswer{}, fmt.Errorf("pam: %w", err)
	}
	if res.err != nil {
		return backends.PassAnswer{}, res.err
	}
	ans := backends.PassAnswer{Outcome: res.answer}
	if res.answer == backends.Found && res.user != "" {
		ans.Fields = fields.Fields{{Key: "user", Value: res.user}}
	}
	if res.answer != backends.Found && res.reason != "" && d.cfg.failureShowMsg {
		ans.Fields = fields.Fields{{Key: "reason", Value: res.reason}}
	}
	return ans, nil
}

// service expands the service template for this request.
func (d *DB) service(req *backends.Request) (string, error) {
	s := d.cfg.service.String()
	if !d.cfg.service.Static() {
		vc := req.Vars
		if vc == nil {
			vc = &vars.Context{User: req.User}
		}
		var err error
		if s, err = d.cfg.service.ExpandChecked(vc, nil); err != nil {
			return "", fmt.Errorf("pam: expanding service %q: %w", d.cfg.service.String(), err)
		}
	}
	if !validService(s) {
		return "", fmt.Errorf("pam: service %q (from %q) is not a PAM service name", s, d.cfg.service.String())
	}
	d.warnMissing(s)
	return s, nil
}

// warnMissing logs once per service when its /etc/pam.d file does not
// exist: Linux-PAM then silently uses /etc/pam.d/other, which on Debian
// authenticates against common-auth (Dovecot warns the same way).
func (d *DB) warnMissing(service string) {
	if _, done := d.warned.LoadOrStore(service, struct{}{}); done {
		return
	}
	if _, err := os.Stat(pamDir); err != nil {
		return // not a /etc/pam.d system: nothing to say
	}
	path := filepath.Join(pamDir, strings.ToLower(service))
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		d.log.Warn("pam: service file missing; PAM will use "+pamDir+"/other", "service", service, "path", path)
	}
}

// step names the PAM call a status came from.
type step int

const (
	stepStart step = iota
	stepAuthenticate
	stepSetcred
	stepAcctMgmt
	stepSession
	stepGetUser
	stepEnd
)

func (s step) String() string {
	return [...]string{"pam_start", "pam_authenticate", "pam_setcred", "pam_acct_mgmt", "pam_open/close_session", "pam_get_item(PAM_USER)", "pam_end"}[s]
}

// transaction runs one PAM transaction. It runs on a worker thread.
func (d *DB) transaction(service, user, password, rhost string) (res outcome) {
	conv := &conversation{user: user, password: password}
	tx, err := libpam.Start(service, user, conv)
	if err != nil {
		return d.classify(stepStart, err, conv, service, user)
	}
	defer func() {
		// Always end the transaction, with the last status (msteinert
		// passes it to pam_end), even if a step failed.
		if err := tx.End(); err != nil {
			d.log.Error("pam: pam_end failed", "service", service, "user", user, "err", err)
			if res.err == nil && res.answer == backends.Found {
				res = d.classify(stepEnd, err, conv, service, user)
			}
		}
	}()
	// Dovecot ignores failures here too: these items only inform
	// modules such as pam_access and pam_faillock.
	if rhost != "" {
		_ = tx.SetItem(libpam.Rhost, rhost)
	}
	_ = tx.SetItem(libpam.Ruser, user)
	_ = tx.SetItem(libpam.Tty, "dovecot")

	if err := tx.Authenticate(libpam.DisallowNullAuthtok); err != nil {
		return d.classify(stepAuthenticate, err, conv, service, user)
	}
	if d.cfg.setcred {
		if err := tx.SetCred(libpam.EstablishCred); err != nil {
			return d.classify(stepSetcred, err, conv, service, user)
		}
	}
	if err := tx.AcctMgmt(libpam.DisallowNullAuthtok); err != nil {
		return d.classify(stepAcctMgmt, err, conv, service, user)
	}
	if d.cfg.session {
		if err := tx.OpenSession(0); err != nil {
			return d.classify(stepSession, err, conv, service, user)
		}
		if err := tx.CloseSession(0); err != nil {
			return d.classify(stepSession, err, conv, service, user)
		}
	}
	pamUser, err := tx.GetItem(libpam.User)
	if err != nil {
		return d.classify(stepGetUser, err, conv, service, user)
	}
	return outcome{answer: backends.Found, user: pamUser}
}

// verdict is what a PAM status means for the request.
type verdict int

const (
	vError    verdict = iota // could not tell
	vUnknown                 // unknown user
	vMismatch                // wrong password
	vExpired                 // backends.Expired
	vDisabled                // backends.Disabled
)

// judge maps a PAM status from a step to a verdict; see the table in the
// package comment.
func judge(s step, code libpam.Error) verdict {
	switch code {
	case libpam.ErrUserUnknown:
		return vUnknown
	case libpam.ErrAcctExpired, libpam.ErrNewAuthtokReqd, libpam.ErrAuthtokExpired, libpam.ErrCredExpired:
		return vExpired
	case libpam.ErrAuth, libpam.ErrMaxtries, libpam.ErrPermDenied:
		if s == stepAuthenticate {
			return vMismatch
		}
		if s > stepAuthenticate && s < stepGetUser {
			// The password was right; the account stack said no.
			return vDisabled
		}
	}
	return vError
}

// classify turns a failed step into an outcome, and logs it. User names
// and PAM's texts are logged; the password never is.
func (d *DB) classify(s step, err error, conv *conversation, service, user string) outcome {
	var code libpam.Error
	if !errors.As(err, &code) {
		d.log.Error("pam: "+s.String()+" failed", "service", service, "user", user, "err", err)
		return outcome{err: fmt.Errorf("pam: %s (service %s): %w", s, service, err)}
	}
	var reason string
	if d.cfg.failureShowMsg {
		reason = conv.reason()
	}
	switch judge(s, code) {
	case vUnknown:
		d.log.Debug("pam: unknown user", "service", service, "user", user, "step", s.String())
		return outcome{answer: backends.Unknown, reason: reason}
	case vMismatch:
		d.log.Debug("pam: authentication failed", "service", service, "user", user, "step", s.String(), "status", err.Error())
		return outcome{answer: backends.Mismatch, reason: reason}
	case vExpired:
		d.log.Info("pam: password or account expired", "service", service, "user", user, "step", s.String(), "status", err.Error())
		return outcome{answer: backends.Expired, reason: reason}
	case vDisabled:
		d.log.Info("pam: account refused after authentication", "service", service, "user", user, "step", s.String(), "status", err.Error())
		return outcome{answer: backends.Disabled, reason: reason}
	}
	d.log.Error("pam: "+s.String()+" failed", "service", service, "user", user, "status", err.Error())
	return outcome{err: fmt.Errorf("pam: %s (service %s): %w", s, service, err)}
}

// conversation answers PAM's prompts for one transaction. It is only used
// from the transaction's worker thread.
type conversation struct {
	user, password string
	errMsg, prompt string // the last PAM_ERROR_MSG and password prompt
}

// errBinaryPrompt ends a conversation with PAM_CONV_ERR.
var errBinaryPrompt = errors.New("unsupported PAM prompt")

// RespondPAM implements libpam.ConversationHandler, as Dovecot's
// pam_userpass_conv: the password for the hidden prompt, the user name
// for the echoed one (modules normally take the name from pam_start).
func (c *conversation) RespondPAM(s libpam.Style, msg string) (string, error) {
	switch s {
	case libpam.PromptEchoOff:
		c.prompt = msg
		return c.password, nil
	case libpam.PromptEchoOn:
		return c.user, nil
	case libpam.ErrorMsg:
		c.errMsg = msg
		return "", nil
	case libpam.TextInfo:
		return "", nil
	}
	return "", errBinaryPrompt
}

// reason is the text failure_show_msg returns: the module's error message
// if it sent one, else the prompt (Dovecot 2.3 only ever uses the prompt),
// made safe for a protocol field.
func (c *conversation) reason() string {
	r := c.errMsg
	if r == "" {
		r = c.prompt
	}
	r = strings.Map(func(c rune) rune {
		if c < ' ' || c == 0x7f {
			return ' '
		}
		return c
	}, r)
	r = strings.TrimSpace(r)
	if len(r) > maxReason {
		r = strings.ToValidUTF8(r[:maxReason], "")
	}
	return r
}
