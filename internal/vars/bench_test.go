package vars

import "testing"

// The hot path: templates parsed at load time, expanded per request.
// Expand costs one allocation (the result string) when the result fits
// the 256-byte stack buffer; AppendExpand into a reused buffer costs none.
func BenchmarkExpand(b *testing.B) {
	c := &Context{User: "Alice.Smith@Example.COM", Service: "imap", LocalIP: "192.0.2.1", PassdbID: 1}
	for _, tmpl := range []string{"%Lu", "/var/mail/%d/%n", "/var/mail/%Ld/%Ln/%2.1Mn", "SELECT password FROM users WHERE userid='%n' AND domain='%d'"} {
		tp := MustParse(tmpl)
		b.Run("Expand/"+tmpl, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = tp.Expand(c, nil)
			}
		})
		b.Run("AppendExpand/"+tmpl, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 256)
			for b.Loop() {
				buf = tp.AppendExpand(buf[:0], c, nil)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = Parse("home=/var/mail/%Ld/%Ln/%2.1Mn%{passdb:x:y}")
	}
}

func BenchmarkExpandCacheKey(b *testing.B) {
	c := &Context{User: "alice@example.com", Service: "imap", PassdbID: 1}
	key := CacheKeyOf(MustParse("SELECT password FROM users WHERE userid='%n' AND domain='%d' AND svc='%s'"))
	b.ReportAllocs()
	for b.Loop() {
		_ = key.ExpandCacheKey(c, false)
	}
}
