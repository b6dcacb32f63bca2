package vars

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/authd-project/authd/internal/tabescape"
)

// The filters of Dovecot 2.4's templates (lib-var-expand's built-in
// list), each reproducing what the Dovecot filter of that name does,
// including its error cases. A filter returns "" on success and Dovecot's
// error text otherwise; the executor decides what an error means (see
// v24exec.go).

type filter24 struct {
	run func(s *state24, st *stmt24) string
	// check rejects, at parse time, arguments the filter refuses whatever
	// the request (Dovecot only notices when expanding).
	check func(st *stmt24) string
	// unsupported is the parse error for a filter authd does not have.
	unsupported string
}

var filters24 map[string]*filter24

func init() {
	filters24 = map[string]*filter24{
		"lookup":    {run: fnLookup},
		"literal":   {run: fnLiteral},
		"calculate": {run: fnCalculate},
		"concat":    {run: fnConcat},
		"upper":     {run: fnCase(false), check: noParams},
		"lower":     {run: fnCase(true), check: noParams},
		"hash":      {run: fnHash},
		"md5":       {run: fnHashAlgo("md5"), check: onlyNamed("rounds", "salt")},
		"sha1":      {run: fnHashAlgo("sha1"), check: onlyNamed("rounds", "salt")},
		"sha256":    {run: fnHashAlgo("sha256"), check: onlyNamed("rounds", "salt")},
		"sha384":    {run: fnHashAlgo("sha384"), check: onlyNamed("rounds", "salt")},
		"sha512":    {run: fnHashAlgo("sha512"), check: onlyNamed("rounds", "salt")},
		"base64":    {run: fnBase64, check: onlyNamed("pad", "url")},
		"unbase64":  {run: fnUnbase64, check: onlyNamed("pad", "url")},
		"hex":       {run: fnHex},
		"unhex":     {run: fnUnhex, check: noParams},
		"hexlify":   {run: fnHexlify},
		"unhexlify": {run: fnUnhexlify, check: noParams},
		"default":   {run: fnDefault},
		"reverse":   {run: fnReverse, check: noParams},
		"truncate":  {run: fnTruncate},
		"substr":    {run: fnSubstr},
		"ldap_dn":   {run: fnLdapDN, check: noParams},
		"if":        {run: fnIf},
		"regexp":    {run: fnRegexp, check: checkRegexp},
		"lenumber":  {run: fnNumber(false), check: noParams},
		"benumber":  {run: fnNumber(true), check: noParams},
		"index":     {run: fnIndex},
		"username":  {run: fnUsername, check: noParams},
		"domain":    {run: fnDomain, check: noParams},
		"list":      {run: fnList},
		"lfill":     {run: fnFill(true)},
		"rfill":     {run: fnFill(false)},
		"text":      {run: fnText, check: noParams},
		"encrypt":   {run: fnUnsupported, unsupported: "the encrypt filter is not supported by authd"},
		"decrypt":   {run: fnUnsupported, unsupported: "the decrypt filter is not supported by authd"},
	}
}

// unknownFilterHint points at the 2.4 spelling of a 2.3 habit.
func unknownFilterHint(name string) string {
	switch strings.ToLower(name) {
	case "l", "lc", "lcase", "lowercase":
		return " (did you mean lower?)"
	case "u", "uc", "ucase", "uppercase":
		return " (did you mean upper?)"
	case "n", "user", "name":
		return " (did you mean username?)"
	case "d", "dom":
		return " (did you mean domain?)"
	}
	return ""
}

func noParams(st *stmt24) string {
	if len(st.params) == 0 {
		return ""
	}
	if k := st.params[0].key; k != "" {
		return fmt.Sprintf("Unsupported key '%s'", k)
	}
	return "Too many positional parameters"
}

func onlyNamed(keys ...string) func(st *stmt24) string {
	return func(st *stmt24) string {
		for _, p := range st.params {
			if p.key == "" {
				return "Too many positional parameters"
			}
			found := false
			for _, k := range keys {
				found = found || p.key == k
			}
			if !found {
				return fmt.Sprintf("Unsupported key '%s'", p.key)
			}
		}
		return ""
	}
}

func fnUnsupported(*state24, *stmt24) string { return "not supported by authd" }

// Parameter access, as expansion-parameter.c reads parameters.

func (s *state24) numberOrVar(p *param24) (int64, string) {
	switch {
	case p == nil:
		return 0, "Missing parameter"
	case p.kind == pVar:
		v, err := s.lookup(p.str)
		if err != nil {
			return 0, err.Msg
		}
		n, ok := parseIntmax(v)
		if !ok {
			return 0, fmt.Sprintf("'%s' (in %s) is not a number", v, p.str)
		}
		return n, ""
	case p.kind != pInt:
		return 0, fmt.Sprintf("'%s' is not a number", p.str)
	}
	return p.num, ""
}

func (s *state24) boolOrVar(p *param24) (bool, string) {
	n, msg := s.numberOrVar(p)
	switch {
	case msg != "":
		return false, msg
	case n == 0:
		return false, ""
	case n == 1:
		return true, ""
	}
	return false, fmt.Sprintf("'%d' is not 0 or 1", n)
}

func (s *state24) stringOrVar(p *param24) (string, string) {
	switch {
	case p == nil:
		return "", "Missing parameter"
	case p.kind == pVar:
		v, err := s.lookup(p.str)
		if err != nil {
			return "", err.Msg
		}
		return v, ""
	case p.kind == pInt:
		return "", fmt.Sprintf("%d is not a string", p.num)
	}
	return p.str, ""
}

func (s *state24) anyOrVar(p *param24) (string, string) {
	if p != nil && p.kind == pInt {
		return strconv.FormatInt(p.num, 10), ""
	}
	return s.stringOrVar(p)
}

func unsupportedKey(k string) string { return fmt.Sprintf("Unsupported key '%s'", k) }

const tooManyPositional = "Too many positional parameters"

func noValue(action string) string { return "No value to " + action }

func fnLookup(s *state24, st *stmt24) string {
	if len(st.params) == 0 {
		return "Missing name to lookup"
	}
	p := &st.params[0]
	if p.key != "" {
		return unsupportedKey(p.key)
	}
	s.unset()
	name, msg := s.stringOrVar(p)
	if msg != "" {
		return msg
	}
	v, err := s.lookup(name)
	if err != nil {
		return err.Msg
	}
	s.setString(v)
	return ""
}

func fnLiteral(s *state24, st *stmt24) string {
	if len(st.params) == 0 {
		return "Missing parameters"
	}
	if k := st.params[0].key; k != "" {
		return unsupportedKey(k)
	}
	v, msg := s.anyOrVar(&st.params[0])
	if msg != "" {
		return msg
	}
	s.setString(v)
	return ""
}

// fnCase is lower and upper: ASCII only.
func fnCase(lower bool) func(s *state24, st *stmt24) string {
	return func(s *state24, st *stmt24) string {
		if msg := noParams(st); msg != "" {
			return msg
		}
		if !s.set {
			if lower {
				return noValue("lower")
			}
			return noValue("upper")
		}
		for i, c := range s.val {
			switch {
			case lower && c >= 'A' && c <= 'Z':
				s.val[i] = c + 'a' - 'A'
			case !lower && c >= 'a' && c <= 'z':
				s.val[i] = c - ('a' - 'A')
			}
		}
		return ""
	}
}

func fnDefault(s *state24, st *stmt24) string {
	if s.set && len(s.val) > 0 {
		return ""
	}
	v := ""
	if len(st.params) > 0 {
		p := &st.params[0]
		if p.key != "" {
			return unsupportedKey(p.key)
		}
		var msg string
		if v, msg = s.anyOrVar(p); msg != "" {
			return msg
		}
		if len(st.params) > 1 {
			return tooManyPositional
		}
	}
	s.setString(v)
	return ""
}

func fnConcat(s *state24, st *stmt24) string {
	if len(st.params) == 0 {
		return "Missing parameters"
	}
	var out []byte
	if s.set {
		out = append(out, s.val...)
	}
	for i := range st.params {
		p := &st.params[i]
		if p.key != "" {
			return unsupportedKey(p.key)
		}
		v, msg := s.anyOrVar(p)
		if msg != "" {
			return msg
		}
		out = append(out, v...)
	}
	s.setData(out)
	return ""
}

func fnCalculate(s *state24, st *stmt24) string {
	if len(st.params) == 0 {
		return "Missing parameters"
	}
	op, right := int64(-1), int64(0)
	for i := range st.params {
		p := &st.params[i]
		if p.key != "" {
			return unsupportedKey(p.key)
		}
		switch p.idx {
		case 0:
			if p.kind != pInt {
				return "Missing operator"
			}
			op = p.num
		case 1:
			var msg string
			if right, msg = s.numberOrVar(p); msg != "" {
				return msg
			}
		default:
			return tooManyPositional
		}
	}
	if !s.set {
		return noValue("calculate")
	}
	if op < 0 || op > 4 {
		return "Missing operator"
	}
	if s.binary && op == 4 {
		return s.binaryModulo(right)
	}
	v, ok := parseIntmax(s.str())
	if !ok {
		return "Input is not a number"
	}
	v, msg := arithmetic(op, v, right)
	if msg != "" {
		return msg
	}
	s.val = strconv.AppendInt(s.val[:0], v, 10)
	s.set = true
	return ""
}

// arithmetic is v op right with C's integer semantics, minus the overflow
// traps.
func arithmetic(op, v, right int64) (int64, string) {
	switch op {
	case 0:
		return v + right, ""
	case 1:
		return v - right, ""
	case 2:
		return v * right, ""
	case 3:
		if right == 0 {
			return 0, "Division by zero"
		}
		if v == math.MinInt64 && right == -1 {
			return 0, "Division overflow"
		}
		return v / right, ""
	}
	if right == 0 {
		return 0, "Modulo by zero"
	}
	if right == -1 {
		return 0, ""
	}
	return v % right, ""
}

// binaryModulo treats the last 8 bytes of a binary value as a big-endian
// unsigned number (sharding on a hash: `%{user | md5 % 16}`).
func (s *state24) binaryModulo(right int64) string {
	if right < 0 {
		return "Binary modulo must be positive integer"
	}
	if right == 0 {
		return "Modulo by zero"
	}
	var n uint64
	b := s.val
	if len(b) > 8 {
		b = b[len(b)-8:]
	}
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	s.setString(strconv.FormatUint(n%uint64(right), 10))
	return ""
}

func fnHash(s *state24, st *stmt24) string {
	if len(st.params) == 0 {
		return "Missing parameters"
	}
	p := &st.params[0]
	if p.idx == -1 {
		return "No algorithm as first parameter"
	}
	algo, msg := s.stringOrVar(p)
	if msg != "" {
		return msg
	}
	return s.hash(st, algo, true)
}

func fnHashAlgo(algo string) func(s *state24, st *stmt24) string {
	return func(s *state24, st *stmt24) string { return s.hash(st, algo, false) }
}

// hash hashes the value rounds times, the salt before the data each time.
func (s *state24) hash(st *stmt24, algo string, fromParam bool) string {
	m, ok := hashMethods[algo]
	if !ok {
		return fmt.Sprintf("Unsupported algorithm '%s'", algo)
	}
	rounds, salt := int64(1), ""
	for i := range st.params {
		p := &st.params[i]
		var msg string
		switch {
		case p.key == "" && (!fromParam || p.idx > 0):
			return tooManyPositional
		case p.key == "":
		case p.key == "rounds":
			rounds, msg = s.numberOrVar(p)
		case p.key == "salt":
			salt, msg = s.stringOrVar(p)
		default:
			return unsupportedKey(p.key)
		}
		if msg != "" {
			return msg
		}
	}
	if !s.set {
		if fromParam {
			return noValue("hash")
		}
		return noValue(algo)
	}
	if rounds > maxRounds {
		return fmt.Sprintf("rounds=%d is above authd's limit of %d", rounds, maxRounds)
	}
	data := append([]byte(nil), s.val...)
	h := m.new()
	for range max(rounds, 0) {
		h.Reset()
		h.Write([]byte(salt))
		h.Write(data)
		data = h.Sum(data[:0])
	}
	s.setBinary(data)
	return ""
}

// base64Options reads pad= and url= (0 or 1).
func (s *state24) base64Options(st *stmt24, what string) (enc *base64.Encoding, msg string) {
	pad, url := true, false
	for i := range st.params {
		p := &st.params[i]
		var v bool
		switch p.key {
		case "":
			return nil, tooManyPositional
		case "pad":
			v, msg = s.boolOrVar(p)
			pad = v
		case "url":
			v, msg = s.boolOrVar(p)
			url = v
		default:
			return nil, unsupportedKey(p.key)
		}
		if msg != "" {
			if what == "unbase64" && strings.HasSuffix(msg, "is not 0 or 1") {
				msg = "Supported values for " + p.key + " are 0 or 1"
			}
			return nil, msg
		}
	}
	enc = base64.StdEncoding
	if url {
		enc = base64.URLEncoding
	}
	if !pad {
		enc = enc.WithPadding(base64.NoPadding)
	}
	return enc, ""
}

func fnBase64(s *state24, st *stmt24) string {
	enc, msg := s.base64Options(st, "base64")
	if msg != "" {
		return msg
	}
	if !s.set {
		return noValue("base64")
	}
	s.setString(enc.EncodeToString(s.val))
	return ""
}

// fnUnbase64 decodes what it can: Dovecot's decoder stops at the first
// byte that is not base64 and keeps what it decoded so far.
func fnUnbase64(s *state24, st *stmt24) string {
	enc, msg := s.base64Options(st, "unbase64")
	if msg != "" {
		return msg
	}
	if !s.set {
		return noValue("unbase64")
	}
	s.setBinary(decodeBase64Prefix(enc, s.val))
	return ""
}

// decodeBase64Prefix decodes the longest leading run of base64 alphabet
// bytes, ignoring padding and anything after it.
func decodeBase64Prefix(enc *base64.Encoding, in []byte) []byte {
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	if enc.EncodeToString([]byte{0xfb, 0xff}) == "-_8" || enc.EncodeToString([]byte{0xfb, 0xff}) == "-_8=" {
		alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	}
	enc = enc.WithPadding(base64.NoPadding)
	n := 0
	for n < len(in) && strings.IndexByte(alphabet, in[n]) >= 0 {
		n++
	}
	body := in[:n]
	if len(body)%4 == 1 {
		body = body[:len(body)-1]
	}
	out, err := enc.DecodeString(string(body))
	if err != nil {
		// Trailing bits that are not zero: decode what is whole.
		body = body[:len(body)/4*4]
		out, _ = enc.DecodeString(string(body))
	}
	return out
}

func fnHex(s *state24, st *stmt24) string {
	var width int64
	for i := range st.params {
		p := &st.params[i]
		if p.key != "" {
			return unsupportedKey(p.key)
		}
		if p.idx != 0 {
			return tooManyPositional
		}
		var msg string
		if width, msg = s.numberOrVar(p); msg != "" {
			return msg
		}
	}
	if !s.set {
		return noValue("hex")
	}
	n, ok := parseUintmax(s.str())
	if !ok {
		return "Input is not a number"
	}
	h := strconv.FormatUint(n, 16)
	switch {
	case width < 0:
		w := int(-width)
		for len(h) < w {
			h += "0"
		}
		h = h[:w]
	case width > 0:
		w := int(width)
		for len(h) < w {
			h = "0" + h
		}
		h = h[len(h)-w:]
	}
	s.setData([]byte(h))
	return ""
}

// parseUintmax is Dovecot's str_to_uintmax: decimal digits only.
func parseUintmax(v string) (uint64, bool) {
	if v == "" || v[0] < '0' || v[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

func fnUnhex(s *state24, st *stmt24) string {
	if msg := noParams(st); msg != "" {
		return msg
	}
	if !s.set {
		return noValue("unhex")
	}
	v := s.str()
	if v == "" || !isAllHex(v) {
		return "Input is not a hex number"
	}
	n, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return "Input is not a hex number"
	}
	s.setString(strconv.FormatUint(n, 10))
	return ""
}

func isAllHex(v string) bool {
	for i := 0; i < len(v); i++ {
		if !isHex(v[i]) {
			return false
		}
	}
	return true
}

func fnHexlify(s *state24, st *stmt24) string {
	var width int64
	if len(st.params) > 0 {
		p := &st.params[0]
		if p.key != "" {
			return unsupportedKey(p.key)
		}
		var msg string
		if width, msg = s.numberOrVar(p); msg != "" {
			return msg
		}
		if width < 0 {
			return "Width must be positive"
		}
	}
	if !s.set {
		return noValue("hexlify")
	}
	h := hex.EncodeToString(s.val)
	w := int(min(width, int64(1<<20)))
	switch {
	case w == 0:
	case len(h) < w:
		h = strings.Repeat("0", w-len(h)) + h
	case len(h) > w:
		h = h[:w]
	}
	s.setString(h)
	return ""
}

func fnUnhexlify(s *state24, st *stmt24) string {
	if msg := noParams(st); msg != "" {
		return msg
	}
	if !s.set {
		return noValue("unhexlify")
	}
	if len(s.val)%2 != 0 {
		return "Not a hex value"
	}
	b, err := hex.DecodeString(string(s.val))
	if err != nil {
		return "Not a hex value"
	}
	s.setBinary(b)
	return ""
}

func fnReverse(s *state24, st *stmt24) string {
	if msg := noParams(st); msg != "" {
		return msg
	}
	if !s.set {
		return noValue("reverse")
	}
	for i, j := 0, len(s.val)-1; i < j; i, j = i+1, j-1 {
		s.val[i], s.val[j] = s.val[j], s.val[i]
	}
	return ""
}

func fnTruncate(s *state24, st *stmt24) string {
	if len(st.params) == 0 {
		return "Missing parameters"
	}
	n, bits := int64(-1), false
	for i := range st.params {
		p := &st.params[i]
		switch {
		case p.key == "bits" || p.key == "" && p.idx == 0:
			v, msg := s.numberOrVar(p)
			if msg != "" {
				return msg
			}
			if v < 0 {
				return "Value of out of bounds"
			}
			n, bits = v, p.key == "bits"
		case p.key != "":
			return unsupportedKey(p.key)
		default:
			return tooManyPositional
		}
	}
	if n < 0 {
		return "Missing truncation length"
	}
	if !s.set {
		return noValue("truncate")
	}
	switch {
	case bits && n == 0:
		s.val = s.val[:0]
	case bits:
		s.val = TruncateBits(s.val, int(min(n, int64(len(s.val))*8+1)))
	case n < int64(len(s.val)):
		// authd keeps a value shorter than the length as it is.
		s.val = s.val[:n]
	}
	return ""
}

func fnSubstr(s *state24, st *stmt24) string {
	if len(st.params) == 0 {
		return "Missing parameters"
	}
	used := int64(len(s.val))
	off, length := int64(0), used
	gotOff, gotLen := false, false
	for i := range st.params {
		p := &st.params[i]
		if p.key != "" {
			return unsupportedKey(p.key)
		}
		v, msg := s.numberOrVar(p)
		if msg != "" {
			return msg
		}
		switch p.idx {
		case 0:
			off, gotOff = v, true
		case 1:
			length, gotLen = v, true
		default:
			return tooManyPositional
		}
	}
	if !gotOff {
		return "Missing offset parameter"
	}
	if !s.set {
		return noValue("substring")
	}
	return s.substr(off, length, gotLen)
}

func (s *state24) substr(off, length int64, gotLen bool) string {
	used := int64(len(s.val))
	if off < -used || off > used {
		return "Offset out of bounds"
	}
	if length < -used || length > used {
		return "Length out of bounds"
	}
	if length == 0 {
		s.setData(nil)
		return ""
	}
	if off < 0 {
		off += used
	}
	switch {
	case !gotLen:
		length = used - off
	case length < 0:
		length += used
		if length < off {
			return "Length out of bounds"
		}
		length -= off
	}
	if length < 0 || length+off > used {
		return "Length out of bounds"
	}
	s.setData(append([]byte(nil), s.val[off:off+length]...))
	return ""
}

func fnLdapDN(s *state24, st *stmt24) string {
	if msg := noParams(st); msg != "" {
		return msg
	}
	if !s.set {
		return noValue("convert to ldap_dn")
	}
	s.setData([]byte(strings.ReplaceAll(s.str(), ".", ",dc=")))
	return ""
}

func fnNumber(be bool) func(s *state24, st *stmt24) string {
	return func(s *state24, st *stmt24) string {
		if msg := noParams(st); msg != "" {
			return msg
		}
		if !s.set {
			return noValue("convert to number")
		}
		b := s.val
		var n uint64
		switch len(b) {
		case 1:
			n = uint64(b[0])
		case 2:
			n = uint64(order(be).Uint16(b))
		case 4:
			n = uint64(order(be).Uint32(b))
		case 8:
			n = order(be).Uint64(b)
		default:
			return fmt.Sprintf("Cannot convert '%d' bytes to number", len(b))
		}
		s.setString(strconv.FormatUint(n, 10))
		return ""
	}
}

func order(be bool) binary.ByteOrder {
	if be {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

func fnIndex(s *state24, st *stmt24) string {
	if len(st.params) == 0 {
		return "Missing parameters"
	}
	sep, idx, gotSep, gotIdx := "", 0, false, false
	for i := range st.params {
		p := &st.params[i]
		if p.key != "" {
			return unsupportedKey(p.key)
		}
		switch p.idx {
		case 0:
			v, msg := s.stringOrVar(p)
			if msg != "" {
				return msg
			}
			sep, gotSep = v, true
		case 1:
			v, msg := s.numberOrVar(p)
			if msg != "" {
				return msg
			}
			if v < math.MinInt32 || v > math.MaxInt32 {
				return "Position out of bounds"
			}
			idx, gotIdx = int(v), true
		default:
			return tooManyPositional
		}
	}
	if !gotSep {
		return "Missing separator and index parameters"
	}
	if !gotIdx {
		return "Missing index parameter"
	}
	if !s.set {
		return noValue("index")
	}
	return s.index(idx, sep)
}

// index picks the idx-th field of the value split at sep (negative from
// the end).
func (s *state24) index(idx int, sep string) string {
	if sep == "" {
		// Dovecot loops forever on an empty separator.
		return "empty separator"
	}
	parts := strings.Split(s.str(), sep)
	if idx < 0 {
		idx += len(parts)
	}
	if idx < 0 || idx >= len(parts) {
		return "Position out of bounds"
	}
	s.setString(parts[idx])
	return ""
}

func fnUsername(s *state24, st *stmt24) string {
	if msg := noParams(st); msg != "" {
		return msg
	}
	if !s.set {
		return noValue("get username from")
	}
	return s.index(0, "@")
}

func fnDomain(s *state24, st *stmt24) string {
	if msg := noParams(st); msg != "" {
		return msg
	}
	if !s.set {
		return noValue("get domain from")
	}
	s.setString(domainPart(s.str()))
	return ""
}

func fnList(s *state24, st *stmt24) string {
	sep := ","
	for i := range st.params {
		p := &st.params[i]
		if p.key != "" {
			return unsupportedKey(p.key)
		}
		if p.idx > 0 {
			return tooManyPositional
		}
		v, msg := s.stringOrVar(&st.params[0])
		if msg != "" {
			return msg
		}
		sep = v
	}
	if !s.set {
		return noValue("generate list from")
	}
	in := s.str()
	var parts []string
	if in != "" {
		for _, f := range strings.Split(in, "\t") {
			parts = append(parts, tabescape.Unescape(f))
		}
	}
	s.setString(strings.Join(parts, sep))
	return ""
}

// maxFill bounds lfill/rfill; Dovecot allows up to INT_MAX.
const maxFill = maxNumber

func fnFill(left bool) func(s *state24, st *stmt24) string {
	return func(s *state24, st *stmt24) string {
		if len(st.params) == 0 {
			return "Missing parameters"
		}
		amount, filler := int64(0), "0"
		for i := range st.params {
			p := &st.params[i]
			if p.key != "" {
				return unsupportedKey(p.key)
			}
			var msg string
			switch p.idx {
			case 0:
				var v int64
				if v, msg = s.numberOrVar(p); msg == "" && (v < 1 || v > math.MaxInt32) {
					msg = "Fill length out of bounds"
				}
				amount = v
			case 1:
				filler, msg = s.stringOrVar(p)
			default:
				return tooManyPositional
			}
			if msg != "" {
				return msg
			}
		}
		if amount < 1 {
			return "Missing amount"
		}
		if !s.set {
			return noValue("fill")
		}
		if amount > maxFill || filler == "" && int64(len(s.val)) < amount {
			return fmt.Sprintf("fill length %d is above authd's limit, or the filler is empty", amount)
		}
		for int64(len(s.str())) < amount {
			if left {
				s.val = append([]byte(filler), s.val...)
			} else {
				s.val = append(s.val, filler...)
			}
		}
		return ""
	}
}

// fnText replaces control characters and invalid UTF-8 with U+FFFD; a
// value cut inside a UTF-8 sequence ends in "…" instead of its last
// character.
func fnText(s *state24, st *stmt24) string {
	if msg := noParams(st); msg != "" {
		return msg
	}
	if !s.set {
		return noValue("text")
	}
	in := s.str()
	var b strings.Builder
	last := 0
	for i := 0; i < len(in); {
		r, n := utf8.DecodeRuneInString(in[i:])
		if r == utf8.RuneError && n <= 1 && !utf8.FullRuneInString(in[i:]) {
			s.setString(b.String()[:last] + "…")
			return ""
		}
		last = b.Len()
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString("\uFFFD")
			n = 1
		case in[i] < 0x20 || in[i] == 0x7f:
			b.WriteString("\uFFFD")
		default:
			b.WriteString(in[i : i+n])
		}
		i += n
	}
	s.setString(b.String())
	return ""
}

func checkRegexp(st *stmt24) string {
	for _, p := range st.params {
		if p.key == "" && p.idx == 1 && p.kind == pString && hasBadBackslash(p.str) {
			// Dovecot loops forever on such a replacement.
			return "a backslash in the replacement must be followed by a digit (\\0 … \\9)"
		}
		if p.key == "" && p.idx == 0 && p.kind == pString {
			if _, err := regexp.CompilePOSIX(p.str); err != nil {
				return "invalid regular expression: " + err.Error()
			}
		}
	}
	return ""
}

func hasBadBackslash(rep string) bool {
	for i := 0; i < len(rep); i++ {
		if rep[i] == '\\' && (i+1 == len(rep) || rep[i+1] < '0' || rep[i+1] > '9') {
			return true
		}
		if rep[i] == '\\' {
			i++
		}
	}
	return false
}

// fnRegexp replaces the whole value with the replacement when the pattern
// matches (not just the matched part), \N standing for a group.
func fnRegexp(s *state24, st *stmt24) string {
	if len(st.params) == 0 {
		return "Missing parameters"
	}
	var pat, rep *string
	for i := range st.params {
		p := &st.params[i]
		if p.key != "" {
			return unsupportedKey(p.key)
		}
		v, msg := s.stringOrVar(p)
		if msg != "" {
			return msg
		}
		switch p.idx {
		case 0:
			pat = &v
		case 1:
			rep = &v
		default:
			return tooManyPositional
		}
	}
	switch {
	case pat == nil:
		return "Missing pattern and replacement parameters"
	case rep == nil:
		return "Missing replacement parameter"
	case !s.set:
		return noValue("regexp")
	case hasBadBackslash(*rep):
		return "unsupported backslash in replacement"
	}
	re, err := regexp.CompilePOSIX(*pat)
	if err != nil {
		return err.Error()
	}
	in := s.str()
	m := re.FindStringSubmatchIndex(in)
	if m == nil {
		return ""
	}
	var out strings.Builder
	r := *rep
	for i := 0; i < len(r); i++ {
		if r[i] != '\\' {
			out.WriteByte(r[i])
			continue
		}
		g := int(r[i+1] - '0')
		i++
		if 2*g+1 >= len(m) || m[2*g] < 0 {
			return "Invalid capture group"
		}
		out.WriteString(in[m[2*g]:m[2*g+1]])
	}
	s.setData([]byte(out.String()))
	return ""
}

// fnIf is `if(op, rhs, then, else)` on the value, or `if(lhs, op, rhs,
// then, else)` as the first step. ==, !=, <, <=, >, >= compare numbers;
// eq, ne, lt, le, gt, ge strings; * and !* wildcards; ~ and !~ regular
// expressions (Go's POSIX syntax for glibc's).
func fnIf(s *state24, st *stmt24) string {
	useFirst := !s.set
	want := 4
	if useFirst {
		want = 5
	}
	var ps []*param24
	for i := range st.params {
		p := &st.params[i]
		if p.key != "" {
			return unsupportedKey(p.key)
		}
		if len(ps) == want {
			return tooManyPositional
		}
		ps = append(ps, p)
	}
	if !useFirst {
		ps = append([]*param24{nil}, ps...)
	}
	if len(ps) < 5 {
		return "Missing parameters"
	}
	opName, msg := s.stringOrVar(ps[1])
	if msg != "" {
		return "Comparator: " + msg
	}
	op, ok := ifOps[opName]
	if !ok {
		return fmt.Sprintf("Unsupported comparator '%s'", opName)
	}
	numeric := op <= opNumNe
	if !useFirst {
		lhs := param24{kind: pString, str: s.str()}
		if numeric {
			n, ok := parseIntmax(s.str())
			if !ok {
				return "Input is not a number"
			}
			lhs = param24{kind: pInt, num: n}
		}
		ps[0] = &lhs
	}
	result, msg := s.compare(ps[0], op, ps[2])
	if msg != "" {
		return msg
	}
	branch, name := ps[4], "False branch"
	if result {
		branch, name = ps[3], "True branch"
	}
	v, msg := s.anyOrVar(branch)
	if msg != "" {
		return name + ": " + msg
	}
	s.setString(v)
	return ""
}

func (s *state24) compare(pl *param24, op ifOp, pr *param24) (bool, string) {
	if op <= opNumNe {
		a, msg := s.numberOrVar(pl)
		if msg != "" {
			return false, "Left-hand side: " + msg
		}
		b, msg := s.numberOrVar(pr)
		if msg != "" {
			return false, "Right-hand side: " + msg
		}
		return map[ifOp]bool{opNumEq: a == b, opNumLt: a < b, opNumLe: a <= b,
			opNumGt: a > b, opNumGe: a >= b, opNumNe: a != b}[op], ""
	}
	lhs, msg := s.stringOrVar(pl)
	if msg != "" {
		return false, "Left-hand side " + msg
	}
	rhs, msg := s.stringOrVar(pr)
	if msg != "" {
		return false, "Right-hand side " + msg
	}
	switch op {
	case opLike, opNotLike:
		return wildcardMatch(lhs, rhs) == (op == opLike), ""
	case opRegexp, opNotRegexp:
		re, err := regexp.CompilePOSIX(rhs)
		if err != nil {
			return false, "regexp() failed: " + err.Error()
		}
		return re.MatchString(lhs) == (op == opRegexp), ""
	}
	return map[ifOp]bool{opStrEq: lhs == rhs, opStrLt: lhs < rhs, opStrLe: lhs <= rhs,
		opStrGt: lhs > rhs, opStrGe: lhs >= rhs, opStrNe: lhs != rhs}[op], ""
}
