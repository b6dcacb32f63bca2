package schemes

import (
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// OTP (RFC 2289 S/KEY-style one-time passwords), §3 "OTP": the stored
// state is "<algo> <seq> <seed> <16 hex>". Verifying a plaintext password
// recomputes the state from the password and compares the printed form
// case-insensitively with the stored text, as Dovecot does (so extra spaces
// are a mismatch, not an error).

const (
	otpMaxSeed = 16
	// otpMaxSeq bounds the sequence authd generates (authd pw -r);
	// verification checks Limits.OTPMaxSequence instead.
	otpMaxSeq = 1 << 20
	otpGenSeq = 1024
)

type otpState struct {
	algo string
	seq  int
	seed string
}

// parseOTP reads the fields the way Dovecot's parser accepts them (pinned
// by doveadm pw -t observations in otp_test.go): the algorithm name exactly
// "md4", "md5" or "sha1" followed by one space or tab; decimal sequence;
// spaces; a seed of 1-16 letters and digits ended by a space; spaces; 16
// hex digits, spaces between them allowed. Anything after the hash is left
// to the comparison (which then fails).
func parseOTP(raw string) (otpState, error) {
	bad := func(why string) (otpState, error) {
		return otpState{}, fmt.Errorf("%w: invalid OTP data: %s", ErrMalformed, why)
	}
	i := strings.IndexAny(raw, " \t")
	if i < 0 {
		return bad("no fields")
	}
	st := otpState{algo: raw[:i]}
	switch st.algo {
	case "md4", "md5", "sha1":
	default:
		return bad("unknown algorithm")
	}
	rest := raw[i+1:]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	seq, err := strconv.ParseUint(rest[:j], 10, 31)
	if j == 0 || err != nil {
		return bad("bad sequence")
	}
	st.seq = int(seq)
	rest = rest[j:]
	if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return bad("bad sequence")
	}
	rest = strings.TrimLeft(rest, " \t")
	k := strings.IndexByte(rest, ' ')
	if k <= 0 || k > otpMaxSeed {
		return bad("bad seed")
	}
	for _, c := range []byte(rest[:k]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return bad("bad seed")
		}
	}
	st.seed = strings.ToLower(rest[:k])
	n := 0
	for _, c := range []byte(rest[k:]) {
		if n == 16 {
			break
		}
		switch {
		case c == ' ':
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			n++
		default:
			return bad("bad hash")
		}
	}
	if n < 16 {
		return bad("bad hash")
	}
	return st, nil
}

// otpFold folds a digest to 64 bits (RFC 2289 §6 and appendix A).
func otpFold(algo string, d []byte) [8]byte {
	var r [8]byte
	if algo == "sha1" {
		// RFC 2289 appendix A: XOR the five words and store them
		// little-endian ("byte-swapped").
		for i := 0; i < 4; i++ {
			r[3-i] = d[i] ^ d[8+i] ^ d[16+i]
			r[7-i] = d[4+i] ^ d[12+i]
		}
		return r
	}
	for i := 0; i < 8; i++ {
		r[i] = d[i] ^ d[8+i]
	}
	return r
}

func otpDigest(algo string, b []byte) []byte {
	switch algo {
	case "md4":
		return md4Sum(b)
	case "md5":
		d := md5.Sum(b)
		return d[:]
	}
	d := sha1.Sum(b)
	return d[:]
}

// otpCompute runs the RFC 2289 chain: fold(H(seed || pass)), then seq
// more times fold(H(x)).
func otpCompute(st otpState, pw []byte) [8]byte {
	in := make([]byte, 0, len(st.seed)+len(pw))
	in = append(append(in, st.seed...), pw...)
	x := otpFold(st.algo, otpDigest(st.algo, in))
	clear(in)
	for i := 0; i < st.seq; i++ {
		x = otpFold(st.algo, otpDigest(st.algo, x[:]))
	}
	return x
}

func otpFormat(st otpState, x [8]byte) string {
	return st.algo + " " + strconv.Itoa(st.seq) + " " + st.seed + " " + hex.EncodeToString(x[:])
}

func verifyOTP(c call, raw string, pw []byte, _ string) (bool, error) {
	st, err := parseOTP(raw)
	if err != nil {
		return false, err
	}
	// Every step of the sequence is one hash: the stored value sets the
	// work (up to 2^31).
	if err := c.within(budgetOTP, bound{"sequence", uint64(st.seq), uint64(c.limits().OTPMaxSequence)}); err != nil {
		return false, err
	}
	if err := c.begin(budgetOTP); err != nil {
		return false, err
	}
	return ctEqual(strings.ToLower(raw), []byte(otpFormat(st, otpCompute(st, pw)))), nil
}

// generateOTP writes sha1, sequence 1024 (or rounds) and a random 16-hex
// digit seed, as doveadm pw does.
func generateOTP(pw []byte, _ string, rounds int) (string, error) {
	st := otpState{algo: "sha1", seq: otpGenSeq, seed: hex.EncodeToString(randomBytes(8))}
	if rounds != 0 {
		if rounds > otpMaxSeq {
			return "", fmt.Errorf("schemes: OTP sequence must be at most %d", otpMaxSeq)
		}
		st.seq = rounds
	}
	return otpFormat(st, otpCompute(st, pw)), nil
}
