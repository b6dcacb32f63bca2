package redisstate

import (
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
)

// The key layout (docs/scale-out.md, "Key layout"). Everything starts with the
// prefix. The part in braces is Redis Cluster's hash tag: the keys of one
// account (its budget, its pairs, its cache generation and records), and
// those of one network (an address's budget and its network's), each
// live in one slot, so that one script can touch them together.
//
//	<p>c:epoch                       cache epoch (a flush of everything raises it)
//	<p>c:{u:<user>}:g                a user's cache generation
//	<p>c:{u:<user>}:r:<key hash>     a cache record
//	<p>bf:{a:<account>}              an account's failure window
//	<p>bf:{a:<account>}:g:<network>  a pair: known-good time, failed password hashes, own window
//	<p>bf:{a:<account>}:gi           the account's pairs (for a reset)
//	<p>bf:{n:<network>}              a network's failure window (IPv4 /24, IPv6 /48)
//	<p>bf:{n:<network>}:i:<address>  an address's failure window (IPv4 /32, IPv6 /64)
//	<p>inval, <p>events              the announcement channels
type keys struct{ prefix string }

// name renders a user or account name for a key: as it is when it is
// short and made of harmless characters, otherwise "~" and a hash (a
// brace would move the hash tag; a long or binary name would bloat keys).
func name(s string) string {
	if len(s) > 0 && len(s) <= 128 {
		ok := true
		for i := 0; i < len(s) && ok; i++ {
			c := s[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
				c == '.' || c == '_' || c == '@' || c == '+' || c == '=' || c == '-'
		}
		if ok {
			return s
		}
	}
	sum := sha256.Sum256([]byte(s))
	return "~" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

func (k keys) epoch() string              { return k.prefix + "c:epoch" }
func (k keys) flushSeq() string           { return k.prefix + "c:seq" }
func (k keys) userGen(user string) string { return k.prefix + "c:{u:" + name(user) + "}:g" }

// record is a cache record's key: the cache key hashed, so that the
// variables it holds (a remote address, a service) stay out of Redis.
func (k keys) record(user, cacheKey string) string {
	sum := sha256.Sum256([]byte(cacheKey))
	return k.prefix + "c:{u:" + name(user) + "}:r:" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

func (k keys) account(account string) string { return k.prefix + "bf:{a:" + name(account) + "}" }
func (k keys) pairIndex(account string) string {
	return k.prefix + "bf:{a:" + name(account) + "}:gi"
}

// pair is an account seen from a network; "-" is "from no address" (a
// local tool), its own pair, as in the limiter.
func (k keys) pair(account string, ip netip.Addr) string {
	net := "-"
	if ip.IsValid() {
		net = network(ip).String()
	}
	return k.prefix + "bf:{a:" + name(account) + "}:g:" + net
}

func (k keys) network(ip netip.Addr) string { return k.prefix + "bf:{n:" + network(ip).String() + "}" }
func (k keys) address(ip netip.Addr) string {
	return k.network(ip) + ":i:" + address(ip).String()
}

func (k keys) inval() string  { return k.prefix + "inval" }
func (k keys) events() string { return k.prefix + "events" }

// network is the limiter's network of ip: IPv4 /24, IPv6 /48.
func network(ip netip.Addr) netip.Prefix {
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

// address is the limiter's address of ip: IPv4 /32, IPv6 /64.
func address(ip netip.Addr) netip.Prefix {
	bits := 64
	if ip.Is4() {
		bits = 32
	}
	p, _ := ip.Prefix(bits)
	return p
}
