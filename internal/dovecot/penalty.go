package dovecot

import (
	"strconv"

	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/tabescape"
)

// The brute-force defence's administration on the auth-master socket:
// authd's own commands, which `authd penalty` sends (as doveadm penalty
// asks Dovecot's anvil). Dovecot's clients never send them.
//
//	PENALTY <id> [<max>]
//	  → PENALTY <id> <kind> <key> <failures> <limit> refusing|counting  (per key)
//	  → DONE <id>
//	PENALTY-RESET <id> <kind> <key>
//	  → OK <id> <keys reset>, or FAIL <id> for an unknown kind
//
// kind is ip, prefix or account; resetting an account also forgets where
// it logged in from.

// PenaltyAdmin is the brute-force defence as these commands need it.
type PenaltyAdmin interface {
	List(n int) []limiter.KeyState
	Reset(kind limiter.Kind, key string) int
}

func (c *masterConn) handlePenalty(args []string) bool {
	if len(args) < 2 {
		return false
	}
	id, ok := parseID(args[1])
	if !ok {
		return false
	}
	sid := itoa(id)
	n := 100
	if len(args) > 2 {
		if v, err := strconv.Atoi(args[2]); err == nil && v > 0 {
			n = v
		}
	}
	var out []byte
	if p := c.s.cfg.Penalty; p != nil {
		for _, k := range p.List(n) {
			state := "counting"
			if k.Refusing {
				state = "refusing"
			}
			out = append(out, "PENALTY\t"+sid+"\t"+k.Kind.String()+"\t"...)
			out = tabescape.Append(out, k.Key)
			out = append(out, "\t"+strconv.Itoa(k.Failures)+"\t"+strconv.Itoa(k.Limit)+"\t"+state+"\n"...)
		}
	}
	c.write(string(out) + "DONE\t" + sid + "\n")
	return true
}

func (c *masterConn) handlePenaltyReset(args []string) bool {
	if len(args) < 4 {
		return false
	}
	id, ok := parseID(args[1])
	if !ok {
		return false
	}
	kinds := map[string]limiter.Kind{"ip": limiter.KindIP, "prefix": limiter.KindPrefix, "account": limiter.KindAccount}
	kind, known := kinds[args[2]]
	if !known || c.s.cfg.Penalty == nil {
		c.write("FAIL\t" + itoa(id) + "\n")
		return true
	}
	n := c.s.cfg.Penalty.Reset(kind, args[3])
	c.s.cfg.Log.Info("penalty reset", "kind", args[2], "key", truncate(args[3], 64), "keys", n)
	c.write("OK\t" + itoa(id) + "\t" + strconv.Itoa(n) + "\n")
	return true
}
