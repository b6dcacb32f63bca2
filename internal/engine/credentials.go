package engine

import (
	"context"
	"errors"
	"strings"

	"github.com/authd-project/authd/internal/blocking"
	"github.com/authd-project/authd/schemes"
)

// Credentials for the SASL mechanisms that check a proof themselves
// (CRAM-MD5, DIGEST-MD5, SCRAM). Most come out of the stored value at the
// cost of a decode, but SCRAM keys derived from a stored plaintext take
// 4096 rounds of PBKDF2, a millisecond or more: as much as a password
// hash, and the client chooses the mechanism. So that derivation is
// treated as a verification is: announced (internal/blocking, package
// procs), run on the verify pool within its bounds (verifyqueue.go), and
// matched by equal work when no user's password was found (house rule 4,
// as dummy.go does for passwords): the time until the server's first
// SCRAM message must not tell an unknown user from a known one.

// credentials returns the stored value's credentials in the wanted scheme
// (schemes.Credentials), deriving costly ones on the verify pool. An error
// wrapping ErrVerifyShed means the pool was overloaded.
func (e *Engine) credentials(ctx context.Context, scheme, data, wanted, user string) ([]byte, error) {
	if !schemes.CredentialsCostly(scheme, wanted) {
		cred, err := schemes.Credentials(scheme, data, wanted, user)
		if err == nil && isSCRAM(wanted) {
			e.scramDerives.Store(false) // stored as SCRAM: a decode
		}
		return cred, err
	}
	e.scramDerives.Store(true)
	var cred []byte
	err := e.onVerifyPool(ctx, func() (err error) {
		cred, err = schemes.Credentials(scheme, data, wanted, user)
		return err
	})
	return cred, err
}

// failCredentials ends a credentials lookup that failed without deriving
// anything. When the last lookup that found a password derived SCRAM keys
// (the site stores plaintexts), a SCRAM lookup derives keys from a
// made-up plaintext too, and throws them away; its result is res, or the
// temporary failure a known user's shed derivation gets when the pool
// sheds this one.
func (e *Engine) failCredentials(ctx context.Context, wanted, user string, res Result) Result {
	if res.Status != StatusFail || !isSCRAM(wanted) || !e.scramDerives.Load() {
		return res
	}
	err := e.onVerifyPool(ctx, func() error {
		_, err := schemes.Credentials("PLAIN", plainDummy(), wanted, user)
		return err
	})
	if errors.Is(err, ErrVerifyShed) {
		res.Status, res.Reason, res.Fields = StatusTempFail, reasonShed, nil
	}
	return res
}

// onVerifyPool runs costly work on a verify worker, as verify does a hash
// that cannot be batched. An error wrapping ErrVerifyShed means the pool
// was overloaded; ctx's error, that the request ran out of time waiting.
func (e *Engine) onVerifyPool(ctx context.Context, work func() error) error {
	blocking.Announce(ctx)
	costlyWork()
	if err := e.takeVerifyWorker(ctx); err != nil {
		return err
	}
	defer e.verifies.release()
	return work()
}

func isSCRAM(scheme string) bool { return strings.HasPrefix(strings.ToUpper(scheme), "SCRAM-") }
