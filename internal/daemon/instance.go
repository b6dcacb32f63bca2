package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/authd-project/authd/backends/oauth2"
	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/grpcserver"
	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/policy"
	"github.com/authd-project/authd/internal/sasl"
	"github.com/authd-project/authd/internal/vars"
)

// build constructs an instance from cfg without touching any socket.
func (d *daemon) build(cfg *config.Config) (*instance, error) {
	eng, err := buildEngine(cfg, d.log)
	if err != nil {
		return nil, err
	}
	mechs, err := buildMechs(cfg)
	if err != nil {
		_ = eng.Close()
		return nil, err
	}
	pol, err := d.policyFor(cfg)
	if err != nil {
		_ = eng.Close()
		return nil, err
	}
	pf, err := d.proxyFor(cfg)
	if err != nil {
		_ = eng.Close()
		return nil, err
	}
	// A new instance starts with an empty cache: a reload flushes it, as
	// SIGHUP does in Dovecot.
	eng.SetCache(cache.New(cache.Options{
		MaxBytes:    cfg.Auth.CacheSize,
		TTL:         cfg.Auth.CacheTTL,
		NegativeTTL: cfg.Auth.CacheNegativeTTL,
		Fingerprint: cfg.Auth.CacheVerifyPasswordFingerprint,
	}))
	eng.SetObserver(d.metrics)
	inst := &instance{cfg: cfg, eng: eng, handlers: map[string]func(net.Conn){}}
	red, err := d.redisFor(cfg.Redis)
	if err != nil {
		_ = eng.Close()
		return nil, err
	}
	inst.attachRedis(red)
	inst.flusher = clusterFlusher{c: eng.Cache(), inst: inst, daemn: d}
	inst.grpc = grpcserver.NewBackend(eng, inst.flusher, cfg.Penalty.MaxDelay)
	inst.shutdown = append(inst.shutdown, inst.grpc.Drain)
	ctx, cancel := context.WithCancel(context.Background())
	inst.cancel = cancel
	if inst.policy = pol; pol != nil {
		// Its report workers live as long as the instance.
		eng.SetPolicy(pol)
		inst.wg.Add(1)
		go func() {
			defer inst.wg.Done()
			pol.Run(ctx)
		}()
	}
	if inst.limiter = d.limiterFor(cfg.Penalty); inst.limiter != nil {
		eng.SetLimiter(inst.limiter)
		inst.wg.Add(1)
		go func() {
			defer inst.wg.Done()
			inst.limiter.Run(ctx)
		}()
	}
	startClient := func(l config.Listener, tcp bool) *dovecot.ClientServer {
		srv := d.clientServer(cfg, l, eng, mechs, tcp, pf)
		inst.wg.Add(1)
		go func() {
			defer inst.wg.Done()
			srv.Run(ctx)
		}()
		inst.clients = append(inst.clients, srv)
		inst.shutdown = append(inst.shutdown, srv.Shutdown)
		return srv
	}
	for _, l := range cfg.Listeners {
		switch l.Role {
		case config.RoleClient, config.RoleLogin:
			inst.handlers[l.Path] = startClient(l, false).Serve
		case config.RoleMaster, config.RoleUserdb:
			srv := d.masterServer(cfg, l, inst, pf)
			inst.handlers[l.Path] = srv.Serve
			inst.shutdown = append(inst.shutdown, srv.Shutdown)
		}
	}
	// One client-protocol server per inet_listener, for all its
	// addresses: the same limits as a unix client socket.
	for _, il := range cfg.InetListeners {
		srv := startClient(config.Listener{Name: il.Label(), Role: config.RoleClient}, true)
		for _, a := range il.Listen {
			inst.handlers[inetKey(a)] = srv.Serve
		}
	}
	return inst, nil
}

// clientServer builds the client-protocol server of a client or login
// listener; tcp for an inet_listener (the connection's addresses stand in
// for a missing rip=/lip=).
func (d *daemon) clientServer(cfg *config.Config, l config.Listener, eng *engine.Engine, mechs []sasl.Def, tcp bool, pf *engine.ProxyFinisher) *dovecot.ClientServer {
	protocol := "client"
	if l.Role == config.RoleLogin {
		protocol = "login"
	}
	maxDelay := cfg.Penalty.ClientMaxDelay
	if l.Role == config.RoleLogin {
		maxDelay = cfg.Penalty.MaxDelay
	}
	return dovecot.NewClientServer(dovecot.ClientConfig{
		Engine:               eng,
		Mechs:                mechs,
		Login:                l.Role == config.RoleLogin,
		Trusted:              l.Role == config.RoleLogin || l.Trusted,
		FailureDelay:         cfg.Auth.FailureDelay,
		MaxFailureDelay:      maxDelay,
		DebugPasswords:       cfg.Auth.DebugPasswords,
		Debug:                cfg.Auth.Debug,
		Log:                  d.log.With("listener", l.Name),
		Shared:               d.shared,
		Observe:              d.metrics.ClientObserver(protocol),
		SSLRequireClientCert: cfg.Auth.SSLRequireClientCert,
		SSLUsernameFromCert:  cfg.Auth.SSLUsernameFromCert,
		PeerAddress:          tcp,
		Proxy:                loginOnly(l, pf),
		SASL: &sasl.Settings{
			Realms:            cfg.Auth.Realms,
			AnonymousUsername: cfg.Auth.AnonymousUsername,
			UsernameFromCert:  cfg.Auth.SSLUsernameFromCert,
			StartTime:         processStart,
			// The URL Dovecot adds to OAUTHBEARER/XOAUTH2 error JSON.
			OAuth2OpenIDConfigURL: openIDConfigURL(cfg),
		},
	})
}

// openIDConfigURL is the openid_configuration_url of the first oauth2
// passdb that sets one. Dovecot sends it after that passdb refused a
// token; authd sends it with every refused OAUTHBEARER/XOAUTH2 token, which
// is the same in the usual setup of one oauth2 passdb.
func openIDConfigURL(cfg *config.Config) string {
	for _, p := range cfg.Passdbs {
		if !strings.EqualFold(p.Driver, "oauth2") {
			continue
		}
		s, err := oauth2.ParseFile(strings.TrimSpace(p.Args))
		if cfg.Syntax == vars.Syntax24 {
			s, err = oauth2.FromSettings24(oauth2Settings24(p))
		}
		if err == nil && s.OpenIDConfigurationURL != "" {
			return s.OpenIDConfigurationURL
		}
	}
	return ""
}

// masterServer builds the master-protocol server of a master or userdb
// listener.
func (d *daemon) masterServer(cfg *config.Config, l config.Listener, inst *instance, pf *engine.ProxyFinisher) *dovecot.MasterServer {
	eng, lim := inst.eng, inst.limiter
	protocol := "master"
	if l.Role == config.RoleUserdb {
		protocol = "userdb"
	}
	mc := dovecot.MasterConfig{
		Engine:  eng,
		Cache:   inst.flusher,
		Full:    l.Role == config.RoleMaster,
		Debug:   cfg.Auth.Debug,
		Log:     d.log.With("listener", l.Name),
		Shared:  d.shared,
		Observe: d.metrics.MasterObserver(protocol),
	}
	if lim != nil {
		mc.Penalty = lim
	}
	if pf != nil {
		mc.Proxy = pf
	}
	// The 0666 auth-userdb rule (docs/protocol.md §2.1).
	if l.Role == config.RoleUserdb && l.Mode.Perm() == 0o666 {
		mc.Restrict = true
		mc.SocketUID, mc.SockGID = ownerIDs(l)
	}
	return dovecot.NewMasterServer(mc)
}

// ownerIDs returns the uid/gid the socket file gets.
func ownerIDs(l config.Listener) (uint32, uint32) {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if l.User != "" {
		if u, err := user.Lookup(l.User); err == nil {
			if n, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
				uid = uint32(n)
			}
		}
	}
	if l.Group != "" {
		if g, err := user.LookupGroup(l.Group); err == nil {
			if n, err := strconv.ParseUint(g.Gid, 10, 32); err == nil {
				gid = uint32(n)
			}
		}
	}
	return uid, gid
}

func buildMechs(cfg *config.Config) ([]sasl.Def, error) {
	var out []sasl.Def
	for _, m := range cfg.Auth.Mechanisms {
		def, ok := sasl.Defs[strings.ToUpper(m)]
		if !ok {
			return nil, fmt.Errorf("auth_mechanisms: %s is not implemented yet", m)
		}
		out = append(out, def)
	}
	if len(out) == 0 {
		return nil, errors.New("auth_mechanisms: no mechanism enabled")
	}
	return out, nil
}

// buildEngine builds the drivers and the engine. Errors name the block's
// file:line.
func buildEngine(cfg *config.Config, log *slog.Logger) (*engine.Engine, error) {
	ds := newDriverSet(log)
	ds.userdbCount = len(cfg.Userdbs)
	var errs []error
	var passdbs, userdbs []engine.DBSpec
	for _, p := range cfg.Passdbs {
		spec, err := dbSpec(cfg.Syntax, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: passdb: %w", p.Pos, err))
			continue
		}
		db, err := ds.passdbFor(cfg, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: passdb %s: %w", p.Pos, p.Driver, err))
			continue
		}
		spec.Passdb = db
		passdbs = append(passdbs, spec)
	}
	for _, u := range cfg.Userdbs {
		spec, err := dbSpec(cfg.Syntax, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: userdb: %w", u.Pos, err))
			continue
		}
		db, err := ds.userdbFor(cfg, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: userdb %s: %w", u.Pos, u.Driver, err))
			continue
		}
		spec.Userdb = db
		userdbs = append(userdbs, spec)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	a := cfg.Auth
	return engine.New(engine.Settings{
		FailureDelay:           a.FailureDelay,
		Verbose:                a.Verbose,
		HashLimits:             cfg.HashBudget,
		Realms:                 a.Realms,
		DefaultRealm:           a.DefaultRealm,
		UsernameChars:          a.UsernameChars,
		UsernameTranslation:    a.UsernameTranslation,
		UsernameFormat:         a.UsernameFormat,
		Syntax:                 cfg.Syntax,
		ProtocolUsernameFormat: a.ProtocolUsernameFormat,
		MasterUserSeparator:    a.MasterUserSeparator,
		AnonymousUsername:      a.AnonymousUsername,
		DebugPasswords:         a.DebugPasswords,
		UsernameFromCert:       a.SSLUsernameFromCert,
		FirstValidUID:          a.FirstValidUID,
		LastValidUID:           a.LastValidUID,
		FirstValidGID:          a.FirstValidGID,
		LastValidGID:           a.LastValidGID,
	}, passdbs, userdbs, log)
}

func dbSpec(syntax vars.Syntax, c config.DB) (engine.DBSpec, error) {
	s := engine.DBSpec{
		Name: c.Name, Driver: c.Driver, Skip: c.Skip,
		ResultSuccess: c.ResultSuccess, ResultFailure: c.ResultFailure, ResultInternalfail: c.ResultInternalfail,
		Mechanisms: c.Mechanisms, UsernameFilter: c.UsernameFilter, Deny: c.Deny, Master: c.Master, Pass: c.Pass,
		AuthVerbose: c.AuthVerbose,
	}
	if syntax == vars.Syntax24 {
		return dbSpec24(s, c)
	}
	var err error
	if s.DefaultFields, err = vars.ParseFields(c.DefaultFields); err != nil {
		return s, fmt.Errorf("default_fields: %w", err)
	}
	if s.OverrideFields, err = vars.ParseFields(c.OverrideFields); err != nil {
		return s, fmt.Errorf("override_fields: %w", err)
	}
	return s, nil
}

// retire drains an instance's servers and closes its drivers.
func (d *daemon) retire(inst *instance, ctx context.Context) error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, f := range inst.shutdown {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	inst.cancel()
	inst.wg.Wait()
	if live := d.live.Load(); live == nil || live.redis != inst.redis {
		inst.redis.stop() // not shared with the instance that replaced it
	}
	if inst.policy != nil {
		inst.policy.Close()
	}
	errs = append(errs, inst.eng.Close())
	return errors.Join(errs...)
}

// policyFor builds the auth policy server's client when
// auth_policy_server_url is set (nil otherwise).
func (d *daemon) policyFor(cfg *config.Config) (*policy.Client, error) {
	if cfg.Auth.Policy.URL == "" {
		return nil, nil
	}
	c, err := policy.New(cfg.Auth.Policy, policy.Options{Log: d.log})
	if err != nil {
		return nil, fmt.Errorf("auth policy server: %w", err)
	}
	return c, nil
}

// limiterFor returns the brute-force defence for p: the running one when
// its budgets did not change, so that a reload does not forget who was
// failing; a new one otherwise; nil when the defence is off.
func (d *daemon) limiterFor(p config.Penalty) *limiter.Limiter {
	if !p.Enabled {
		return nil
	}
	lc := limiter.Config{IP: p.IP, Prefix: p.Prefix, Account: p.Account, KnownGood: p.KnownGood,
		KnownGoodFor: p.KnownGoodFor, MaxKeys: p.MaxKeys, Log: d.log}
	if cur := d.cur; cur != nil && cur.limiter != nil && sameBudgets(cur.cfg.Penalty, p) {
		return cur.limiter
	}
	return limiter.New(lc)
}

func sameBudgets(a, b config.Penalty) bool {
	return a.IP == b.IP && a.Prefix == b.Prefix && a.Account == b.Account && a.KnownGood == b.KnownGood &&
		a.KnownGoodFor == b.KnownGoodFor && a.MaxKeys == b.MaxKeys
}

// loginOnly gives pf to login listeners: Dovecot finishes proxy fields
// only for requests a login process will act on, not for client sockets.
func loginOnly(l config.Listener, pf *engine.ProxyFinisher) dovecot.ProxyFinisher {
	if l.Role != config.RoleLogin || pf == nil {
		return nil
	}
	return pf
}

// proxyFor builds the proxy-field finisher, with auth_proxy_self resolved
// (names at most 5 s each, as at Dovecot's start; one that does not
// resolve is an error).
func (d *daemon) proxyFor(cfg *config.Config) (*engine.ProxyFinisher, error) {
	var self []netip.Addr
	for _, s := range cfg.Auth.ProxySelf {
		if a, err := netip.ParseAddr(s); err == nil {
			self = append(self, a.Unmap())
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", s)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("auth_proxy_self: %w", err)
		}
		for _, a := range addrs {
			self = append(self, a.Unmap())
		}
	}
	return engine.NewProxyFinisher(self, net.DefaultResolver, d.log), nil
}
