package config

import (
	"strconv"

	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/schemes"
)

// hashBudgetFields maps the keys of authd's own `hash_budget { }` section
// to the fields of schemes.Limits: the most work a stored password hash
// may ask for before it is refused as a temporary failure
// (docs/schemes.md §7). A key not set keeps schemes' default. Sizes take
// Dovecot's units (256M); the rest are plain numbers.
func hashBudgetFields(l *schemes.Limits) map[string]*int64 {
	return map[string]*int64{
		"bcrypt_cost":          &l.BcryptMaxCost,
		"sha_crypt_rounds":     &l.SHACryptMaxRounds,
		"pbkdf2_iterations":    &l.PBKDF2MaxIterations,
		"scram_iterations":     &l.SCRAMMaxIterations,
		"otp_sequence":         &l.OTPMaxSequence,
		"sha1crypt_iterations": &l.SHA1CryptMaxIterations,
		"bsdi_rounds":          &l.BSDiCryptMaxRounds,
		"sun_md5_rounds":       &l.SunMD5MaxRounds,
		"argon2_memory":        &l.Argon2MaxMemoryKiB,
		"argon2_iterations":    &l.Argon2MaxPasses,
		"argon2_lanes":         &l.Argon2MaxLanes,
		"argon2_work":          &l.Argon2MaxWork,
		"scrypt_n":             &l.ScryptMaxN,
		"scrypt_r":             &l.ScryptMaxR,
		"scrypt_p":             &l.ScryptMaxP,
		"scrypt_work":          &l.ScryptMaxWork,
		"yescrypt_n":           &l.YescryptMaxN,
		"yescrypt_r":           &l.YescryptMaxR,
		"yescrypt_p":           &l.YescryptMaxP,
		"yescrypt_t":           &l.YescryptMaxT,
		"yescrypt_work":        &l.YescryptMaxWork,
		"memory":               &l.MemoryBudgetKiB,
	}
}

// hashBudgetSizes are the keys whose values are sizes (in KiB inside
// schemes.Limits).
var hashBudgetSizes = map[string]bool{"argon2_memory": true, "memory": true}

// hashBudget parses the hash_budget { } section.
func (b *builder) hashBudget(n *conffile.Node) {
	if n.Label != "" {
		b.errs.add(n.Pos, "hash_budget { } takes no name")
	}
	fields := hashBudgetFields(&b.cfg.HashBudget)
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
		case c.Section:
			b.errs.add(c.Pos, "section %q is not allowed in hash_budget { }", c.Key)
		case fields[c.Key] == nil:
			b.unknown(c.Pos, c.Key, "hash_budget { }", keys)
		default:
			v, ok := b.value(c, true)
			if !ok {
				continue
			}
			if err := setHashBudget(fields[c.Key], c.Key, v); err != nil {
				b.errs.add(c.Pos, "%s: %v", c.Key, err)
			}
		}
	}
	if err := b.cfg.HashBudget.Validate(); err != nil {
		b.errs.add(n.Pos, "hash_budget: %v", err)
	}
}

func setHashBudget(dst *int64, key, v string) error {
	if hashBudgetSizes[key] {
		n, err := conffile.ParseSize(v)
		if err != nil {
			return err
		}
		*dst = n / 1024
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return errPositive
	}
	*dst = n
	return nil
}
