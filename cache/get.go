package cache

import (
	"context"
	"time"
)

// Source says where an Answer came from.
type Source uint8

const (
	// FromBackend: the backend answered this request (through Do).
	FromBackend Source = iota
	// Fresh: a cached entry within its TTL answered.
	Fresh
	// Stale: the backend could not tell, and an expired entry stood in
	// for it (Dovecot's fallback to expired records).
	Stale
)

// Answer is what Get found for a key.
type Answer struct {
	// Entry is shared and read-only: clone its Fields before changing
	// them.
	Entry  *Entry
	Source Source
	// BackendErr is why the backend could not answer when Source is
	// Stale, for the caller's log and readiness.
	BackendErr error
}

// Get applies the cache's lookup rules for key (docs/protocol.md §5.9):
// a fresh entry answers at once (unless force: the caller has reason to
// think it is out of date); otherwise fn asks the backend through Do, and
// its answer is stored; when fn could not tell, an expired entry for key
// answers instead (the last known answer is better than a temporary
// failure), and only when there is none does Get return fn's error. A
// Refusal answer is returned as it is and never stored, and never makes
// way for an expired entry: it is the backend's answer.
//
// On a nil cache Get calls fn on ctx and returns its answer.
func (c *Cache) Get(ctx context.Context, key string, force bool, timeout time.Duration, fn func(ctx context.Context) (Entry, error)) (Answer, error) {
	if c == nil {
		e, err := call(ctx, fn)
		if err != nil {
			return Answer{}, err
		}
		return Answer{Entry: &e, Source: FromBackend}, nil
	}
	if c.sh.store != nil {
		if user, ok := userOfKey(key); ok {
			return c.getShared(ctx, key, user, force, timeout, fn)
		}
	}
	old, fresh, found := c.lookup(key, !force)
	if found && fresh && !force {
		return Answer{Entry: old, Source: Fresh}, nil
	}
	e, err, _ := c.Do(ctx, key, timeout, fn)
	if err == nil {
		return Answer{Entry: &e, Source: FromBackend}, nil
	}
	if !found {
		return Answer{}, err
	}
	c.noteStale()
	return Answer{Entry: old, Source: Stale, BackendErr: err}, nil
}
