package limiter

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// What the defence adds to one login (docs/performance.md, limiter on vs
// off): a user on her known-good network, and an attacker's refused
// guess.

func benchUsers(n int) ([]string, []netip.Addr) {
	users, ips := make([]string, n), make([]netip.Addr, n)
	for i := range users {
		users[i] = fmt.Sprintf("user%05d@example.com", i+1)
		ips[i] = netip.AddrFrom4([4]byte{10, 0, byte((i + 1) >> 8), byte(i + 1)})
	}
	return users, ips
}

func BenchmarkAttemptKnownGood(b *testing.B) {
	l := New(Config{})
	users, ips := benchUsers(10000)
	for i := range users {
		l.Begin(Request{Account: users[i], IP: ips[i], Password: []byte("pw")}).Done(Succeeded)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		// As the engine calls it: the attempt inside the request's
		// state, the arrival time read when the request was.
		pw := []byte("pw00001")
		var a Attempt
		at := time.Now()
		for pb.Next() {
			k := int(next.Add(1)) % len(users)
			a = Attempt{}
			l.Start(context.Background(), &a, Request{Account: users[k], IP: ips[k], Password: pw, At: at})
			if a.Refused() {
				b.Fatal("a known-good login was refused")
			}
			a.Done(Succeeded)
		}
	})
}

func BenchmarkAttemptRefused(b *testing.B) {
	l := New(Config{})
	users, _ := benchUsers(10000)
	attacker := netip.MustParseAddr("198.18.0.1")
	for i := range DefaultIP.Failures {
		l.Begin(Request{Account: users[i], IP: attacker, Password: []byte("guess")}).Done(Failed)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		pw := []byte("guess")
		for pb.Next() {
			k := int(next.Add(1)) % len(users)
			a := l.Begin(Request{Account: users[k], IP: attacker, Password: pw})
			if !a.Refused() {
				b.Fatal("a guess over the budget went through")
			}
			a.Done(Failed)
		}
	})
}
