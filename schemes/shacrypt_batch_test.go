package schemes

import (
	"context"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestBlock8MatchesSHA512: every lane of block8 computes what
// crypto/sha512 does for one-block messages, which also checks the
// derived constants.
func TestBlock8MatchesSHA512(t *testing.T) {
	if !haveBlock8 {
		t.Skip("no AVX-512 on this CPU: the batch path is never taken")
	}
	k, iv := sha512Lanes()
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		var msgs [8][]byte
		var w [16][8]uint64
		for l := range 8 {
			m := make([]byte, rng.IntN(112))
			for i := range m {
				m[i] = byte(rng.Uint32())
			}
			msgs[l] = m
			var blk [128]byte
			n := copy(blk[:], m)
			blk[n] = 0x80
			binary.BigEndian.PutUint64(blk[120:], uint64(n)*8)
			for i := range 16 {
				w[i][l] = binary.BigEndian.Uint64(blk[i*8:])
			}
		}
		state := *iv
		block8(&state, &w, k)
		for l := range 8 {
			var got [64]byte
			for i := range 8 {
				binary.BigEndian.PutUint64(got[i*8:], state[i][l])
			}
			if want := sha512.Sum512(msgs[l]); got != want {
				t.Fatalf("trial %d lane %d (%d bytes): block8 %x, sha512 %x", trial, l, len(msgs[l]), got[:8], want[:8])
			}
		}
	}
}

// TestVerifyBatchMatchesVerify: batches of every size, with right and
// wrong passwords of every batchable length, default and custom rounds
// mixed, get the answers Verify gives; values Batchable must leave to
// Verify are refused.
func TestVerifyBatchMatchesVerify(t *testing.T) {
	v := NewVerifier(Limits{})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	for size := 1; size <= 2*BatchMax+1; size++ {
		var jobs []*BatchJob
		var want []bool
		for i := range size {
			pw := make([]byte, rng.IntN(batchMaxPw+1))
			for k := range pw {
				pw[k] = byte('!' + rng.IntN(90))
			}
			rounds := 0
			if i%5 == 4 {
				rounds = 1000 + i
			}
			stored, err := generateSHACrypt(true, pw, rounds)
			if err != nil {
				t.Fatal(err)
			}
			try := pw
			if rng.IntN(2) == 0 {
				try = append([]byte("x"), pw...)[:len(pw)]
				if len(pw) == 0 {
					try = []byte("x")
				}
			}
			scheme := []string{"SHA512-CRYPT", "CRYPT", "sha512-crypt"}[i%3]
			ok, err := v.Verify(ctx, scheme, stored, try, "")
			if err != nil {
				t.Fatal(err)
			}
			j, batchable := v.Batchable(ctx, scheme, stored, try)
			if !batchable {
				if haveBlock8 {
					t.Fatalf("%s %q: not batchable", scheme, stored)
				}
				continue
			}
			jobs, want = append(jobs, j), append(want, ok)
		}
		VerifyBatch(jobs)
		for i, j := range jobs {
			if j.Match() != want[i] {
				t.Errorf("batch of %d, job %d: Match %v, Verify said %v", size, i, j.Match(), want[i])
			}
		}
	}
}

// TestBatchableRefuses: what the batch path does not handle goes to
// Verify, which then answers as it always did.
func TestBatchableRefuses(t *testing.T) {
	v := NewVerifier(Limits{SHACryptMaxRounds: 2000})
	ctx := context.Background()
	s6, _ := generateSHACrypt(true, []byte("pw"), 0)
	s5, _ := generateSHACrypt(false, []byte("pw"), 0)
	s6r, _ := generateSHACrypt(true, []byte("pw"), 1500)
	long := []byte("a password of more than fifteen bytes")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		ctx            context.Context
		scheme, stored string
		pw             []byte
	}{
		{ctx, "SHA256-CRYPT", s5, []byte("pw")},
		{ctx, "SHA512-CRYPT", s6, long},
		{ctx, "SHA512-CRYPT", s6, []byte("p\x00w")},
		{ctx, "SSHA512", s6, []byte("pw")},
		{ctx, "SHA512-CRYPT", "$6$rounds=999$salt$x", []byte("pw")},
		{ctx, "SHA512-CRYPT", "$6$rounds=5000$salt$x", []byte("pw")}, // over the limit of 2000
		{cancelled, "SHA512-CRYPT", s6, []byte("pw")},
	} {
		if _, ok := v.Batchable(tc.ctx, tc.scheme, tc.stored, tc.pw); ok {
			t.Errorf("%s %q %q: batchable", tc.scheme, tc.stored, tc.pw)
		}
	}
	if _, ok := v.Batchable(ctx, "SHA512-CRYPT", s6r, []byte("pw")); !ok && haveBlock8 {
		t.Error("custom rounds within the limit: not batchable")
	}
}

func BenchmarkVerifyBatch8(b *testing.B) {
	if !haveBlock8 {
		b.Skip("no AVX-512")
	}
	v := NewVerifier(Limits{})
	var jobs []*BatchJob
	for i := range BatchMax {
		pw := fmt.Appendf(nil, "pw%05d", i)
		stored, _ := generateSHACrypt(true, pw, 0)
		j, _ := v.Batchable(context.Background(), "SHA512-CRYPT", stored, pw)
		jobs = append(jobs, j)
	}
	b.ReportAllocs()
	for b.Loop() {
		VerifyBatch(jobs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*BatchMax), "ns/verify")
}

func BenchmarkLockStep(b *testing.B) {
	if !haveBlock8 {
		b.Skip("no AVX-512")
	}
	v := NewVerifier(Limits{})
	for _, n := range []int{1, 2, 3, 4, 8} {
		var jobs []*BatchJob
		for i := range n {
			pw := fmt.Appendf(nil, "pw%05d", i)
			stored, _ := generateSHACrypt(true, pw, 0)
			j, _ := v.Batchable(context.Background(), "SHA512-CRYPT", stored, pw)
			jobs = append(jobs, j)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				lockStep(jobs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/verify")
		})
	}
}
