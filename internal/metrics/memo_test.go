package metrics

import (
	"strconv"
	"sync"
	"testing"
)

// A memo resolves a key once, answers it from its map after, and stops
// growing at memoMax keys while still answering the rest.
func TestMemo(t *testing.T) {
	var c memo[string, int]
	var mu sync.Mutex
	resolved := map[string]int{}
	resolve := func(k string) int {
		mu.Lock()
		defer mu.Unlock()
		resolved[k]++
		n, _ := strconv.Atoi(k)
		return n * 2
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range memoMax + 100 {
				if got := c.get(strconv.Itoa(i), resolve); got != 2*i {
					t.Errorf("get(%d) = %d", i, got)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := len(*c.m.Load()); n != memoMax {
		t.Errorf("%d keys remembered, want %d", n, memoMax)
	}
	if resolved["7"] > 4 {
		t.Errorf("key 7 resolved %d times by 4 goroutines", resolved["7"])
	}
	before := resolved["3"]
	c.get("3", resolve)
	if resolved["3"] != before {
		t.Error("a remembered key was resolved again")
	}
	c.get(strconv.Itoa(memoMax+50), resolve)
	if resolved[strconv.Itoa(memoMax+50)] < 5 {
		t.Error("a key past the bound was remembered")
	}
}
