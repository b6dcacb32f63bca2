package cache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeShared is an in-memory Shared store that can be taken down.
type fakeShared struct {
	mu   sync.Mutex
	down bool
	gens map[string]uint64
	recs map[string]Record
	tags map[string]Gen
	// seq is the flush sequence; genReads and seqReads count the calls.
	seq                uint64
	genReads, seqReads int
}

var errStoreDown = errors.New("store down")

func newFakeShared() *fakeShared {
	return &fakeShared{gens: map[string]uint64{}, recs: map[string]Record{}, tags: map[string]Gen{}, seq: 1}
}

func (f *fakeShared) Generation(_ context.Context, user string) (Gen, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return Gen{}, errStoreDown
	}
	f.genReads++
	return Gen{User: f.gens[user], Seq: f.seq}, nil
}

func (f *fakeShared) FlushSeq(context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, errStoreDown
	}
	f.seqReads++
	return f.seq, nil
}

func (f *fakeShared) Load(ctx context.Context, user, key string) (Record, bool, Gen, error) {
	g, err := f.Generation(ctx, user)
	if err != nil {
		return Record{}, false, g, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.recs[key]
	t := f.tags[key]
	return r, ok && t.Epoch == g.Epoch && t.User == g.User, g, nil
}

func (f *fakeShared) Save(_ context.Context, user, key string, g Gen, r Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errStoreDown
	}
	if f.gens[user] == g.User {
		f.recs[key], f.tags[key] = r, g
	}
	return nil
}

func (f *fakeShared) Invalidate(_ context.Context, users []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errStoreDown
	}
	for _, u := range users {
		f.gens[u]++
	}
	f.seq++
	return nil
}

// TestSharedDegraded: while the store cannot be asked, an L1 entry is
// used only while younger than DegradedTTL, then the backend is asked;
// when the store answers again, an entry whose user was flushed elsewhere
// is dropped before use.
func TestSharedDegraded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	c := New(Options{MaxBytes: 1 << 20, TTL: time.Hour, NegativeTTL: time.Hour, Now: clock})
	st := newFakeShared()
	c.SetShared(st, SharedOptions{DegradedTTL: 10 * time.Second})
	calls := 0
	data := "v1"
	fetch := func(context.Context) (Entry, error) {
		calls++
		return Entry{HasPassword: true, Scheme: "SSHA", Data: data}, nil
	}
	get := func() string {
		t.Helper()
		a, err := c.Get(context.Background(), "P1\tann", false, time.Second, fetch)
		if err != nil {
			t.Fatal(err)
		}
		return a.Entry.Data
	}
	get()
	st.down = true
	now = now.Add(5 * time.Second)
	if get(); calls != 1 {
		t.Fatalf("a young entry was not used while the store is down: %d backend calls", calls)
	}
	now = now.Add(6 * time.Second)
	if get(); calls != 2 {
		t.Fatalf("an entry older than DegradedTTL was used while the store is down: %d backend calls", calls)
	}
	st.down = false
	// Stored while down, under no known generation: not trusted; the
	// shared record (of the current generation) answers instead.
	if get(); calls != 2 || c.SharedStats().Dropped != 1 || c.SharedStats().Hits != 1 {
		t.Fatalf("an entry fetched under no known generation: %d calls, %+v", calls, c.SharedStats())
	}
	data = "v2"
	if err := st.Invalidate(context.Background(), []string{"ann"}); err != nil { // another process's flush
		t.Fatal(err)
	}
	if got := get(); got != "v2" || calls != 3 || c.SharedStats().Dropped != 2 {
		t.Fatalf("after a flush elsewhere: %q, %+v", got, c.SharedStats())
	}
}

// TestSharedFlushSeq: an L1 entry found current is used again on a read
// of the flush sequence alone; once the sequence moves (a flush of anyone
// anywhere) the user's generation is read again: the entry is kept when
// another user was flushed, and dropped before use when its own was.
func TestSharedFlushSeq(t *testing.T) {
	c := New(Options{MaxBytes: 1 << 20, TTL: time.Hour, NegativeTTL: time.Hour})
	st := newFakeShared()
	c.SetShared(st, SharedOptions{})
	calls := 0
	fetch := func(context.Context) (Entry, error) {
		calls++
		return Entry{HasPassword: true, Scheme: "PLAIN", Data: "pw"}, nil
	}
	get := func() {
		t.Helper()
		if _, err := c.Get(context.Background(), "P1\tann", false, time.Second, fetch); err != nil {
			t.Fatal(err)
		}
	}
	get()
	reads := st.genReads
	for range 5 {
		get()
	}
	if calls != 1 || st.genReads != reads || st.seqReads != 5 {
		t.Fatalf("5 uses of a current entry: %d backend calls, %d generation reads, %d sequence reads; want 1, %d, 5",
			calls, st.genReads, st.seqReads, reads)
	}
	if err := st.Invalidate(context.Background(), []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	get()
	get()
	if calls != 1 || st.genReads != reads+1 {
		t.Fatalf("after another user's flush: %d backend calls, %d generation reads (want 1, %d)", calls, st.genReads, reads+1)
	}
	if err := st.Invalidate(context.Background(), []string{"ann"}); err != nil {
		t.Fatal(err)
	}
	get()
	if calls != 2 || c.SharedStats().Dropped != 1 {
		t.Fatalf("after the user's own flush: %d backend calls, %+v", calls, c.SharedStats())
	}
}
