package cache

import (
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

// RememberPassword records that password verified against e, the entry
// cached under key: later, PasswordMatches(key, e', password) can skip the
// scheme while the entry's password stays the same. Only a keyed
// fingerprint is kept, never the password. It does nothing when
// Options.Fingerprint is off, when e is negative or nil, or when the cached
// entry no longer has e's Scheme and Data. Call it only after a real
// scheme verification succeeded.
func (c *Cache) RememberPassword(key string, e *Entry, password []byte) {
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

// ForgetPassword drops the fingerprint remembered under key, so that the
// password that last verified no longer vouches for anything (the backend
// has since refused the account). The entry itself stays.
func (c *Cache) ForgetPassword(key string) {
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

// PasswordMatches reports whether password is the one last remembered for
// the entry under key, and that entry still holds e's Scheme and Data.
// The comparison is constant-time. It is false when fingerprints are off,
// nothing was remembered, or the password changed since.
//
// A match vouches only for the password: whether the entry is fresh, and
// all other policy, remain the caller's to check.
func (c *Cache) PasswordMatches(key string, e *Entry, password []byte) bool {
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

// MarkResult records whether the last password check against e, the
// entry cached under key, succeeded (Dovecot's node->last_success). It
// does nothing if the cached entry no longer has e's Scheme and Data.
// A failed check does not drop the fingerprint: a wrong password says
// nothing about the right one.
func (c *Cache) MarkResult(key string, e *Entry, success bool) {
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

// LastSucceeded reports whether the last password check recorded with
// MarkResult for the entry under key succeeded. A new entry, or one whose
// password changed, starts with false.
func (c *Cache) LastSucceeded(key string) bool {
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

// RecheckAfterMismatch applies Dovecot's password-change rule
// (passdb_cache_verify_plain; protocol.md §5.9) after the password did
// not match e, the entry cached under key. It returns true when the caller
// must treat the lookup as a miss and ask the backend (the password may
// have changed): the entry's last check succeeded, or the entry is older
// than the negative TTL (so with NegativeTTL 0, always), or the entry has
// changed or gone meanwhile. Otherwise the mismatch is final: a wrong
// password. Either way the entry's last check is now recorded as failed,
// so a run of wrong passwords costs at most one backend lookup.
func (c *Cache) RecheckAfterMismatch(key string, e *Entry) bool {
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
