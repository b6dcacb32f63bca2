package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/blocking"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/mono"
	"github.com/authd-project/authd/internal/procs"
	"github.com/authd-project/authd/internal/ratelog"
	"github.com/authd-project/authd/internal/vars"
	"github.com/authd-project/authd/schemes"
)

// Settings are the auth_* settings the engine applies (docs/protocol.md §5.1).
type Settings struct {
	Realms              []string
	DefaultRealm        string
	UsernameChars       string // "" allows every byte
	UsernameTranslation string
	UsernameFormat      string // default %Lu (Syntax24: %{user | lower})
	// Syntax is the language of the templates above (the configuration's).
	Syntax vars.Syntax
	// ProtocolUsernameFormat replaces UsernameFormat for the requests of a
	// protocol (Dovecot 2.4's `protocol lmtp { auth_username_format = … }`).
	ProtocolUsernameFormat map[string]string
	MasterUserSeparator    string
	AnonymousUsername      string
	DebugPasswords         bool
	// UsernameFromCert: a request's cert_username replaces the name the
	// mechanism gave (auth_ssl_username_from_cert, docs/protocol.md §5.2 step 3).
	UsernameFromCert bool
	// Valid uid/gid ranges applied to userdb results (first_valid_uid …);
	// a Last of 0 means no upper limit.
	FirstValidUID, LastValidUID uint32
	FirstValidGID, LastValidGID uint32
	// FailureDelay is auth_failure_delay: how long after a failed
	// request arrived its reply leaves, before any escalation.
	FailureDelay time.Duration
	// Verbose is auth_verbose: one info line per failed attempt.
	Verbose bool
	// VerifyWorkers bounds concurrent password-hash verifications; 0 means
	// the processors the process has when busy (procs.Width). Hashing is
	// CPU-bound: more workers than cores only adds latency to every
	// request.
	VerifyWorkers int
	// VerifyQueue bounds the verifications waiting for a worker, and
	// VerifyWait how long one waits; past either the request is a
	// temporary failure (verifyqueue.go). 0 means
	// DefaultVerifyQueuePerWorker per worker and DefaultVerifyWait.
	VerifyQueue int
	VerifyWait  time.Duration
	// HashLimits bound what a stored hash may cost (bcrypt cost, argon2
	// memory …) and the memory concurrent memory-hard verifications share;
	// zero fields mean schemes.DefaultLimits. A stored value over them is a
	// temporary failure, never a wrong password (docs/schemes.md §7).
	HashLimits schemes.Limits
}

// Observer is told about every backend lookup and password verification,
// for metrics. Results are from closed sets: the backends.Outcome names
// ("found", "notfound", "disabled", "expired", "nocredentials", "mismatch")
// and "error" for lookups. Implementations must be cheap and safe for concurrent use.
type Observer interface {
	PassdbLookup(driver, result string, d time.Duration)
	UserdbLookup(driver, result string, d time.Duration)
	Verify(scheme string, d time.Duration)
	// HashOverBudget: a stored hash asked for more than Settings.HashLimits
	// allow; scheme and param are a pair from schemes.BudgetParams.
	HashOverBudget(scheme, param string)
	// VerifyShed: a verification was not made because the verify
	// workers were overloaded; reason is one of ShedReasons.
	VerifyShed(reason string)
}

type nopObserver struct{}

func (nopObserver) VerifyShed(string) {}

func (nopObserver) PassdbLookup(string, string, time.Duration) {}
func (nopObserver) UserdbLookup(string, string, time.Duration) {}
func (nopObserver) Verify(string, time.Duration)               {}
func (nopObserver) HashOverBudget(string, string)              {}

// lookupResult is the metric label of a backend lookup: its outcome, or
// "error" when it could not tell.
func lookupResult(o backends.Outcome, err error) string {
	if err != nil {
		return "error"
	}
	return o.String()
}

// DBSpec is one configured passdb or userdb, with its driver built.
type DBSpec struct {
	Name, Driver                                     string
	Passdb                                           backends.Passdb // for passdbs
	Userdb                                           backends.Userdb // for userdbs
	DefaultFields                                    []vars.FieldTemplate
	OverrideFields                                   []vars.FieldTemplate
	Skip                                             config.Skip
	ResultSuccess, ResultFailure, ResultInternalfail config.Rule
	Mechanisms                                       []string // upper case; empty = all
	UsernameFilter                                   []string // globs, "!" negates
	Deny, Master, Pass                               bool
	AuthVerbose                                      config.Verbosity
	// Dovecot 2.4's fields { }: FieldsProvider names the driver whose own
	// fields OverrideFields may read as %{<provider>:name}
	// (%{passwd_file:uid}); DropDriverFields is fields_import_all = no, the
	// driver's own fields are then not kept.
	FieldsProvider   string
	DropDriverFields bool
}

// Engine runs requests. It is safe for concurrent use.
type Engine struct {
	set       Settings
	chars     [256]bool
	allChars  bool
	translate [256]byte
	format    *vars.Template
	// protoFormat are the per-protocol auth_username_format templates.
	protoFormat map[string]*vars.Template
	passdbs     []*passdb
	userdbs     []*userdb
	log         *slog.Logger
	verifies    *verifyQueue
	batch       batchQueue // batchable verifications waiting (verifybatch.go)
	shedLog     ratelog.Limiter
	hashes      *schemes.Verifier // Settings.HashLimits and the memory budget
	fallback    dummies           // the generated dummy hash, before any passdb saw one
	obs         Observer
	cache       *cache.Cache     // nil: off (every method of a nil cache is a no-op)
	limiter     *limiter.Limiter // nil: no brute-force defence
	policy      Policy           // nil: no auth policy server
	// scramDerives: the last credentials lookup that found a password
	// derived SCRAM keys from a plaintext (credentials.go).
	scramDerives atomic.Bool
}

// SetObserver installs o (nil removes it). Call it before serving.
func (e *Engine) SetObserver(o Observer) {
	if o == nil {
		o = nopObserver{}
	}
	e.obs = o
}

type passdb struct {
	DBSpec
	// failing: the last lookup could not tell (for readiness).
	failing  atomic.Bool
	id       int
	cacheKey *vars.Template // nil: answers not cached
	dummies  dummies        // the shapes of its stored hashes, for equal-cost failures
	// memory: the driver answers from memory (blocking.go).
	memory bool
}

type userdb struct {
	DBSpec
	failing  atomic.Bool
	id       int
	cacheKey *vars.Template
	memory   bool
}

// New builds an engine.
func New(set Settings, passdbs, userdbs []DBSpec, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set.UsernameFormat == "" {
		set.UsernameFormat = config.DefaultUsernameFormat
		if set.Syntax == vars.Syntax24 {
			set.UsernameFormat = config.DefaultUsernameFormat24
		}
	}
	if set.AnonymousUsername == "" {
		set.AnonymousUsername = config.DefaultAnonymousUsername
	}
	e := &Engine{set: set, log: log, obs: nopObserver{}}
	f, err := set.Syntax.Parse(set.UsernameFormat)
	if err != nil {
		return nil, fmt.Errorf("auth_username_format: %w", err)
	}
	e.format = f
	for proto, src := range set.ProtocolUsernameFormat {
		pf, err := set.Syntax.Parse(src)
		if err != nil {
			return nil, fmt.Errorf("protocol %s: auth_username_format: %w", proto, err)
		}
		if e.protoFormat == nil {
			e.protoFormat = map[string]*vars.Template{}
		}
		e.protoFormat[proto] = pf
	}
	if set.UsernameChars == "" {
		e.allChars = true
	}
	for i := 0; i < len(set.UsernameChars); i++ {
		e.chars[set.UsernameChars[i]] = true
	}
	for i := range e.translate {
		e.translate[i] = byte(i)
	}
	tr := set.UsernameTranslation
	for i := 0; i+1 < len(tr); i += 2 {
		e.translate[tr[i]] = tr[i+1]
	}
	for i, p := range passdbs {
		if p.Passdb == nil {
			return nil, fmt.Errorf("passdb %d (%s): no driver", i+1, p.Driver)
		}
		e.passdbs = append(e.passdbs, &passdb{DBSpec: p, id: i + 1, cacheKey: e.cacheKeyFor(p.Passdb, false), memory: inMemory(p.Passdb)})
	}
	for i, u := range userdbs {
		if u.Userdb == nil {
			return nil, fmt.Errorf("userdb %d (%s): no driver", i+1, u.Driver)
		}
		e.userdbs = append(e.userdbs, &userdb{DBSpec: u, id: i + 1, cacheKey: e.cacheKeyFor(u.Userdb, true), memory: inMemory(u.Userdb)})
	}
	w := set.VerifyWorkers
	if w <= 0 {
		w = procs.Width()
	}
	e.verifies = newVerifyQueue(w, set.VerifyQueue, set.VerifyWait)
	if err := set.HashLimits.Validate(); err != nil {
		return nil, err
	}
	e.hashes = schemes.NewVerifier(set.HashLimits)
	return e, nil
}

// Settings returns the engine's settings.
func (e *Engine) Settings() Settings { return e.set }

// errBadName is a name-processing failure: the request fails like a wrong
// password (docs/protocol.md §1.8).
var errBadName = errors.New("invalid user name")

// ProcessName applies docs/protocol.md §5.2 steps 4–7 to a name: default realm,
// translation, allowed characters, auth_username_format.
func (e *Engine) ProcessName(name string, info *Info) (string, error) {
	return e.processName(name, e.varsContext(info, ""))
}

// processName is ProcessName with the request's own variable context, so
// a request builds one context, not one per step. vc.User is left set to
// the name that went into auth_username_format.
func (e *Engine) processName(name string, vc *vars.Context) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty", errBadName)
	}
	if e.set.DefaultRealm != "" && strings.IndexByte(name, '@') < 0 {
		name = name + "@" + e.set.DefaultRealm
	}
	// Copy the name only when the translation changes a byte.
	var b []byte
	for i := 0; i < len(name); i++ {
		c := name[i]
		t := e.translate[c]
		if t != c {
			if b == nil {
				b = []byte(name)
			}
			b[i] = t
		}
		if !e.allChars && !e.chars[t] {
			return "", fmt.Errorf("%w: character 0x%02x not in auth_username_chars", errBadName, t)
		}
	}
	if b != nil {
		name = string(b)
	}
	vc.User = name
	f := e.format
	if pf, ok := e.protoFormat[vc.Service]; ok {
		f = pf
	}
	out := f.Expand(vc, nil)
	if out == "" {
		return "", fmt.Errorf("%w: empty after auth_username_format", errBadName)
	}
	return out, nil
}

func (e *Engine) varsContext(info *Info, user string) *vars.Context {
	vc := &vars.Context{User: user}
	fillVars(vc, info)
	return vc
}

// fillVars sets vc's request values from info (nil: none).
func fillVars(vc *vars.Context, info *Info) {
	if info != nil {
		vc.Service = info.Service
		vc.Mech = info.Mech
		vc.LocalIP, vc.RemoteIP = info.LocalIP, info.RemoteIP
		vc.LocalPort, vc.RemotePort = info.LocalPort, info.RemotePort
		vc.RealLocalIP, vc.RealRemoteIP = info.RealLocalIP, info.RealRemoteIP
		vc.RealLocalPort, vc.RealRemotePort = info.RealLocalPort, info.RealRemotePort
		vc.ClientPID = info.ClientPID
		vc.Secured = info.Secured
		if info.ValidClientCert {
			vc.Cert = "valid"
		}
		vc.Session, vc.SessionPID = info.Session, info.SessionPID
		vc.LocalName, vc.ClientID = info.LocalName, info.ClientID
	}
}

// splitMaster splits "login*master" at the configured separator
// (docs/protocol.md §5.3). ok is false when no separator is configured or present.
func (e *Engine) splitMaster(name string) (login, master string, ok bool) {
	sep := e.set.MasterUserSeparator
	if sep == "" {
		return name, "", false
	}
	i := strings.Index(name, sep)
	if i < 0 {
		return name, "", false
	}
	return name[:i], name[i+len(sep):], true
}

// verify checks a password against a stored value on the bounded CPU pool,
// within the hash limits (a memory-hard one may also wait, as long as ctx
// allows, for its share of the memory budget). An error wrapping
// ErrVerifyShed means the pool was overloaded (verifyqueue.go).
func (e *Engine) verify(ctx context.Context, scheme, data string, password []byte, user string) (bool, error) {
	if !cheapScheme(scheme) {
		blocking.Announce(ctx)
		if schemes.Costly(scheme) {
			costlyWork()
		}
		if j, ok := e.hashes.Batchable(ctx, scheme, data, password); ok {
			return e.verifyBatched(ctx, scheme, j)
		}
		if err := e.takeVerifyWorker(ctx); err != nil {
			return false, err
		}
		defer e.verifies.release()
	}
	start := mono.Now()
	ok, err := e.hashes.Verify(ctx, scheme, data, password, user)
	e.obs.Verify(canonicalScheme(scheme), mono.Since(start))
	// Only an error can be over budget; asking errors.As otherwise
	// would cost an allocation per verification.
	if err != nil {
		var over *schemes.OverBudgetError
		if errors.As(err, &over) {
			e.obs.HashOverBudget(over.Scheme, over.Param)
		}
	}
	return ok, err
}

// costlyWork tells package procs that a slow hash is starting (it wants
// every core); tests count the calls.
var costlyWork = procs.Costly

// canonicalScheme maps a scheme name to a closed label set for metrics.
func canonicalScheme(s string) string {
	if c, ok := schemes.Canonical(s); ok {
		return c
	}
	return "unknown"
}

// cheapScheme reports schemes that are a byte comparison: queuing them
// behind bcrypt runs would only add latency.
func cheapScheme(s string) bool {
	switch strings.ToUpper(s) {
	case "PLAIN", "CLEAR", "CLEARTEXT", "PLAIN-TRUNC":
		return true
	}
	return false
}

// noteAnswer keeps the passdb's readiness: failing after a lookup that
// could not tell (unless the request itself gave up), healthy again after
// the backend answered (an answer served from the cache proves nothing).
func (p *passdb) noteAnswer(ctx context.Context, err error, fromCache bool) {
	switch {
	case err != nil && ctx.Err() == nil:
		p.failing.Store(true)
	case err == nil && !fromCache:
		p.failing.Store(false)
	}
}

// hiddenPassdbFields are consumed by the auth server and never sent to a
// client (docs/protocol.md §2.6).
func hiddenPassdbField(key string) bool {
	switch key {
	case "password", "password_noscheme", "user", "username", "domain", "login_user",
		"allow_nets", "allow_real_nets", "fail", "delay_until", "nopassword",
		"noauthenticate", "passdb_import":
		return true
	}
	return strings.HasPrefix(key, "userdb_")
}

// Ready reports an error naming every passdb and userdb whose last lookup
// could not tell (server down, unreadable file): /readyz and the gRPC
// health check turn not-ready until a lookup succeeds again.
func (e *Engine) Ready() error {
	var bad []string
	for _, p := range e.passdbs {
		if p.failing.Load() {
			bad = append(bad, "passdb "+p.label())
		}
	}
	for _, u := range e.userdbs {
		if u.failing.Load() {
			bad = append(bad, "userdb "+u.label())
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("backends failing: %s", strings.Join(bad, ", "))
	}
	return nil
}

// Close releases the drivers' resources.
func (e *Engine) Close() error {
	var errs []error
	seen := map[any]bool{}
	closeOne := func(v any) {
		if c, ok := v.(backends.Closer); ok && !seen[v] {
			seen[v] = true
			errs = append(errs, c.Close())
		}
	}
	for _, p := range e.passdbs {
		closeOne(p.Passdb)
	}
	for _, u := range e.userdbs {
		closeOne(u.Userdb)
	}
	return errors.Join(errs...)
}

// Reload asks every driver that caches files to re-read them.
func (e *Engine) Reload() error {
	var errs []error
	for _, p := range e.passdbs {
		if r, ok := p.Passdb.(backends.Reloader); ok {
			errs = append(errs, r.Reload())
		}
	}
	for _, u := range e.userdbs {
		if r, ok := u.Userdb.(backends.Reloader); ok {
			errs = append(errs, r.Reload())
		}
	}
	return errors.Join(errs...)
}

// mergeFields adds a backend's fields, honouring key:protected (set only
// if not set yet, e.g. by default_fields) and key:remove (docs/protocol.md §2.5).
func mergeFields(dst *fields.Fields, src fields.Fields) {
	for _, f := range src {
		name, protected, remove := vars.SplitFieldKey(f.Key)
		switch {
		case remove:
			dst.Del(name)
		case protected:
			dst.SetDefault(name, f.Value)
		default:
			dst.Set(name, f.Value)
		}
	}
}

// applyTemplates applies default_fields or override_fields to fs.
func applyTemplates(fs *fields.Fields, tmpls []vars.FieldTemplate, vc *vars.Context) {
	for _, t := range tmpls {
		switch {
		case t.Remove:
			fs.Del(t.Key)
		case t.Protected:
			fs.SetDefault(t.Key, expand(t.Value, vc))
		default:
			fs.Set(t.Key, expand(t.Value, vc))
		}
	}
}

func expand(t *vars.Template, vc *vars.Context) string {
	if t == nil {
		return ""
	}
	return t.Expand(vc, nil)
}
