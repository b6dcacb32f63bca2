package cache

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
	"time"
)

func TestFingerprint(t *testing.T) {
	const key = "P1\talice@example.com"
	pw := []byte("correct horse")
	tests := []struct {
		name string
		// after runs between RememberPassword(pw) and PasswordMatches.
		after func(c *Cache, clk *clock)
		try   []byte
		want  bool
	}{
		{"same password", func(*Cache, *clock) {}, pw, true},
		{"other password", func(*Cache, *clock) {}, []byte("correct horsE"), false},
		{"prefix of password", func(*Cache, *clock) {}, pw[:len(pw)-1], false},
		{"empty password", func(*Cache, *clock) {}, nil, false},
		{"expired entry keeps it", func(c *Cache, clk *clock) { clk.Advance(48 * time.Hour) }, pw, true},
		{"same password stored again keeps it", func(c *Cache, _ *clock) {
			c.Store(key, pos("hash1", "uid=2")) // fields changed, password did not
		}, pw, true},
		{"ForgetPassword drops it", func(c *Cache, _ *clock) { c.forgetPassword(key) }, pw, false},
		{"ForgetPassword of another key keeps it", func(c *Cache, _ *clock) { c.forgetPassword(key + "x") }, pw, true},
		{"password changed drops it", func(c *Cache, _ *clock) {
			c.Store(key, pos("hash2"))
		}, pw, false},
		{"scheme changed drops it", func(c *Cache, _ *clock) {
			e := pos("hash1")
			e.Scheme = "BLF-CRYPT"
			c.Store(key, e)
		}, pw, false},
		{"changed and changed back stays dropped", func(c *Cache, _ *clock) {
			c.Store(key, pos("hash2"))
			c.Store(key, pos("hash1"))
		}, pw, false},
		{"negative store drops it", func(c *Cache, _ *clock) {
			c.Store(key, Entry{Negative: true})
			c.Store(key, pos("hash1"))
		}, pw, false},
		{"flush drops it", func(c *Cache, _ *clock) {
			c.Flush([]string{"alice@example.com"})
			c.Store(key, pos("hash1"))
		}, pw, false},
		{"failed check keeps it", func(c *Cache, _ *clock) {
			e, _, _ := c.Lookup(key)
			c.markResult(key, e, false)
		}, pw, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			c := testCache(t, clk, Options{Fingerprint: true, NegativeTTL: time.Hour})
			c.Store(key, pos("hash1"))
			e, _, _ := c.Lookup(key)
			if c.passwordMatches(key, e, pw) {
				t.Fatal("matches before anything was remembered")
			}
			c.rememberPassword(key, e, pw)
			tc.after(c, clk)
			cur, _, found := c.Lookup(key)
			if !found {
				t.Fatal("entry gone")
			}
			if got := c.passwordMatches(key, cur, tc.try); got != tc.want {
				t.Errorf("PasswordMatches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFingerprintNotPinnedOnNewPassword(t *testing.T) {
	// The scheme check runs unlocked: the password may change under it.
	const key = "P1\tbob"
	clk := newClock()
	c := testCache(t, clk, Options{Fingerprint: true})
	c.Store(key, pos("old-hash"))
	old, _, _ := c.Lookup(key)
	c.Store(key, pos("new-hash")) // changed while the old hash was being checked
	c.rememberPassword(key, old, []byte("old password"))
	c.markResult(key, old, true)
	cur, _, _ := c.Lookup(key)
	if c.passwordMatches(key, cur, []byte("old password")) {
		t.Error("the old password's fingerprint was pinned on the new entry")
	}
	if c.lastSucceeded(key) {
		t.Error("the old password's result was pinned on the new entry")
	}
	// Asking about the old entry after the change: no.
	if c.passwordMatches(key, old, []byte("old password")) {
		t.Error("matched against a replaced entry")
	}
	// The entry the backend returned (a copy, not the cached pointer) works.
	fromBackend := pos("new-hash")
	c.rememberPassword(key, &fromBackend, []byte("new password"))
	if !c.passwordMatches(key, cur, []byte("new password")) {
		t.Error("fingerprint of the backend's copy not recorded")
	}
}

func TestFingerprintOffAndNegative(t *testing.T) {
	clk := newClock()
	c := testCache(t, clk, Options{NegativeTTL: time.Hour})
	e := pos("h")
	c.Store("P1\ta", e)
	c.rememberPassword("P1\ta", &e, []byte("pw"))
	if c.passwordMatches("P1\ta", &e, []byte("pw")) {
		t.Error("fingerprint kept with Fingerprint off")
	}
	c = testCache(t, clk, Options{NegativeTTL: time.Hour, Fingerprint: true})
	n := Entry{Negative: true}
	c.Store("P1\tb", n)
	c.rememberPassword("P1\tb", &n, []byte("pw"))
	if c.passwordMatches("P1\tb", &n, []byte("pw")) {
		t.Error("fingerprint on a negative entry")
	}
	c.rememberPassword("P1\tmissing", &e, []byte("pw"))
	if c.passwordMatches("P1\tmissing", &e, []byte("pw")) {
		t.Error("fingerprint without an entry")
	}
}

func TestFingerprintPerProcessKey(t *testing.T) {
	clk := newClock()
	a := testCache(t, clk, Options{Fingerprint: true})
	b := testCache(t, clk, Options{Fingerprint: true})
	ma := a.mac("P1\talice", []byte("pw"))
	mb := b.mac("P1\talice", []byte("pw"))
	if ma == mb {
		t.Error("two caches gave the same MAC: the key is not per process")
	}
	if ma != a.mac("P1\talice", []byte("pw")) {
		t.Error("MAC not deterministic within one cache")
	}
	// The length prefix keeps key and password apart.
	if a.mac("P1\talice", []byte("xpw")) == a.mac("P1\talicex", []byte("pw")) {
		t.Error("(key, password) boundary is ambiguous")
	}
	// The state that goes back to the pool is wiped: no password bytes
	// left in its buffer. (Checked on the macer itself: under -race the
	// pool drops Puts at random, so reading it back proves nothing.)
	m := &macer{h: hmac.New(sha256.New, a.fpKey[:])}
	if m.mac("P1\tk", []byte("SECRETSECRET")) != a.mac("P1\tk", []byte("SECRETSECRET")) {
		t.Error("a fresh macer and the pool's disagree")
	}
	if len(m.buf) == 0 || bytes.Contains(m.buf[:cap(m.buf)], []byte("SECRET")) {
		t.Errorf("password left in the macer's buffer (%d bytes used)", len(m.buf))
	}
}

func TestFingerprintConstantTime(t *testing.T) {
	// The comparison is hmac.Equal (crypto/subtle); this pins that the
	// stored MAC is compared whole and not by a prefix or early exit that a
	// refactor could introduce: a MAC differing only in the last byte must
	// fail, as must one differing only in the first.
	clk := newClock()
	c := testCache(t, clk, Options{Fingerprint: true})
	e := pos("h")
	c.Store("P1\ta", e)
	c.rememberPassword("P1\ta", &e, []byte("pw"))
	s := c.shardOf("P1\ta")
	for _, i := range []int{0, 31} {
		s.mu.Lock()
		s.m["P1\ta"].fp[i] ^= 1
		s.mu.Unlock()
		if c.passwordMatches("P1\ta", &e, []byte("pw")) {
			t.Errorf("MAC with byte %d flipped still matches", i)
		}
		s.mu.Lock()
		s.m["P1\ta"].fp[i] ^= 1
		s.mu.Unlock()
	}
	if !c.passwordMatches("P1\ta", &e, []byte("pw")) {
		t.Error("restored MAC does not match")
	}
}

func TestPasswordChangeRule(t *testing.T) {
	// Dovecot's passdb_cache_verify_plain: after a mismatch, go back to the
	// backend when the last check succeeded or the entry is older than the
	// negative TTL; either way the entry now records a failure.
	const key = "P1\tcarol"
	const negTTL = 10 * time.Minute
	tests := []struct {
		name        string
		mark        []bool // MarkResult calls before the mismatch
		age         time.Duration
		negTTL      time.Duration
		wantLast    bool
		wantRecheck bool
	}{
		{"new entry", nil, 0, negTTL, false, false},
		{"last succeeded", []bool{true}, 0, negTTL, true, true},
		{"last failed", []bool{true, false}, 0, negTTL, false, false},
		{"older than negative ttl", []bool{false}, negTTL, negTTL, false, true},
		{"younger than negative ttl", []bool{false}, negTTL - time.Second, negTTL, false, false},
		{"negative ttl 0 always rechecks", nil, 0, 0, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			c := testCache(t, clk, Options{TTL: time.Hour, NegativeTTL: tc.negTTL})
			c.Store(key, pos("h"))
			e, _, _ := c.Lookup(key)
			for _, m := range tc.mark {
				c.markResult(key, e, m)
			}
			clk.Advance(tc.age)
			if got := c.lastSucceeded(key); got != tc.wantLast {
				t.Errorf("LastSucceeded = %v, want %v", got, tc.wantLast)
			}
			if got := c.recheckAfterMismatch(key, e); got != tc.wantRecheck {
				t.Errorf("RecheckAfterMismatch = %v, want %v", got, tc.wantRecheck)
			}
			if c.lastSucceeded(key) {
				t.Error("LastSucceeded still true after a mismatch")
			}
			// A second wrong password right away is final (unless the
			// entry is past the negative TTL).
			if got := c.recheckAfterMismatch(key, e); got != (tc.age >= tc.negTTL) {
				t.Errorf("second RecheckAfterMismatch = %v", got)
			}
		})
	}
}

func TestLastSucceededAcrossStores(t *testing.T) {
	const key = "P1\tdave"
	clk := newClock()
	c := testCache(t, clk, Options{})
	c.Store(key, pos("h1"))
	e, _, _ := c.Lookup(key)
	c.markResult(key, e, true)
	c.Store(key, pos("h1", "uid=3")) // same password, new fields
	if !c.lastSucceeded(key) {
		t.Error("same password: LastSucceeded lost")
	}
	c.Store(key, pos("h2")) // password changed
	if c.lastSucceeded(key) {
		t.Error("password changed: LastSucceeded kept")
	}
	e2, _, _ := c.Lookup(key)
	if !c.recheckAfterMismatch(key, e) {
		t.Error("mismatch against a replaced entry must go to the backend")
	}
	if c.lastSucceeded(key) {
		t.Error("stale RecheckAfterMismatch changed the new entry")
	}
	c.markResult(key, e2, true)
	if !c.lastSucceeded(key) {
		t.Error("MarkResult on the current entry ignored")
	}
	if c.lastSucceeded("P1\tnobody") {
		t.Error("LastSucceeded for a missing key")
	}
}
