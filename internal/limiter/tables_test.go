package limiter

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// TestTableArena: a small table is an ordinary allocation; larger ones
// are cut from a chunk that starts on a huge page, zeroed, each with no
// room to grow into its neighbour; one of a chunk's size or more is its
// own allocation.
func TestTableArena(t *testing.T) {
	var a tableArena
	if s := a.alloc(64); len(s) != 64 || a.rest != nil {
		t.Fatalf("a small table: len %d, chunk made %v", len(s), a.rest != nil)
	}
	first := a.alloc(smallTable)
	if addr := uintptr(unsafe.Pointer(&first[0])); addr%hugePage != 0 {
		t.Fatalf("the first table of a chunk at %#x, not on a huge page", addr)
	}
	second := a.alloc(2 * smallTable)
	if len(first) != smallTable || cap(first) != smallTable || len(second) != 2*smallTable {
		t.Fatalf("lengths %d (cap %d) and %d", len(first), cap(first), len(second))
	}
	end := uintptr(unsafe.Pointer(&first[0])) + uintptr(smallTable*entrySize)
	if got := uintptr(unsafe.Pointer(&second[0])); got != end {
		t.Fatalf("the second table at %#x, want it right after the first (%#x)", got, end)
	}
	for i := range first {
		first[i].id = keyID{a: 1, b: uint64(i)}
	}
	for i := range second {
		if second[i] != (entry{}) {
			t.Fatalf("entry %d of a new table is not zero", i)
		}
	}
	big := a.alloc(hugeChunk/entrySize + 1)
	if len(big) != hugeChunk/entrySize+1 {
		t.Fatalf("a large table's length %d", len(big))
	}
	// A chunk's tables fill it before another is made, which starts on
	// a huge page again.
	last := second
	for len(a.rest) >= smallTable {
		next := a.alloc(smallTable)
		if got, want := uintptr(unsafe.Pointer(&next[0])), uintptr(unsafe.Pointer(&last[0]))+uintptr(len(last)*entrySize); got != want {
			t.Fatalf("a table at %#x while the chunk had room at %#x", got, want)
		}
		last = next
	}
	if next := a.alloc(smallTable); uintptr(unsafe.Pointer(&next[0]))%hugePage != 0 {
		t.Fatal("the next chunk does not start on a huge page")
	}
}

// TestTablesOnHugePages: where the kernel offers transparent huge pages
// for advised memory, a chunk's tables are backed by them.
func TestTablesOnHugePages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("huge pages are asked for on Linux only")
	}
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("this kernel offers no transparent huge pages (%q, %v)", mode, err)
	}
	var a tableArena
	table := a.alloc(hugePage / entrySize)
	for i := range table {
		table[i].used = 1
	}
	addr := uintptr(unsafe.Pointer(&table[0]))
	kb, err := anonHugeKB(addr)
	if err != nil {
		t.Fatal(err)
	}
	if kb < hugePage>>10 {
		t.Fatalf("the table at %#x is backed by %d kB of huge pages, want at least %d", addr, kb, hugePage>>10)
	}
	runtime.KeepAlive(table)
}

// anonHugeKB is the AnonHugePages of the mapping that holds addr.
func anonHugeKB(addr uintptr) (int, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 {
			in = addr >= lo && addr < hi
			continue
		}
		var kb int
		if in && strings.HasPrefix(line, "AnonHugePages:") {
			if _, err := fmt.Sscanf(line, "AnonHugePages: %d kB", &kb); err != nil {
				return 0, err
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("no mapping holds %#x: %v", addr, sc.Err())
}
