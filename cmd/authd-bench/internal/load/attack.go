package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// A brute-force attack beside a legitimate load (RunAttack): attackers
// guess passwords from many addresses as fast as the server answers them,
// while legitimate users log in, each from an address of its own. What
// matters is how the legitimate users fare (their rate and p99) and how
// much of the attack the server turns away.
//
// A refusal of authd's brute-force defence is answered exactly like a
// wrong password, so it cannot be told from the reply to a guess. The
// attackers therefore send a small share of probes: requests with the
// account's right password. A probe answered FAIL was refused; since
// refusal is decided per key before anything is looked up, not per
// password, the share of probes refused estimates the share of all
// attacker requests refused. (A probe that gets through gives its count
// back and makes the pair known-good, as a real success does; at a few
// percent of requests spread over many accounts this barely helps the
// attackers.) A server without such a defence lets every probe in.

// Attack describes the attackers of RunAttack. Zero fields take the
// defaults.
type Attack struct {
	// Addrs is the number of attacking addresses (default 1000): address
	// j is AttackerAddr(j). Each request comes from one drawn at random,
	// at an account drawn at random, as from a botnet behind login
	// processes.
	Addrs int
	// Conns × Depth attacker requests are kept in flight (default 8 × 64:
	// many more than the legitimate users').
	Conns, Depth int
	// ProbeShare is the share of attacker requests sent with the
	// account's right password (default 0.02).
	ProbeShare float64
}

// Defaults and bounds of an Attack.
const (
	DefaultAttackAddrs = 1000
	DefaultAttackConns = 8
	DefaultAttackDepth = 64
	DefaultProbeShare  = 0.02
	// MaxAttackAddrs: AttackerAddr keeps every address in 198.18.0.0/15.
	MaxAttackAddrs = 512 * 254
)

// AttackerAddr is attacking address j (from 0): in 198.18.0.0/15, the
// range set aside for benchmarks (RFC 2544), two addresses per /24 for
// 1000 attackers, so that the per-address budget, not the per-network
// one, is what stops them.
func AttackerAddr(j int) netip.Addr {
	net := j % 512
	return netip.AddrFrom4([4]byte{198, 18 + byte(net>>8), byte(net), byte(j/512 + 1)})
}

func (a *Attack) normalize() error {
	if a.Addrs == 0 {
		a.Addrs = DefaultAttackAddrs
	}
	if a.Conns == 0 {
		a.Conns = DefaultAttackConns
	}
	if a.Depth == 0 {
		a.Depth = DefaultAttackDepth
	}
	if a.ProbeShare == 0 {
		a.ProbeShare = DefaultProbeShare
	}
	switch {
	case a.Addrs < 1 || a.Addrs > MaxAttackAddrs:
		return fmt.Errorf("attacking addresses %d: want 1..%d", a.Addrs, MaxAttackAddrs)
	case !(a.ProbeShare > 0 && a.ProbeShare <= 1):
		return fmt.Errorf("probe share %v: want more than 0 and at most 1", a.ProbeShare)
	}
	return nil
}

// attackerConfig is the attackers' load, derived from the legitimate
// one: the same target, protocol, users and window, their own
// connections, every request a guess but for the probes, and no
// no-penalty (an attacker's login process would not vouch for it).
func (a *Attack) attackerConfig(legit *Config) Config {
	return Config{
		Target: legit.Target, Protocols: legit.Protocols, Protocol: legit.Protocol, Mech: legit.Mech,
		Conns: a.Conns, Depth: a.Depth, Duration: legit.Duration, Warmup: legit.Warmup,
		Users: legit.Users, WrongShare: 1 - a.ProbeShare, Service: legit.Service,
		Timeout: legit.Timeout, Seed: legit.Seed ^ 0x9e3779b97f4a7c15, TLS: legit.TLS,
	}
}

// AttackResult is the report of RunAttack.
type AttackResult struct {
	// Legit are the legitimate users' requests: their rate and latency
	// are what the attack must not spoil.
	Legit *Result `json:"legit"`
	// Attacker are the attackers' requests; their RightFail are the
	// refused probes.
	Attacker   *Result `json:"attacker"`
	Addrs      int     `json:"attack_addrs"`
	ProbeShare float64 `json:"probe_share"`
	// Probes is the number of probes answered OK or FAIL in the window,
	// ProbesRefused of them FAIL.
	Probes        int64 `json:"probes"`
	ProbesRefused int64 `json:"probes_refused"`
	// RefusedShare is ProbesRefused / Probes: the estimated share of the
	// attackers' requests the server refused without verifying them.
	RefusedShare float64 `json:"refused_share"`
}

// RunAttack runs the legitimate load legit and the attack atk at once,
// over the same window. Unless legit names a RemoteIP, its users log in
// from addresses of their own (Config.UserAddrs). The attack needs an
// authenticating protocol (client or grpc); legit.MaxRequests bounds the
// legitimate requests only. It returns within about the time Run takes
// for legit.
func RunAttack(ctx context.Context, legit Config, atk Attack) (*AttackResult, error) {
	if err := atk.normalize(); err != nil {
		return nil, err
	}
	if legit.RemoteIP == "" {
		legit.UserAddrs = true
	}
	if err := legit.normalize(); err != nil {
		return nil, err
	}
	if legit.Rate > 0 {
		return nil, errPacedAttack
	}
	if legit.Protocol == "master" {
		return nil, errors.New("an attack needs an authenticating protocol (client or grpc), not USER lookups")
	}
	acfg := atk.attackerConfig(&legit)
	if err := acfg.normalize(); err != nil {
		return nil, fmt.Errorf("attackers: %w", err)
	}
	conns, err := dialAll(ctx, &legit)
	defer closeAll(conns)
	if err != nil {
		return nil, err
	}
	aconns, err := dialAll(ctx, &acfg)
	defer closeAll(aconns)
	if err != nil {
		return nil, fmt.Errorf("attackers: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { closeAll(conns); closeAll(aconns) })
	defer stop()

	res := &AttackResult{Legit: newResult(&legit), Attacker: newResult(&acfg), Addrs: atk.Addrs, ProbeShare: atk.ProbeShare}
	addrs := legit.userAddrs()
	if legit.WarmAll {
		res.Legit.WarmAll = warmAll(conns, &legit, addrs, res.Legit)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	pool := make([]string, atk.Addrs)
	for j := range pool {
		pool[j] = AttackerAddr(j).String()
	}
	start := time.Now()
	ph, aph := newPhase(&legit, start, addrs, nil), newPhase(&acfg, start, nil, pool)
	aph.guesses = true
	if legit.OnWindow != nil {
		legit.OnWindow(ph.t0, ph.t1)
	}
	var ws, aws []*Worker
	var g sync.WaitGroup
	g.Go(func() { aws = runPhase(aconns, &acfg, aph, aph.t1.Add(acfg.Timeout)) })
	ws = runPhase(conns, &legit, ph, ph.t1.Add(legit.Timeout))
	g.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	res.Legit.collect(ws, ph, &legit)
	res.Attacker.collect(aws, aph, &acfg)
	res.tally()
	return res, nil
}

// tally estimates the refused share from the probes.
func (r *AttackResult) tally() {
	a := r.Attacker
	r.ProbesRefused = a.RightFail
	r.Probes = (a.OK - a.WrongOK) + a.RightFail
	if r.Probes > 0 {
		r.RefusedShare = float64(r.ProbesRefused) / float64(r.Probes)
	}
}

// WriteText prints r for people: both loads, then the summary.
func (r *AttackResult) WriteText(w io.Writer) error {
	var b strings.Builder
	b.WriteString("legitimate users (each from an address of its own)\n")
	if err := r.Legit.WriteText(indent{&b}); err != nil {
		return err
	}
	fmt.Fprintf(&b, "attackers (%d addresses, %.0f%% of requests probing with the right password)\n", r.Addrs, r.ProbeShare*100)
	if err := r.Attacker.WriteText(indent{&b}); err != nil {
		return err
	}
	fmt.Fprintf(&b, "legit       %.1f logins/s, p99 %s under an attack of %.1f requests/s\n",
		r.Legit.RPS, FormatMS(r.Legit.Latency.P99), r.Attacker.RPS)
	fmt.Fprintf(&b, "refused     ≈ %.1f%% of attacker requests (%d of %d right-password probes failed)\n",
		r.RefusedShare*100, r.ProbesRefused, r.Probes)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints r as one indented JSON object.
func (r *AttackResult) WriteJSON(w io.Writer) error { return writeJSON(w, r) }

// indent writes every line two spaces in.
type indent struct{ b *strings.Builder }

func (i indent) Write(p []byte) (int, error) {
	for _, l := range strings.SplitAfter(string(p), "\n") {
		if l != "" {
			i.b.WriteString("  " + l)
		}
	}
	return len(p), nil
}
