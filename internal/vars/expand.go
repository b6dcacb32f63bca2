package vars

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strconv"
)

// ExpandError reports that Dovecot would consider an expansion failed
// (var_expand returning <= 0). Dovecot still produces output in that case
// (UNSUPPORTED_VARIABLE_x, or "" for a failed function), but callers such as
// default_fields/override_fields treat the lookup as failed.
type ExpandError struct {
	Unknown bool   // an unknown variable (Dovecot's 0) rather than an error (-1)
	Msg     string // Dovecot-like message
}

func (e *ExpandError) Error() string { return e.Msg }

// worse keeps the more severe of two expansion errors (error over unknown),
// and the first of equal severity, like Dovecot's final_ret.
func worse(a, b *ExpandError) *ExpandError {
	if a == nil {
		return b
	}
	if b != nil && a.Unknown && !b.Unknown {
		return b
	}
	return a
}

// Expand expands t for one request. escape (may be nil) is applied to each
// substituted value that Dovecot escapes (see the package comment), before
// the modifiers, never to literal text.
func (t *Template) Expand(c *Context, escape func(string) string) string {
	if t.v24 != nil {
		b, _ := t.v24.expand(nil, c, escape, t.policy)
		return string(b)
	}
	if len(t.nodes) == 1 && t.nodes[0].kind == nLit {
		return t.nodes[0].lit
	}
	if t.simple {
		// A stack buffer: the result string is the only allocation.
		var buf [256]byte
		b, _ := t.expandSimple(buf[:0], c, escape)
		return string(b)
	}
	b, _ := t.expand(make([]byte, 0, t.sizeHint), c, escape)
	return string(b)
}

// AppendExpand is Expand appending to dst.
func (t *Template) AppendExpand(dst []byte, c *Context, escape func(string) string) []byte {
	if t.v24 != nil {
		dst, _ = t.v24.expand(dst, c, escape, t.policy)
		return dst
	}
	if t.simple {
		dst, _ = t.expandSimple(dst, c, escape)
		return dst
	}
	dst, _ = t.expand(dst, c, escape)
	return dst
}

// ExpandChecked is Expand that also reports whether Dovecot would have
// treated the expansion as failed (unknown variable, bad hash arguments, a
// failing %{if}). The string is what Dovecot would have produced anyway.
func (t *Template) ExpandChecked(c *Context, escape func(string) string) (string, error) {
	var b []byte
	var err *ExpandError
	switch {
	case t.v24 != nil:
		b, err = t.v24.expand(nil, c, escape, t.policy)
	case t.simple:
		var buf [256]byte
		b, err = t.expandSimple(buf[:0], c, escape)
	default:
		b, err = t.expand(nil, c, escape)
	}
	if err != nil {
		return string(b), err
	}
	return string(b), nil
}

// expandSimple is expand for templates without hash or if expressions.
// Keeping it free of the recursion through those lets the compiler keep
// the caller's buffer on the stack.
func (t *Template) expandSimple(dst []byte, c *Context, esc func(string) string) ([]byte, *ExpandError) {
	var first *ExpandError
	for i := range t.nodes {
		n := &t.nodes[i]
		switch n.kind {
		case nLit:
			dst = append(dst, n.lit...)
		case nBad:
			dst = append(dst, n.lit...)
			first = worse(first, n.err)
		default:
			start := len(dst)
			dst = appendSimple(dst, n, c, esc)
			dst = n.applyModifiers(dst, start)
		}
	}
	return dst, first
}

func (t *Template) expand(dst []byte, c *Context, esc func(string) string) ([]byte, *ExpandError) {
	var first *ExpandError
	for i := range t.nodes {
		n := &t.nodes[i]
		switch n.kind {
		case nLit:
			dst = append(dst, n.lit...)
			continue
		case nBad:
			// Dovecot appends the failure text as is: no modifiers,
			// no offset or width.
			dst = append(dst, n.lit...)
			first = worse(first, n.err)
			continue
		}
		start := len(dst)
		var err *ExpandError
		dst, err = appendRaw(dst, n, c, esc)
		if err != nil {
			first = worse(first, err)
			continue
		}
		dst = n.applyModifiers(dst, start)
	}
	return dst, first
}

// appendRaw appends the value of a node before modifiers.
func appendRaw(dst []byte, n *node, c *Context, esc func(string) string) ([]byte, *ExpandError) {
	switch n.kind {
	case nBad:
		return append(dst, n.lit...), n.err
	case nHash:
		return appendHash(dst, n.hash, c, esc)
	case nIf:
		return appendIf(dst, n.cond, c, esc)
	}
	return appendSimple(dst, n, c, esc), nil
}

// appendSimple appends the value of a variable that cannot fail.
func appendSimple(dst []byte, n *node, c *Context, esc func(string) string) []byte {
	switch n.kind {
	case nVar:
		return c.appendValue(dst, n.id, esc)
	case nPercent:
		return append(dst, '%')
	case nPolicy:
		v := c.policyValue(n.pv)
		if esc != nil {
			v = esc(v)
		}
		return append(dst, v...)
	case nProc:
		pv := getProcessValues()
		switch n.proc {
		case procHostname:
			return append(dst, pv.hostname...)
		case procUID:
			return append(dst, pv.uid...)
		default:
			return append(dst, pv.gid...)
		}
	case nEnv:
		return append(dst, os.Getenv(n.lit)...)
	case nField:
		fl := c.Passdb
		switch {
		case n.userdb:
			fl = c.Userdb
		case n.oauth2:
			fl = c.OAuth2
		}
		v, ok := "", false
		if fl != nil {
			v, ok = fl.Lookup(n.lit)
		}
		if !ok {
			v = n.def
		}
		if esc != nil {
			v = esc(v)
		}
		return append(dst, v...)
	}
	return dst
}

// applyModifiers runs the modifiers left to right on dst[start:], then
// applies offset, width and zero padding (docs/protocol.md §5.6), all in place.
func (n *node) applyModifiers(dst []byte, start int) []byte {
	offset, width := n.offset, n.width
	for _, m := range n.mods[:n.nmods] {
		v := dst[start:]
		switch m {
		case 'L':
			for i, ch := range v {
				if ch >= 'A' && ch <= 'Z' {
					v[i] = ch + 'a' - 'A'
				}
			}
		case 'U':
			for i, ch := range v {
				if ch >= 'a' && ch <= 'z' {
					v[i] = ch - ('a' - 'A')
				}
			}
		case 'E':
			dst = escapeInPlace(dst, start)
		case 'X':
			// Decimal to hex (Dovecot's str_to_ullong): anything but
			// a plain unsigned 64-bit number counts as 0.
			dst = strconv.AppendUint(dst[:start], parseUint64(v), 16)
		case 'R':
			for i, j := 0, len(v)-1; i < j; i, j = i+1, j-1 {
				v[i], v[j] = v[j], v[i]
			}
		case 'H':
			// Dovecot's str_hash, modulo the width, padded to the
			// offset; both are consumed.
			h := strHash(v)
			if width != 0 {
				h %= uint32(width)
			}
			dst = appendHexPadded(dst[:start], uint64(h), offset)
			offset, width = 0, 0
		case 'N':
			// First 8 bytes of MD5 as a big-endian number, modulo
			// the width, printed as 32 bits, padded to the offset.
			sum := md5.Sum(v)
			x := binary.BigEndian.Uint64(sum[:8])
			if width != 0 {
				x %= uint64(int64(width))
			}
			dst = appendHexPadded(dst[:start], uint64(uint32(x)), offset)
			offset, width = 0, 0
		case 'M':
			sum := md5.Sum(v)
			dst = hex.AppendEncode(dst[:start], sum[:])
		case 'D':
			dst = ldapDNInPlace(dst, start)
		case 'T':
			end := len(dst)
			for end > start && isCSpace(dst[end-1]) {
				end--
			}
			dst = dst[:end]
		}
	}
	return n.applyOffsetWidth(dst, start, offset, width)
}

// applyOffsetWidth cuts dst[start:] to the offset and width, or pads it
// with zeros to the width (docs/protocol.md §5.6).
func (n *node) applyOffsetWidth(dst []byte, start, offset, width int) []byte {
	if offset == 0 && width == 0 {
		return dst
	}
	// Offset: positive skips bytes, negative keeps that many from the end.
	l := len(dst) - start
	from := 0
	if offset < 0 {
		if l > -offset {
			from = l + offset
		}
	} else {
		from = min(offset, l)
	}
	if from > 0 {
		copy(dst[start:], dst[start+from:])
		dst = dst[:len(dst)-from]
		l -= from
	}
	if width == 0 {
		return dst
	}
	if !n.zeroPad {
		// A negative width drops that many bytes from the end; if that
		// leaves less than nothing Dovecot's size_t cast keeps it all.
		w := width
		if w < 0 {
			w = l + w
			if w < 0 {
				return dst
			}
		}
		if w < l {
			dst = dst[:start+w]
		}
		return dst
	}
	// Zero padding pads to the width and never truncates.
	if pad := width - l; pad > 0 {
		for range pad {
			dst = append(dst, 0)
		}
		copy(dst[start+pad:], dst[start:start+l])
		for i := start; i < start+pad; i++ {
			dst[i] = '0'
		}
	}
	return dst
}

// strHash is Dovecot's str_hash (the ELF hash), which %H reduces.
func strHash(v []byte) uint32 {
	var h uint32
	for _, ch := range v {
		h = h<<4 + uint32(ch)
		if g := h & 0xf0000000; g != 0 {
			h ^= g >> 24
			h ^= g
		}
	}
	return h
}

func parseUint64(v []byte) uint64 {
	if len(v) == 0 {
		return 0
	}
	var x uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		d := uint64(c - '0')
		if x > (^uint64(0)-d)/10 {
			return 0
		}
		x = x*10 + d
	}
	return x
}

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func appendHexPadded(dst []byte, v uint64, pad int) []byte {
	var tmp [16]byte
	h := strconv.AppendUint(tmp[:0], v, 16)
	for i := len(h); i < pad; i++ {
		dst = append(dst, '0')
	}
	return append(dst, h...)
}

// escapeInPlace puts a backslash before each backslash, double quote and
// single quote in dst[start:] (the E modifier, Dovecot's str_escape).
func escapeInPlace(dst []byte, start int) []byte {
	extra := 0
	for _, c := range dst[start:] {
		if c == '\\' || c == '"' || c == '\'' {
			extra++
		}
	}
	if extra == 0 {
		return dst
	}
	old := len(dst)
	for range extra {
		dst = append(dst, 0)
	}
	w := len(dst)
	for r := old - 1; r >= start; r-- {
		c := dst[r]
		w--
		dst[w] = c
		if c == '\\' || c == '"' || c == '\'' {
			w--
			dst[w] = '\\'
		}
	}
	return dst
}

// ldapDNInPlace replaces every '.' by ",dc=" in dst[start:] (the D modifier).
func ldapDNInPlace(dst []byte, start int) []byte {
	dots := 0
	for _, c := range dst[start:] {
		if c == '.' {
			dots++
		}
	}
	if dots == 0 {
		return dst
	}
	old := len(dst)
	for range dots * 3 {
		dst = append(dst, 0)
	}
	w := len(dst)
	for r := old - 1; r >= start; r-- {
		c := dst[r]
		if c == '.' {
			w -= 4
			copy(dst[w:], ",dc=")
		} else {
			w--
			dst[w] = c
		}
	}
	return dst
}

// String returns the template's source text.
func (t *Template) String() string { return t.src }

// Static reports whether the template has no variables: only literal text
// and %% (its expansion never depends on the request or the process).
func (t *Template) Static() bool {
	if t.v24 != nil {
		for _, p := range t.v24.progs {
			if !p.literal {
				return false
			}
		}
		return true
	}
	for i := range t.nodes {
		if k := t.nodes[i].kind; k != nLit && k != nPercent {
			return false
		}
	}
	return true
}

// Unknown lists the variable names Dovecot would not recognise (expanded to
// UNSUPPORTED_VARIABLE_<name> and failing the expansion), for the config
// checker. Short keys are listed as one character, %{name:...} by name.
func (t *Template) Unknown() []string {
	return append([]string(nil), t.unknown...)
}
