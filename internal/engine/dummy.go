package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"

	"github.com/authd-project/authd/schemes"
)

// Equal-cost failures (docs/architecture.md, house rule 4): every failed
// password check costs one verification as expensive as the user's real
// one would have been, so that an unknown user, a disabled account or a
// name error cannot be told from a wrong password by the work done. (The
// failure's reply also leaves a fixed time after the request arrived:
// FinishAuth.)
//
// A passdb remembers the shapes of the stored hashes it verifies (scheme
// and cost parameters, schemes.Verifier.Shape: "SHA-CRYPT rounds=5000",
// "BLF-CRYPT cost=10"), and one stored value of each; a request that
// verified nothing verifies its password against a value of the most
// common shape. The value's result is thrown away: only its cost counts.
// A passdb of plaintext passwords gets a plaintext dummy (a made-up
// value). Before anything was verified, a fresh SHA512-CRYPT hash of a
// random password stands in.

// maxShapes bounds the shapes a passdb remembers; a site has a handful.
const maxShapes = 16

// dummies is a passdb's memory of the shapes it verified.
type dummies struct {
	mu     sync.Mutex
	shapes map[string]*shapeSeen
	// fallback is a generated hash (Engine.fallback only).
	fallback string
}

type shapeSeen struct {
	count        int
	scheme, data string
}

// note remembers a stored value that was verified.
func (d *dummies) note(shape, scheme, data string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.shapes == nil {
		d.shapes = make(map[string]*shapeSeen)
	}
	if s := d.shapes[shape]; s != nil {
		s.count++
		s.scheme, s.data = scheme, data
		return
	}
	if len(d.shapes) >= maxShapes {
		// Forget the rarest: a shape seen once does not describe the
		// passdb.
		var rare string
		for k, s := range d.shapes {
			if rare == "" || s.count < d.shapes[rare].count {
				rare = k
			}
		}
		delete(d.shapes, rare)
	}
	d.shapes[shape] = &shapeSeen{count: 1, scheme: scheme, data: data}
}

// pick returns a value of the most common shape; ok is false when the
// passdb has verified nothing yet.
func (d *dummies) pick() (scheme, data string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var best *shapeSeen
	for _, s := range d.shapes {
		if best == nil || s.count > best.count {
			best = s
		}
	}
	if best == nil {
		return "", "", false
	}
	return best.scheme, best.data, true
}

// generated returns a fresh hash of a random password, for a daemon that
// has verified nothing yet.
func (d *dummies) generated(scheme string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fallback == "" {
		var rnd [16]byte
		_, _ = rand.Read(rnd[:])
		data, err := schemes.Generate(scheme, []byte(hex.EncodeToString(rnd[:])), "dummy", 0)
		if err != nil {
			return "", err
		}
		d.fallback = data
	}
	return d.fallback, nil
}

// plainDummy is the made-up value plaintext dummies compare against.
var plainDummy = sync.OnceValue(func() string {
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	return hex.EncodeToString(rnd[:])
})

// noteStored records the shape of a stored value the engine verified.
func (e *Engine) noteStored(p *passdb, scheme, data string) {
	if cheapScheme(scheme) {
		// A passdb of plaintext passwords gets a plaintext dummy: a
		// made-up value, never a user's password, compared as cheaply
		// (a hash here would make unknown users the slow ones).
		p.dummies.note("PLAIN", "PLAIN", plainDummy())
		return
	}
	shape, err := e.hashes.Shape(scheme, data)
	if err != nil {
		return
	}
	p.dummies.note(shape, scheme, data)
}

// fallbackScheme is the dummy's scheme before any hash was seen: Dovecot's
// default_pass_scheme.
const fallbackScheme = "SHA512-CRYPT"

// verifyDummy spends, for a request that verified nothing, what a real
// verification costs: a hash of the shape first's passdb verifies most,
// else of any passdb's (a master passdb may not have seen a login yet),
// else a generated one. It reports whether the verify queue shed it.
func (e *Engine) verifyDummy(ctx context.Context, r *request, first *passdb, password []byte) (shed bool) {
	scheme, data, ok := first.dummies.pick()
	for _, p := range e.passdbs {
		if ok {
			break
		}
		scheme, data, ok = p.dummies.pick()
	}
	if !ok {
		var err error
		if data, err = e.fallback.generated(fallbackScheme); err != nil {
			return false
		}
		scheme = fallbackScheme
	}
	r.verifies++
	_, err := e.verify(ctx, scheme, data, password, "dummy")
	return errors.Is(err, ErrVerifyShed)
}

// equalCost verifies a dummy when a failing request verified nothing: an
// unknown user, a name error, a user on a deny list, a passdb that gave no
// password. It uses the first passdb the walk would ask. It reports
// whether the verify queue shed the dummy.
func (e *Engine) equalCost(ctx context.Context, r *request, w walk, password []byte) (shed bool) {
	if r.verifies > 0 || len(e.passdbs) == 0 {
		return false
	}
	first := e.passdbs[0]
	for _, p := range e.passdbs {
		if p.Master == w.masters() && !p.Deny {
			first = p
			break
		}
	}
	return e.verifyDummy(ctx, r, first, password)
}

// reasonShed is the Result.Reason of a request whose verification, real
// or dummy, the verify queue shed.
const reasonShed = "password verification shed: the verify workers are overloaded"

// failEqually ends a failing request that verified nothing with
// equalCost's dummy verification and returns res, or a temporary failure
// if the queue shed the dummy: under overload a known user's wrong
// password is a temporary failure (its own verification is shed), so an
// unknown user's must be one too, or the answer would tell them apart.
func (e *Engine) failEqually(ctx context.Context, r *request, w walk, password []byte, res Result) Result {
	if e.equalCost(ctx, r, w, password) {
		res.Status, res.Reason, res.Fields = StatusTempFail, reasonShed, nil
	}
	return res
}
