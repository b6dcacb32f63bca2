package cache

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/fields"
)

// Realistic entries: what a SQL or passwd-file passdb returns for a
// virtual user with a SHA512-CRYPT hash and prefetch fields, what a userdb
// returns, and a negative entry.
func passdbEntry(i int) (string, Entry) {
	user := fmt.Sprintf("user%07d@example.com", i)
	return "P1\t" + user, Entry{
		HasPassword: true,
		Scheme:      "SHA512-CRYPT",
		// $6$ + 16-byte salt + $ + 86-byte hash: 106 bytes.
		Data: "$6$" + fmt.Sprintf("%016d", i) + "$" + strings.Repeat("x", 79) + fmt.Sprintf("%07d", i),
		Fields: fields.Fields{
			{Key: "userdb_home", Value: "/var/mail/example.com/" + user[:11]},
			{Key: "userdb_uid", Value: "5000"},
			{Key: "userdb_gid", Value: "5000"},
		},
	}
}

func userdbEntry(i int) (string, Entry) {
	user := fmt.Sprintf("user%07d@example.com", i)
	return "U1\t" + user, Entry{Fields: fields.Fields{
		{Key: "uid", Value: "5000"},
		{Key: "gid", Value: "5000"},
		{Key: "home", Value: "/var/mail/example.com/" + user[:11]},
		{Key: "mail", Value: "maildir:~/Maildir"},
	}}
}

func negativeEntry(i int) (string, Entry) {
	return fmt.Sprintf("P1\tuser%07d@example.com", i), Entry{Negative: true}
}

// TestMemoryPerEntry stores 1M entries of each kind and compares the heap
// they really take (runtime.MemStats.HeapAlloc after a GC, so the
// caller-side garbage is gone) with the cache's accounted Bytes. This is
// the measurement nodeCost and fieldCost were fitted to; the accounted
// size must stay within 30% of the real cost, or auth_cache_size would
// not mean what operators think it means.
func TestMemoryPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("1M entries: skipped with -short")
	}
	if raceEnabled {
		t.Skip("the race detector changes allocation; run without -race")
	}
	const n = 1_000_000
	for _, tc := range []struct {
		name string
		make func(int) (string, Entry)
	}{
		{"passdb", passdbEntry},
		{"userdb", userdbEntry},
		{"negative", negativeEntry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			heap0, rss0 := memNow()
			c := New(Options{MaxBytes: 1 << 40, TTL: time.Hour, NegativeTTL: time.Hour, Fingerprint: true})
			for i := range n {
				k, e := tc.make(i)
				c.Store(k, e)
			}
			heap1, rss1 := memNow()
			st := c.Stats()
			if st.Entries != n {
				t.Fatalf("%d entries", st.Entries)
			}
			real := float64(heap1-heap0) / n
			accounted := float64(st.Bytes) / n
			k, e := tc.make(n / 2)
			strs := float64(entrySize(k, &e) - nodeCost - int64(len(e.Fields))*fieldCost)
			t.Logf("%s: accounted %.0f B/entry, heap %.0f B/entry (ratio %.2f), RSS %.0f B/entry; strings %.0f B",
				tc.name, accounted, real, accounted/real, float64(rss1-rss0)/n, strs)
			if r := accounted / real; r < 0.7 || r > 1.3 {
				t.Errorf("accounted size is %.0f%% of the real heap cost", r*100)
			}
			runtime.KeepAlive(c)
		})
	}
}

// memNow returns HeapAlloc after a full GC, and the process's RSS.
func memNow() (heap, rss uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, readRSS()
}

func readRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
