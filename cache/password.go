package cache

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// The password methods take the *Entry the caller checked the password
// against (from Lookup, or the answer of Do or the backend), not just the
// key: the scheme check runs outside any lock and can take a bcrypt's
// time, during which another request may Store a new password under the
// same key. A result about the old password must not be pinned on the
// new one, so each method acts only while the cached entry still has the
// same Scheme and Data as e.

// macer is a keyed HMAC state with a scratch buffer, pooled so that a
// fingerprint costs no allocation.
type macer struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// mac computes HMAC-SHA-256(fpKey, len(key) || key || password). The
// length prefix keeps (key, password) pairs unambiguous. The fingerprint
// covers the key so that it only vouches for this entry.
func (c *Cache) mac(key string, password []byte) [sha256.Size]byte {
	m, _ := c.macs.Get().(*macer)
	if m == nil {
		m = &macer{h: hmac.New(sha256.New, c.fpKey[:])}
	}
	out := m.mac(key, password)
	c.macs.Put(m)
	return out
}

// mac computes the fingerprint with m's state and wipes everything that
// held the password before m can be reused.
func (m *macer) mac(key string, password []byte) [sha256.Size]byte {
	m.buf = binary.BigEndian.AppendUint32(m.buf[:0], uint32(len(key)))
	m.buf = append(m.buf, key...)
	m.buf = append(m.buf, password...)
	m.h.Write(m.buf)
	out := [sha256.Size]byte(m.h.Sum(m.sum[:0]))
	// Wipe what held the password before the state goes back to the pool:
	// Reset restores the keyed initial state, and the scratch buffer is
	// zeroed (clear keeps its capacity for the next use).
	m.h.Reset()
	clear(m.buf)
	return out
}

// rememberPassword records that password verified against e, the entry
// cached under key: later, passwordMatches(key, e', password) can skip the
// scheme while the entry's password stays the same. Only a keyed
// fingerprint is kept, never the password. It does nothing when
// Options.Fingerprint is off, when e is negative or nil, or when the cached
// entry no longer has e's Scheme and Data. Call it only after a real
// scheme verification succeeded.
func (c *Cache) rememberPassword(key string, e *Entry, password []byte) {
	if c == nil || !c.fingerprint || e == nil || e.Negative {
		return
	}
	fp := c.mac(key, password)
	s := c.shardOf(key)
	s.mu.Lock()
	if n := s.m[key]; n != nil && samePassword(&n.Entry, e) {
		n.fp, n.hasFP = fp, true
	}
	s.mu.Unlock()
}

// forgetPassword drops the fingerprint remembered under key, so that the
// password that last verified no longer vouches for anything (the backend
// has since refused the account). The entry itself stays.
func (c *Cache) forgetPassword(key string) {
	if c == nil {
		return
	}
	s := c.shardOf(key)
	s.mu.Lock()
	if n := s.m[key]; n != nil {
		n.fp, n.hasFP = [sha256.Size]byte{}, false
	}
	s.mu.Unlock()
}

// passwordMatches reports whether password is the one last remembered for
// the entry under key, and that entry still holds e's Scheme and Data.
// The comparison is constant-time. It is false when fingerprints are off,
// nothing was remembered, or the password changed since.
//
// A match vouches only for the password: whether the entry is fresh, and
// all other policy, remain the caller's to check.
func (c *Cache) passwordMatches(key string, e *Entry, password []byte) bool {
	if c == nil || !c.fingerprint || e == nil || e.Negative {
		return false
	}
	s := c.shardOf(key)
	s.mu.Lock()
	n := s.m[key]
	ok := n != nil && n.hasFP && samePassword(&n.Entry, e)
	var want [sha256.Size]byte
	if ok {
		want = n.fp
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	// The HMAC runs outside the lock. If a Store changes the password
	// meanwhile, the answer is still right about e, the entry the caller
	// asked about.
	got := c.mac(key, password)
	return hmac.Equal(got[:], want[:])
}

// markResult records whether the last password check against e, the
// entry cached under key, succeeded (Dovecot's node->last_success). It
// does nothing if the cached entry no longer has e's Scheme and Data.
// A failed check does not drop the fingerprint: a wrong password says
// nothing about the right one.
func (c *Cache) markResult(key string, e *Entry, success bool) {
	if c == nil || e == nil {
		return
	}
	s := c.shardOf(key)
	s.mu.Lock()
	if n := s.m[key]; n != nil && samePassword(&n.Entry, e) {
		n.lastSuccess = success
	}
	s.mu.Unlock()
}

// lastSucceeded reports whether the last password check recorded with
// markResult for the entry under key succeeded. A new entry, or one whose
// password changed, starts with false.
func (c *Cache) lastSucceeded(key string) bool {
	if c == nil {
		return false
	}
	s := c.shardOf(key)
	s.mu.Lock()
	n := s.m[key]
	ok := n != nil && n.lastSuccess
	s.mu.Unlock()
	return ok
}

// recheckAfterMismatch applies Dovecot's password-change rule
// (passdb_cache_verify_plain; docs/protocol.md §5.9) after the password did
// not match e, the entry cached under key. It returns true when the caller
// must treat the lookup as a miss and ask the backend (the password may
// have changed): the entry's last check succeeded, or the entry is older
// than the negative TTL (so with NegativeTTL 0, always), or the entry has
// changed or gone meanwhile. Otherwise the mismatch is final: a wrong
// password. Either way the entry's last check is now recorded as failed,
// so a run of wrong passwords costs at most one backend lookup.
func (c *Cache) recheckAfterMismatch(key string, e *Entry) bool {
	if c == nil || e == nil {
		return true
	}
	now := c.clock()
	s := c.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.m[key]
	if n == nil || !samePassword(&n.Entry, e) {
		return true
	}
	recheck := n.lastSuccess || now-n.created >= c.negTTL
	n.lastSuccess = false
	return recheck
}

// Verdict is the outcome of CheckPassword.
type Verdict uint8

const (
	// Right: the password is right for the entry.
	Right Verdict = iota + 1
	// Wrong: the password is wrong, and that is final.
	Wrong
	// Recheck: the password did not match an entry that came from the
	// cache, and it may have changed since: ask the backend again (Get
	// with force) and check against its answer.
	Recheck
)

// CheckPassword is the cache's password rules around one check of
// password against e, the entry cached under key (fromCache: e was served
// from the cache rather than fetched from the backend for this request).
// verify is the scheme's check (SHA512-CRYPT, bcrypt …); an error from it
// ("could not tell") is returned as it is, and nothing is recorded.
//
// The rules: a password whose fingerprint was remembered for this entry is
// Right without running verify; a right password is remembered; a wrong
// one against a cached entry is Recheck when Dovecot's password-change
// rule says the backend must be asked (see recheckAfterMismatch), else
// Wrong; every result is recorded as the entry's last check.
//
// On a nil cache, or with a nil e, CheckPassword only runs verify.
func (c *Cache) CheckPassword(key string, e *Entry, fromCache bool, password []byte, verify func() (bool, error)) (Verdict, error) {
	if c != nil && e != nil && c.passwordMatches(key, e, password) {
		c.markResult(key, e, true)
		return Right, nil
	}
	ok, err := verify()
	switch {
	case err != nil:
		return 0, err
	case c == nil || e == nil:
	case !ok && fromCache && c.recheckAfterMismatch(key, e):
		return Recheck, nil
	default:
		c.markResult(key, e, ok)
		if ok {
			c.rememberPassword(key, e, password)
		}
	}
	if ok {
		return Right, nil
	}
	return Wrong, nil
}

// RemoteCheck is the answer of a backend that checks passwords itself
// (an LDAP bind, PAM), as CheckRemote needs it.
type RemoteCheck struct {
	// Entry holds the fields the backend returned; Negative for an
	// unknown user, Refusal for a refused account.
	Entry Entry
	// Right: the backend accepted the password.
	Right bool
}

// CheckRemote is the cache's rules around a backend that checks passwords
// itself, for which there is no hash to keep: the entry under key holds
// the fields, and the fingerprint of the password that last verified.
//
//   - A fresh positive entry whose fingerprint matches password answers
//     Right without asking the backend (fromCache).
//   - Otherwise check asks the backend; its answer is stored (a refusal is
//     not, and forgets the fingerprint: the password that used to work
//     must not let the account in during a later outage), and a right
//     password's fingerprint is remembered.
//   - When check could not tell, an entry (fresh or expired) whose
//     fingerprint matches stands in for it: Right, fromCache, and the
//     stale counter counts it. Otherwise check's error is returned.
//
// As in Dovecot, an entry lets an old password in until it expires or is
// flushed. On a nil cache CheckRemote only runs check.
func (c *Cache) CheckRemote(ctx context.Context, key string, password []byte, check func() (RemoteCheck, error)) (rc RemoteCheck, fromCache bool, err error) {
	if c == nil {
		rc, err = check()
		return rc, false, err
	}
	old, fresh, found := c.Lookup(key)
	var m mark
	if c.sh.store != nil {
		old, fresh, found, m = c.checkRemoteL1(ctx, key, old, fresh, found)
	}
	if found && fresh && !old.Negative && c.passwordMatches(key, old, password) {
		c.markResult(key, old, true)
		return RemoteCheck{Entry: *old, Right: true}, true, nil
	}
	if found && fresh && old.Negative {
		return RemoteCheck{Entry: Entry{Negative: true}}, true, nil
	}
	rc, err = check()
	switch {
	case err != nil:
		if found && !old.Negative && c.passwordMatches(key, old, password) {
			c.noteStale()
			return RemoteCheck{Entry: *old, Right: true}, true, nil
		}
		return RemoteCheck{}, false, err
	case rc.Entry.Refusal != 0:
		c.forgetPassword(key)
		return rc, false, nil
	}
	c.store(key, &rc.Entry, storeOpts{mark: m})
	if !rc.Entry.Negative {
		c.markResult(key, &rc.Entry, rc.Right)
		if rc.Right {
			c.rememberPassword(key, &rc.Entry, password)
		}
	}
	return rc, false, nil
}

// checkRemoteL1 applies the shared store's generation to CheckRemote's
// L1 entry (see checkL1), and returns the mark a new answer is stored
// under (zero when the store cannot tell the generation). Only L1 is
// used: a password check's fingerprint means nothing to another process.
func (c *Cache) checkRemoteL1(ctx context.Context, key string, old *Entry, fresh, found bool) (*Entry, bool, bool, mark) {
	user, ok := userOfKey(key)
	if !ok {
		return old, fresh, found, mark{}
	}
	if found && fresh {
		e, created, m, _, _ := c.peek(key)
		if e == old {
			st, now, _ := c.checkL1(ctx, key, user, e, created, m)
			switch st {
			case l1Usable:
				return old, true, true, now
			case l1Miss:
				return old, false, true, mark{}
			case l1Dropped:
				return nil, false, false, now
			}
		}
	}
	g, err := c.sh.store.Generation(ctx, user)
	if err != nil {
		c.sh.errs.Add(1)
		return old, fresh, found, mark{}
	}
	return old, fresh, found, markOf(g)
}
