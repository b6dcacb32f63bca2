package config

import (
	"errors"
	"time"

	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/internal/limiter"
)

// Penalty is authd's own `penalty { }` section: the brute-force defence
// (docs/operations.md §7). It is on by default: Dovecot's
// auth has its penalty on by default too.
type Penalty struct {
	Enabled bool // enabled, default yes

	IP        limiter.Budget // ip_failures, ip_window
	Prefix    limiter.Budget // prefix_failures, prefix_window
	Account   limiter.Budget // account_failures, account_window
	KnownGood limiter.Budget // known_good_failures, known_good_window
	// KnownGoodFor is known_good_for: how long a successful login keeps
	// an account's network known-good.
	KnownGoodFor time.Duration
	MaxKeys      int // max_keys: keys tracked at most

	// ClientMaxDelay (client_max_delay) bounds a failure's reply delay on
	// client sockets, counted from the request's arrival: Postfix gives
	// up on its auth server after 10 s. MaxDelay (max_delay) bounds it
	// on login sockets and gRPC.
	ClientMaxDelay, MaxDelay time.Duration
	Pos                      Pos
}

func defaultPenalty() Penalty {
	return Penalty{
		Enabled: true,
		IP:      limiter.DefaultIP, Prefix: limiter.DefaultPrefix,
		Account: limiter.DefaultAccount, KnownGood: limiter.DefaultKnownGood,
		KnownGoodFor:   limiter.DefaultKnownGoodFor,
		MaxKeys:        limiter.DefaultMaxKeys,
		ClientMaxDelay: 8 * time.Second,
		MaxDelay:       15 * time.Second,
	}
}

var penaltyKeys = []string{"account_failures", "account_window", "client_max_delay", "enabled", "ip_failures", "ip_window",
	"known_good_failures", "known_good_for", "known_good_window", "max_delay", "max_keys", "prefix_failures", "prefix_window"}

// penalty parses the penalty { } section.
func (b *builder) penalty(n *conffile.Node) {
	if n.Label != "" {
		b.errs.add(n.Pos, "penalty { } takes no name")
	}
	p := &b.cfg.Penalty
	if p.Pos == (Pos{}) {
		p.Pos = n.Pos
	}
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
		case c.Section:
			b.errs.add(c.Pos, "section %q is not allowed in penalty { }", c.Key)
		case !contains(penaltyKeys, c.Key):
			b.unknown(c.Pos, c.Key, "penalty { }", penaltyKeys)
		default:
			if v, ok := b.value(c, true); ok {
				if err := setPenalty(p, c.Key, v); err != nil {
					b.errs.add(c.Pos, "%s: %v", c.Key, err)
				}
			}
		}
	}
}

func setPenalty(p *Penalty, key, v string) error {
	failures := map[string]*int{"ip_failures": &p.IP.Failures, "prefix_failures": &p.Prefix.Failures,
		"account_failures": &p.Account.Failures, "known_good_failures": &p.KnownGood.Failures, "max_keys": &p.MaxKeys}
	durations := map[string]*time.Duration{"ip_window": &p.IP.Window, "prefix_window": &p.Prefix.Window,
		"account_window": &p.Account.Window, "known_good_window": &p.KnownGood.Window, "known_good_for": &p.KnownGoodFor,
		"client_max_delay": &p.ClientMaxDelay, "max_delay": &p.MaxDelay}
	switch {
	case key == "enabled":
		x, err := conffile.ParseBool(v)
		p.Enabled = x
		return err
	case failures[key] != nil:
		n, err := conffile.ParseUint32(v)
		switch {
		case err != nil:
			return err
		case key == "max_keys" && n < 1000:
			return errTooFewKeys
		case key != "max_keys" && n > 60000:
			// The limiter counts in 16-bit slots.
			return errTooLarge
		}
		*failures[key] = int(n)
		return nil
	}
	d, err := conffile.ParseDuration(v, false)
	if err == nil && d <= 0 && key != "client_max_delay" && key != "max_delay" {
		return errNotPositiveDuration
	}
	*durations[key] = d
	return err
}

var (
	errTooLarge            = errors.New("at most 60000")
	errTooFewKeys          = errors.New("at least 1000")
	errPositive            = errors.New("must be a whole number of at least 1")
	errNotPositiveDuration = errors.New("must be longer than 0")
)
