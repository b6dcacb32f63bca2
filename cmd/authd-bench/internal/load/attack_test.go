package load

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// plainServer is a client-protocol server that answers each AUTH PLAIN
// with decide(rip, user, password): true for OK, false for FAIL. It
// fails the test on a request it cannot parse.
func plainServer(t *testing.T, decide func(rip, user, pass string) bool) string {
	return serveUnix(t, func(c net.Conn) { servePlain(t, c, decide) })
}

func servePlain(t *testing.T, c net.Conn, decide func(rip, user, pass string) bool) {
	c.Write([]byte(clientHandshake))
	sc := bufio.NewScanner(c)
	w := bufio.NewWriter(c)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if f[0] != "AUTH" {
			continue
		}
		kv := map[string]string{}
		for _, x := range f[3:] {
			k, v, _ := strings.Cut(x, "=")
			kv[k] = v
		}
		raw, err := base64.StdEncoding.DecodeString(kv["resp"])
		parts := bytes.Split(raw, []byte{0})
		if err != nil || len(parts) != 3 {
			t.Errorf("AUTH line %q: bad PLAIN response", sc.Text())
			return
		}
		reply := "FAIL\t%s\n"
		if decide(kv["rip"], string(parts[1]), string(parts[2])) {
			reply = "OK\t%s\tuser=" + string(parts[1]) + "\n"
		}
		fmt.Fprintf(w, reply, f[1])
		w.Flush()
	}
}

// TestAttackAddressesAndProbes runs an attack against a server that
// refuses everything from the attackers' addresses, then against one that
// refuses nothing: every legitimate request carries its user's own
// address, every attacker request one of the attack's addresses and a
// guess never sent before, and the probes measure the refused share
// exactly (1 and 0).
func TestAttackAddressesAndProbes(t *testing.T) {
	users, _ := GenerateUsers(50, "", "")
	index := map[string]int{}
	for i, n := range users.Names {
		index[n] = i
	}
	const addrs = 20
	attackers := map[string]bool{}
	for j := range addrs {
		attackers[AttackerAddr(j).String()] = true
	}
	for _, refuse := range []bool{true, false} {
		t.Run(fmt.Sprintf("refuse=%v", refuse), func(t *testing.T) {
			var mu sync.Mutex
			seenAttackers := map[string]bool{}
			guesses := map[string]bool{}
			sock := plainServer(t, func(rip, user, pass string) bool {
				i, known := index[user]
				right := known && pass == users.Passwords[i]
				mu.Lock()
				defer mu.Unlock()
				switch {
				case attackers[rip]:
					seenAttackers[rip] = true
					if !right {
						if guesses[user+"\x00"+pass] {
							t.Errorf("guess %q for %s sent twice", pass, user)
						}
						guesses[user+"\x00"+pass] = true
					}
					return right && !refuse
				case known && rip == UserAddr(i).String():
					return right
				}
				t.Errorf("request for %q from %q: neither the user's address nor an attacker's", user, rip)
				return false
			})
			res, err := RunAttack(t.Context(), Config{
				Target: Target{Network: "unix", Address: sock}, Protocols: Builtin(),
				Conns: 2, Depth: 2, Duration: 300 * time.Millisecond, Users: users, Seed: 7,
			}, Attack{Addrs: addrs, Conns: 2, Depth: 8, ProbeShare: 0.2})
			if err != nil {
				t.Fatal(err)
			}
			l, a := res.Legit, res.Attacker
			if l.Requests == 0 || l.OK != l.Requests || l.Unexpected != 0 {
				t.Errorf("legit: %d requests, %d ok, %d unexpected", l.Requests, l.OK, l.Unexpected)
			}
			if a.Requests == 0 || a.WrongOK != 0 || a.Errors != 0 {
				t.Errorf("attackers: %d requests, %d wrong passwords let in, %d errors", a.Requests, a.WrongOK, a.Errors)
			}
			want := 0.0
			if refuse {
				want = 1
			}
			if res.Probes == 0 || res.Probes != a.Requests-a.WrongSent || res.RefusedShare != want {
				t.Errorf("%d probes of %d requests (%d guesses), refused share %v, want %v",
					res.Probes, a.Requests, a.WrongSent, res.RefusedShare, want)
			}
			if len(seenAttackers) < addrs/2 {
				t.Errorf("only %d of %d attacking addresses used", len(seenAttackers), addrs)
			}
			var b strings.Builder
			if err := res.WriteText(&b); err != nil || !strings.Contains(b.String(), fmt.Sprintf("refused     ≈ %.1f%%", want*100)) {
				t.Errorf("report (%v):\n%s", err, b.String())
			}
		})
	}
}

func TestAttackConfigErrors(t *testing.T) {
	users, _ := GenerateUsers(5, "", "")
	base := Config{Target: Target{Network: "unix", Address: "/nonexistent"}, Protocols: Builtin(), Duration: time.Second, Users: users}
	for name, tc := range map[string]struct {
		cfg  func(Config) Config
		atk  Attack
		want string
	}{
		"lookups":        {func(c Config) Config { c.Protocol = "master"; return c }, Attack{}, "authenticating protocol"},
		"addresses":      {func(c Config) Config { return c }, Attack{Addrs: MaxAttackAddrs + 1}, "attacking addresses"},
		"probe share":    {func(c Config) Config { return c }, Attack{ProbeShare: 1.5}, "probe share"},
		"rip and addrs":  {func(c Config) Config { c.RemoteIP = "192.0.2.1"; c.UserAddrs = true; return c }, Attack{}, "exclude each other"},
		"bad attack rip": {func(c Config) Config { c.RemoteIP = "nope"; return c }, Attack{}, "not an IP address"},
	} {
		if _, err := RunAttack(t.Context(), tc.cfg(base), tc.atk); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, tc.want)
		}
	}
}

// The address plans: users and attackers never share a network, each
// user's address is its own, and 1000 attackers sit two per /24.
func TestAddressPlans(t *testing.T) {
	if UserAddr(0).String() != "10.0.0.1" || UserAddr(MaxUserAddrs-1).String() != "10.255.255.254" {
		t.Errorf("user addresses %v … %v", UserAddr(0), UserAddr(MaxUserAddrs-1))
	}
	nets := map[[3]byte]int{}
	seen := map[string]bool{}
	for j := range DefaultAttackAddrs {
		a := AttackerAddr(j)
		if !a.Is4() || a.As4()[0] != 198 || a.As4()[1]&0xfe != 18 || seen[a.String()] {
			t.Fatalf("attacker %d: %v", j, a)
		}
		seen[a.String()] = true
		b := a.As4()
		nets[[3]byte{b[0], b[1], b[2]}]++
	}
	for n, c := range nets {
		if c > 2 {
			t.Errorf("%v has %d attackers", n, c)
		}
	}
	if last := AttackerAddr(MaxAttackAddrs - 1); last.String() != "198.19.255.254" {
		t.Errorf("last attacker %v", last)
	}
}
