package schemes

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// The cost budget (docs/schemes.md §7). Every cost parameter of a stored
// hash (bcrypt's cost, SHA-crypt's rounds, argon2's m/t/p …) comes from the
// stored value itself, so one hostile or broken passdb row could otherwise
// pin a CPU for hours or make the runtime die of an allocation it cannot
// satisfy (a fatal error that recover() does not catch). Each parameter is
// therefore compared with a limit after parsing and before any hashing or
// allocation; a value over its limit is "could not tell" (ErrOverBudget),
// never a wrong password, because the password may well be right.

// ErrOverBudget: the stored value asks for more work or memory than the
// configured Limits allow. The error is always an *OverBudgetError too,
// which names the parameter.
var ErrOverBudget = errors.New("stored password hash over the cost budget")

// OverBudgetError tells which parameter of a stored hash is over which
// limit. It never holds the hash or any part of it other than the one
// number. Scheme and Param come from the closed set BudgetParams lists,
// so they can be used as metric labels.
type OverBudgetError struct {
	Scheme string // family of the limit, e.g. "BLF-CRYPT", "ARGON2", "SCRYPT"
	Param  string // the parameter, e.g. "cost", "m", "p", "memory"
	Value  uint64 // what the stored value asks for
	Limit  uint64 // what the Limits allow
}

func (e *OverBudgetError) Error() string {
	unit := ""
	if e.Param == "m" || e.Param == "memory" {
		unit = " KiB"
	}
	return fmt.Sprintf("%v: %s %s = %d%s, limit %d%s", ErrOverBudget, e.Scheme, e.Param, e.Value, unit, e.Limit, unit)
}

// Unwrap makes errors.Is(err, ErrOverBudget) true.
func (e *OverBudgetError) Unwrap() error { return ErrOverBudget }

// Labels of the budgeted scheme families (OverBudgetError.Scheme).
const (
	budgetBcrypt    = "BLF-CRYPT"
	budgetSHACrypt  = "SHA-CRYPT"
	budgetPBKDF2    = "PBKDF2"
	budgetSCRAM     = "SCRAM"
	budgetOTP       = "OTP"
	budgetSHA1Crypt = "SHA1-CRYPT"
	budgetBSDi      = "BSDI-CRYPT"
	budgetArgon2    = "ARGON2"
	budgetScrypt    = "SCRYPT"
	budgetYescrypt  = "YESCRYPT"
	budgetSunMD5    = "SUN-MD5"
)

// BudgetParam is one (scheme, parameter) pair that has a limit.
type BudgetParam struct{ Scheme, Param string }

// BudgetParams lists every (Scheme, Param) an OverBudgetError can carry:
// the closed label set of the over-budget metric.
func BudgetParams() []BudgetParam {
	return []BudgetParam{
		{budgetBcrypt, "cost"},
		{budgetSHACrypt, "rounds"},
		{budgetPBKDF2, "iterations"},
		{budgetSCRAM, "iterations"},
		{budgetOTP, "sequence"},
		{budgetSHA1Crypt, "iterations"},
		{budgetBSDi, "rounds"},
		{budgetSunMD5, "rounds"},
		{budgetArgon2, "m"}, {budgetArgon2, "t"}, {budgetArgon2, "p"}, {budgetArgon2, "work"}, {budgetArgon2, "memory"},
		{budgetScrypt, "N"}, {budgetScrypt, "r"}, {budgetScrypt, "p"}, {budgetScrypt, "work"}, {budgetScrypt, "memory"},
		{budgetYescrypt, "N"}, {budgetYescrypt, "r"}, {budgetYescrypt, "p"}, {budgetYescrypt, "t"}, {budgetYescrypt, "work"}, {budgetYescrypt, "memory"},
	}
}

// bound is one parameter to compare with its limit.
type bound struct {
	param        string
	value, limit uint64
}

// within returns an *OverBudgetError for the first bound whose value is
// above its limit, or nil.
func within(scheme string, bs ...bound) error {
	for _, b := range bs {
		if b.value > b.limit {
			return &OverBudgetError{Scheme: scheme, Param: b.param, Value: b.value, Limit: b.limit}
		}
	}
	return nil
}

// mulSat multiplies without wrapping around: a product that does not fit
// is MaxUint64, which is over every limit.
func mulSat(xs ...uint64) uint64 {
	p := uint64(1)
	for _, x := range xs {
		hi, lo := bits.Mul64(p, x)
		if hi != 0 {
			return ^uint64(0)
		}
		p = lo
	}
	return p
}

// addSat adds without wrapping around.
func addSat(xs ...uint64) uint64 {
	var s uint64
	for _, x := range xs {
		sum, carry := bits.Add64(s, x, 0)
		if carry != 0 {
			return ^uint64(0)
		}
		s = sum
	}
	return s
}

// kib rounds a byte count up to KiB.
func kib(bytes uint64) uint64 {
	return bytes/1024 + min(bytes%1024, 1)
}

// call is one verification: the request's context, the Verifier's limits
// and memory budget, and (in tests only) hooks. Budgeted verifiers take it
// as their first argument. It is passed by value so that the verifications
// that allocate nothing (SHA-crypt with a short password) stay that way.
type call struct {
	ctx context.Context
	v   *Verifier
	// shape, when set, makes the call only measure: the first limit check
	// records the stored value's cost parameters there and stops the
	// verification before any work (Verifier.Shape).
	shape *string
}

// errMeasured stops a measuring call after its limit check.
var errMeasured = errors.New("schemes: measured")

// within checks bs against their limits (see within); in a measuring
// call it records them instead and stops.
func (c call) within(scheme string, bs ...bound) error {
	if c.shape != nil {
		var b strings.Builder
		b.WriteString(scheme)
		for _, x := range bs {
			fmt.Fprintf(&b, " %s=%d", x.param, x.value)
		}
		*c.shape = b.String()
		return errMeasured
	}
	return within(scheme, bs...)
}

func (c call) limits() *Limits { return &c.v.limits }

// begin is called by every budgeted scheme after its limits passed and its
// memory is reserved, right before the expensive work: a request whose
// client has gone away need not start hashing.
func (c call) begin(scheme string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	if h := c.v.hooks.work; h != nil {
		return h(scheme)
	}
	return nil
}

// reserve takes kib KiB from the memory budget, waiting (as long as the
// context allows) while concurrent verifications hold it. A single value
// needing more than the whole budget is over budget at once: waiting could
// never help. The caller must call the returned release exactly once.
func (c call) reserve(scheme string, kib uint64) (release func(), err error) {
	total := uint64(c.v.limits.MemoryBudgetKiB)
	if err := within(scheme, bound{"memory", kib, total}); err != nil {
		return nil, err
	}
	n, mem := int64(kib), c.v.mem // n ≤ total, which is an int64
	if !mem.TryAcquire(n) {
		if h := c.v.hooks.wait; h != nil {
			h()
		}
		if err := mem.Acquire(c.ctx, n); err != nil {
			return nil, fmt.Errorf("schemes: waiting for %d KiB of hash memory: %w", kib, err)
		}
	}
	return func() { mem.Release(n) }, nil
}

// hooks let tests observe a Verifier without timing anything: work runs
// where the expensive part of a scheme would start (a non-nil error is
// returned instead of doing it), wait when a memory reservation has to
// wait. Both are nil outside tests.
type hooks struct {
	work func(scheme string) error
	wait func()
}
