package load

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// exactPercentile is the nearest-rank percentile of sorted samples.
func exactPercentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(float64(len(sorted))*p/100 + 0.9999999)
	rank = max(rank, 1)
	return sorted[rank-1]
}

func TestHistogramSmallValuesExact(t *testing.T) {
	var h Histogram
	// 1..100 ns, shuffled: below 256 ns every value is its own bucket.
	vals := rand.Perm(100)
	for _, v := range vals {
		h.Record(time.Duration(v + 1))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {1, 1}, {0.5, 1}, {0, 1}} {
		if got := h.Percentile(c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if h.Count() != 100 || h.Max() != 100 || h.Min() != 1 {
		t.Errorf("count %d max %v min %v", h.Count(), h.Max(), h.Min())
	}
	// mean of 1..100 is 50.5, rounded to the ns
	if m := h.Mean(); m != 51 && m != 50 {
		t.Errorf("mean %v", m)
	}
}

func TestHistogramRelativeError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dist := range []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 0-10ms", func() time.Duration { return time.Duration(rng.Int64N(int64(10 * time.Millisecond))) }},
		{"lognormal-ish", func() time.Duration {
			return time.Duration(float64(200*time.Microsecond) * (1 + rng.ExpFloat64()*rng.ExpFloat64()*20))
		}},
		{"bimodal", func() time.Duration {
			if rng.IntN(100) < 95 {
				return 300*time.Microsecond + time.Duration(rng.IntN(100_000))
			}
			return 2*time.Second + time.Duration(rng.Int64N(int64(time.Second)))
		}},
	} {
		t.Run(dist.name, func(t *testing.T) {
			var h Histogram
			samples := make([]time.Duration, 200_000)
			for i := range samples {
				samples[i] = dist.gen()
				h.Record(samples[i])
			}
			slices.Sort(samples)
			for _, p := range []float64{1, 10, 50, 90, 95, 99, 99.9, 99.99} {
				exact := exactPercentile(samples, p)
				got := h.Percentile(p)
				// Reported values are bucket upper bounds: never below the
				// true percentile, at most 1/128 above it.
				if got < exact || float64(got-exact) > float64(exact)/128+1 {
					t.Errorf("p%v = %v, exact %v (error %.3f%%)", p, got, exact, 100*float64(got-exact)/float64(exact))
				}
			}
			if h.Max() != samples[len(samples)-1] || h.Percentile(100) != h.Max() {
				t.Errorf("max %v, want %v", h.Max(), samples[len(samples)-1])
			}
		})
	}
}

func TestHistogramMergeAndEdges(t *testing.T) {
	var a, b, all Histogram
	if a.Percentile(50) != 0 || a.Mean() != 0 || a.Max() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	for i := range 1000 {
		d := time.Duration(i) * 37 * time.Microsecond
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
		all.Record(d)
	}
	a.Merge(&b)
	a.Merge(&Histogram{}) // merging an empty one changes nothing
	for _, p := range []float64{0, 25, 50, 75, 99, 100} {
		if a.Percentile(p) != all.Percentile(p) {
			t.Errorf("merged p%v = %v, want %v", p, a.Percentile(p), all.Percentile(p))
		}
	}
	if a.Count() != all.Count() || a.Mean() != all.Mean() || a.Min() != all.Min() {
		t.Errorf("merged count/mean/min differ")
	}

	var h Histogram
	h.Record(-time.Second)          // counts as 0
	h.Record(48 * time.Hour)        // beyond 2^40 ns: last bucket, max exact
	h.Record(1<<histMaxBits - 1)    // the largest value with its own bucket
	h.Record(time.Duration(1 << 9)) // an octave boundary
	if h.Min() != 0 || h.Max() != 48*time.Hour || h.Percentile(100) != 48*time.Hour {
		t.Errorf("min %v max %v", h.Min(), h.Max())
	}
	if got := h.Percentile(75); got < 1<<histMaxBits-1 || got > 48*time.Hour {
		t.Errorf("p75 %v", got)
	}
}

func TestBucketBounds(t *testing.T) {
	// Every bucket's upper bound maps back to it and the next value to the
	// next bucket: the buckets tile the range without gaps.
	for i := 0; i < histBuckets-1; i++ {
		u := bucketUpper(i)
		if bucketOf(u) != i {
			t.Fatalf("bucketOf(bucketUpper(%d)=%d) = %d", i, u, bucketOf(u))
		}
		if bucketOf(u+1) != i+1 {
			t.Fatalf("bucketOf(%d) = %d, want %d", u+1, bucketOf(u+1), i+1)
		}
	}
}

func TestParseTarget(t *testing.T) {
	ok := map[string]Target{
		"/run/authd/auth-client":  {"unix", "/run/authd/auth-client"},
		"unix:/run/x":             {"unix", "/run/x"},
		"./run/auth-client":       {"unix", "./run/auth-client"},
		"auth-client":             {"unix", "auth-client"},
		"127.0.0.1:9389":          {"tcp", "127.0.0.1:9389"},
		"127.3.2.1:143":           {"tcp", "127.3.2.1:143"},
		"[::1]:9389":              {"tcp", "[::1]:9389"},
		"localhost:9389":          {"tcp", "127.0.0.1:9389"},
		"LOCALHOST:1":             {"tcp", "127.0.0.1:1"},
		"tcp:127.0.0.1:5":         {"tcp", "127.0.0.1:5"},
		"[::ffff:127.0.0.1]:9389": {"tcp", "[::ffff:127.0.0.1]:9389"},
	}
	for in, want := range ok {
		got, err := ParseTarget(in)
		if err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	refused := []string{
		"10.0.0.1:143", "192.168.1.5:9389", "0.0.0.0:9389", "[::]:9389", "[2001:db8::1]:143",
		"example.com:143", "mail.example.com:9389", "127.0.0.1.nip.io:143", "[fe80::1%lo]:143",
		"8.8.8.8:53",
	}
	for _, in := range refused {
		if _, err := ParseTarget(in); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("ParseTarget(%q) = %v, want ErrNotLoopback", in, err)
		}
	}
	for _, in := range []string{"", "unix:", "127.0.0.1:"} {
		if _, err := ParseTarget(in); err == nil {
			t.Errorf("ParseTarget(%q) accepted", in)
		}
	}
	// A hand-built TCP target gets the same check at Run time.
	_, err := Run(t.Context(), Config{Target: Target{Network: "tcp", Address: "10.1.2.3:143"}, Protocols: Builtin(),
		Duration: time.Second, Users: &Users{Names: []string{"a"}, Passwords: []string{"b"}}})
	if !errors.Is(err, ErrNotLoopback) {
		t.Errorf("Run with a non-loopback target: %v", err)
	}
}

func TestConfigBounds(t *testing.T) {
	users, _ := GenerateUsers(3, "", "")
	base := Config{Target: Target{Network: "unix", Address: "/nonexistent"}, Protocols: Builtin(), Duration: time.Second, Users: users}
	bad := map[string]func(*Config){
		"no protocols":     func(c *Config) { c.Protocols = nil },
		"no duration":      func(c *Config) { c.Duration = 0 },
		"endless duration": func(c *Config) { c.Duration = 2 * MaxDuration },
		"too many conns":   func(c *Config) { c.Conns = MaxConns + 1 },
		"negative depth":   func(c *Config) { c.Depth = -1 },
		"share > 1":        func(c *Config) { c.WrongShare = 1.5 },
		"unknown protocol": func(c *Config) { c.Protocol = "smtp" },
		"unknown mech":     func(c *Config) { c.Mech = "CRAM-MD5" },
		"no users":         func(c *Config) { c.Users = &Users{} },
		"bad rip":          func(c *Config) { c.RemoteIP = "not-an-ip" },
		"tab in user":      func(c *Config) { c.Users = &Users{Names: []string{"a\tb"}, Passwords: []string{"x"}} },
		"negative max":     func(c *Config) { c.MaxRequests = -1 },
	}
	for name, mod := range bad {
		c := base
		mod(&c)
		if err := c.normalize(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := base
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	if c.Conns != DefaultConns || c.Depth != DefaultDepth || c.Mech != "PLAIN" || c.Protocol != "client" || c.Timeout != DefaultTimeout {
		t.Errorf("defaults not applied: %+v", c)
	}
	// gRPC is not built in: a registry without it refuses it by name.
	if _, err := Run(t.Context(), Config{Target: base.Target, Protocols: Builtin(), Protocol: "grpc", Duration: time.Second, Users: users}); err == nil ||
		!strings.Contains(err.Error(), `unknown protocol "grpc"`) {
		t.Errorf("grpc: %v", err)
	}
}

func TestUsers(t *testing.T) {
	u, err := GenerateUsers(3, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if u.Names[0] != "user00001@example.com" || u.Passwords[2] != "pw00003" {
		t.Errorf("generated %v %v", u.Names, u.Passwords)
	}
	if _, err := GenerateUsers(0, "", ""); err == nil {
		t.Error("0 users accepted")
	}
	if _, err := GenerateUsers(2, "user", "%d%d"); err == nil {
		t.Error("bad formats accepted")
	}
	f, err := ReadUsers(strings.NewReader("# comment\n\nalice@example.com\tpa:ss\nbob:pw:with:colons\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Names, []string{"alice@example.com", "bob"}) || !slices.Equal(f.Passwords, []string{"pa:ss", "pw:with:colons"}) {
		t.Errorf("read %q %q", f.Names, f.Passwords)
	}
	for _, in := range []string{"", "# only\n", "nopassword\n", ":pw\n"} {
		if _, err := ReadUsers(strings.NewReader(in)); err == nil {
			t.Errorf("ReadUsers(%q) accepted", in)
		}
	}
}
