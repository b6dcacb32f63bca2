package ldap

import (
	"errors"
	"fmt"
)

// This file is the small BER (X.690) layer of the lookup path (mux.go):
// encoding appends to one byte slice, decoding walks a received message
// in place. go-ldap's asn1-ber builds a tree of packets with descriptions
// for every element, ≈390 allocations per search round trip, which was
// the larger part of authd's CPU per LDAP lookup (docs/performance.md);
// here a search request costs no allocation beyond its buffer and a
// result entry one string per value. Only what LDAP (RFC 4511) uses is
// supported: tag numbers below 31 and definite lengths.

// BER identifier octets used by LDAP.
const (
	berUniversal   = 0x00
	berApplication = 0x40
	berContext     = 0x80
	berConstructed = 0x20

	tagBoolean    = 0x01
	tagInteger    = 0x02
	tagOctets     = 0x04
	tagEnumerated = 0x0a
	tagSequence   = berConstructed | 0x10
	tagSet        = berConstructed | 0x11
)

// berWriter appends BER elements to b. Constructed elements are opened
// with begin and closed with end, which fills in the length; nesting is
// tracked on a stack so callers never compute lengths.
type berWriter struct {
	b     []byte
	stack []int // content start of each open element
}

// begin opens a constructed element with identifier octet tag.
func (w *berWriter) begin(tag byte) {
	// One length octet is reserved; end widens it when the content turns
	// out to be 128 bytes or more.
	w.b = append(w.b, tag, 0)
	w.stack = append(w.stack, len(w.b))
}

// end closes the innermost open element, writing its length in the
// shortest form (as go-ldap and OpenLDAP do).
func (w *berWriter) end() {
	start := w.stack[len(w.stack)-1]
	w.stack = w.stack[:len(w.stack)-1]
	n := len(w.b) - start
	if n < 0x80 {
		w.b[start-1] = byte(n)
		return
	}
	extra := 0
	for v := n; v > 0; v >>= 8 {
		extra++
	}
	w.b = append(w.b, make([]byte, extra)...)
	copy(w.b[start+extra:], w.b[start:start+n])
	w.b[start-1] = 0x80 | byte(extra)
	for i := extra - 1; i >= 0; i-- {
		w.b[start+i] = byte(n)
		n >>= 8
	}
}

// header appends an identifier and a definite length.
func (w *berWriter) header(tag byte, n int) {
	if n < 0x80 {
		w.b = append(w.b, tag, byte(n))
		return
	}
	extra := 0
	for v := n; v > 0; v >>= 8 {
		extra++
	}
	w.b = append(w.b, tag, 0x80|byte(extra))
	for i := extra - 1; i >= 0; i-- {
		w.b = append(w.b, byte(n>>(8*i)))
	}
}

// octets appends a primitive element whose content is s.
func (w *berWriter) octets(tag byte, s string) {
	w.header(tag, len(s))
	w.b = append(w.b, s...)
}

// integer appends a primitive INTEGER or ENUMERATED in the minimal two's
// complement form.
func (w *berWriter) integer(tag byte, v int64) {
	n := 1
	for n < 8 && (v>>(8*n-1) != 0 && v>>(8*n-1) != -1) {
		n++
	}
	w.b = append(w.b, tag, byte(n))
	for i := n - 1; i >= 0; i-- {
		w.b = append(w.b, byte(v>>(8*i)))
	}
}

// boolean appends a BOOLEAN; true is encoded as 1, as go-ldap does (any
// non-zero octet is true in BER).
func (w *berWriter) boolean(tag byte, v bool) {
	b := byte(0)
	if v {
		b = 1
	}
	w.b = append(w.b, tag, 1, b)
}

// maxBERLength bounds any decoded length, far above the largest message
// read (maxMessage) and below 2³¹.
const maxBERLength = 1 << 30

// errBER reports a malformed element in a server's message.
var errBER = errors.New("malformed BER")

// berReader walks the elements of one received message without copying.
type berReader struct {
	b []byte
}

// next returns the next element's identifier octet and content and
// advances past it.
func (r *berReader) next() (tag byte, content []byte, err error) {
	if len(r.b) < 2 {
		return 0, nil, fmt.Errorf("%w: element truncated", errBER)
	}
	tag = r.b[0]
	if tag&0x1f == 0x1f {
		return 0, nil, fmt.Errorf("%w: multi-octet tag", errBER)
	}
	n, hl, err := berLength(r.b[1:])
	if err != nil {
		return 0, nil, err
	}
	body := r.b[1+hl:]
	if n > len(body) {
		return 0, nil, fmt.Errorf("%w: element longer than its container", errBER)
	}
	r.b = body[n:]
	return tag, body[:n], nil
}

// expect is next with a required identifier.
func (r *berReader) expect(want byte) ([]byte, error) {
	tag, c, err := r.next()
	if err != nil {
		return nil, err
	}
	if tag != want {
		return nil, fmt.Errorf("%w: tag 0x%02x where 0x%02x was expected", errBER, tag, want)
	}
	return c, nil
}

func (r *berReader) empty() bool { return len(r.b) == 0 }

// berLength decodes a definite length at the start of b: the length and
// how many octets it took.
func berLength(b []byte) (n, size int, err error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("%w: length missing", errBER)
	}
	if b[0] < 0x80 {
		return int(b[0]), 1, nil
	}
	k := int(b[0] & 0x7f)
	if k == 0 {
		return 0, 0, fmt.Errorf("%w: indefinite length", errBER)
	}
	if k > 4 || k >= len(b) {
		return 0, 0, fmt.Errorf("%w: length of %d octets", errBER, k)
	}
	// Decoded as uint64 and bounded so that it stays a positive int on
	// 32-bit platforms too: a hostile length must not wrap negative.
	var v uint64
	for _, c := range b[1 : 1+k] {
		v = v<<8 | uint64(c)
	}
	if v > maxBERLength {
		return 0, 0, fmt.Errorf("%w: length %d", errBER, v)
	}
	return int(v), 1 + k, nil
}

// berInt decodes the content of an INTEGER or ENUMERATED of up to 8
// octets.
func berInt(c []byte) (int64, error) {
	if len(c) == 0 || len(c) > 8 {
		return 0, fmt.Errorf("%w: integer of %d octets", errBER, len(c))
	}
	v := int64(int8(c[0]))
	for _, b := range c[1:] {
		v = v<<8 | int64(b)
	}
	return v, nil
}
