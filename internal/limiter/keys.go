package limiter

import (
	"hash/maphash"
	"net/netip"
	"strconv"
	"unicode/utf8"
)

// Keys are strings: the kind's letter, then the key. Addresses are kept as
// their masked bytes, so that every address of a /64 (or /24) is one key.
const (
	tagIP      = 'i'
	tagPrefix  = 'p'
	tagAccount = 'a'
	tagPair    = 'g'
)

// ipKey is the address key: IPv4 /32, IPv6 /64.
func ipKey(ip netip.Addr) string {
	if ip.Is4() {
		b := ip.As4()
		return string(tagIP) + string(b[:])
	}
	b := ip.As16()
	return string(tagIP) + string(b[:8])
}

// appendNetwork appends the network of ip: IPv4 /24, IPv6 /48; nothing
// for the zero Addr.
func appendNetwork(dst []byte, ip netip.Addr) []byte {
	switch {
	case ip.Is4():
		b := ip.As4()
		return append(dst, b[:3]...)
	case ip.IsValid():
		b := ip.As16()
		return append(dst, b[:6]...)
	}
	return dst
}

func prefixKey(ip netip.Addr) string { return string(appendNetwork([]byte{tagPrefix}, ip)) }

func accountKey(account string) string { return string(tagAccount) + account }

// pairKey is the account seen from ip's network; without an address, the
// account seen from nowhere (local tools), which is its own pair.
func pairKey(account string, ip netip.Addr) string {
	return string(appendPairKey(nil, account, ip))
}

// appendPairKey appends pairKey(account, ip) to dst: a login looks its
// pair up by the key's ID only, from a buffer on its stack.
func appendPairKey(dst []byte, account string, ip netip.Addr) []byte {
	// The network's length first, then its bytes, straight from the
	// address into dst (a string would be an allocation per login).
	start := len(dst)
	dst = appendNetwork(append(dst, tagPair, 0), ip)
	dst[start+1] = byte(len(dst) - start - 2)
	return append(dst, account...)
}

// keyID is a key as the tables hold it: two 64-bit hashes of the key
// under random per-process seeds. A lookup then compares 16 bytes kept in
// the table itself instead of the key's text kept elsewhere: one cache
// miss less per login, the limiter's largest cost in profiles. Two of n
// keys share an ID with odds of about n²/2¹²⁹ (10⁻²⁷ for a million), and
// the seeds are secret and never leave the process, so nobody can aim
// for a collision. The entry keeps the key's text for logs and
// `authd penalty`.
type keyID struct{ a, b uint64 }

// keyer makes keyIDs.
type keyer struct{ a, b maphash.Seed }

func newKeyer() *keyer { return &keyer{a: maphash.MakeSeed(), b: maphash.MakeSeed()} }

func (k *keyer) id(key string) keyID {
	return nonZero(keyID{maphash.String(k.a, key), maphash.String(k.b, key)})
}

func (k *keyer) idBytes(key []byte) keyID {
	return nonZero(keyID{maphash.Bytes(k.a, key), maphash.Bytes(k.b, key)})
}

// nonZero keeps the zero ID for the tables' free slots.
func nonZero(id keyID) keyID {
	if id == (keyID{}) {
		id.b = 1
	}
	return id
}

// displayKey renders a key for logs and `authd penalty`: addresses as
// text, accounts truncated to 64 bytes and quoted (a user name is the
// client's text; it must not forge a log line).
func displayKey(key string) string {
	if key == "" {
		return ""
	}
	body := key[1:]
	switch key[0] {
	case tagIP:
		if len(body) == 4 {
			return netip.AddrFrom4([4]byte([]byte(body))).String()
		}
		var b [16]byte
		copy(b[:], body)
		return netip.PrefixFrom(netip.AddrFrom16(b), 64).String()
	case tagPrefix:
		return displayNet(body)
	case tagAccount:
		return quoteName(body)
	case tagPair:
		if len(body) == 0 || 1+int(body[0]) > len(body) {
			return strconv.Quote(key)
		}
		n := int(body[0])
		net, account := body[1:1+n], body[1+n:]
		if n == 0 {
			return quoteName(account) + " from a local client"
		}
		return quoteName(account) + " from " + displayNet(net)
	}
	return strconv.Quote(key)
}

func displayNet(b string) string {
	if len(b) == 3 {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{b[0], b[1], b[2], 0}), 24).String()
	}
	var a [16]byte
	copy(a[:], b)
	return netip.PrefixFrom(netip.AddrFrom16(a), 48).String()
}

// maxLoggedName is how much of a user name goes into a log line, as in
// Dovecot.
const maxLoggedName = 64

// quoteName truncates a user name to maxLoggedName bytes (at a rune
// boundary) and quotes it.
func quoteName(s string) string {
	if len(s) > maxLoggedName {
		cut := maxLoggedName
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}

// parseDisplayed turns a key as `authd penalty` shows it back into a key:
// an address or prefix, or an account name (quoted or not).
func parseDisplayed(kind Kind, s string) (string, bool) {
	switch kind {
	case KindIP, KindPrefix:
		if p, err := netip.ParsePrefix(s); err == nil {
			s = p.Addr().String()
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return "", false
		}
		ip = normalize(ip)
		if kind == KindIP {
			return ipKey(ip), true
		}
		return prefixKey(ip), true
	case KindAccount:
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
		return accountKey(s), s != ""
	}
	return "", false
}

// isOfAccount reports whether key is account's key or one of its pairs',
// without copying the key out of its shard's buffer.
func isOfAccount(key []byte, account string) bool {
	switch {
	case len(key) > 0 && key[0] == tagAccount:
		return string(key[1:]) == account
	case len(key) > 1 && key[0] == tagPair:
		n := int(key[1])
		return 2+n <= len(key) && string(key[2+n:]) == account
	}
	return false
}
