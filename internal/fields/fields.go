// Package fields holds the ordered key=value lists that passdbs and userdbs
// return and that the Dovecot protocols send back ("extra fields").
//
// Order matters: Dovecot writes extra fields in the order they were set
// (docs/protocol.md §1.5), and real clients such as doveadm print them in that
// order, so a map would not do.
package fields

import "strings"

// Field is one extra field. An empty Value is written as a bare key, which
// is how Dovecot sends boolean fields such as nologin or nodelay.
type Field struct {
	Key   string
	Value string
}

// Fields is an ordered list of fields with unique keys.
type Fields []Field

// Get returns the value of key and whether it is set.
func (f Fields) Get(key string) (string, bool) {
	for i := range f {
		if f[i].Key == key {
			return f[i].Value, true
		}
	}
	return "", false
}

// Lookup is Get under the name the variable expander expects.
func (f Fields) Lookup(key string) (string, bool) { return f.Get(key) }

// Has reports whether key is set.
func (f Fields) Has(key string) bool {
	_, ok := f.Get(key)
	return ok
}

// Set replaces the value of key in place, or appends it. Replacing in place
// keeps the position the field first had, as Dovecot's auth_fields do.
func (f *Fields) Set(key, value string) {
	for i := range *f {
		if (*f)[i].Key == key {
			(*f)[i].Value = value
			return
		}
	}
	*f = append(*f, Field{Key: key, Value: value})
}

// SetDefault sets key only when it is not set yet (Dovecot's key:protected).
func (f *Fields) SetDefault(key, value string) {
	if !f.Has(key) {
		*f = append(*f, Field{Key: key, Value: value})
	}
}

// Del removes key if present.
func (f *Fields) Del(key string) {
	for i := range *f {
		if (*f)[i].Key == key {
			*f = append((*f)[:i], (*f)[i+1:]...)
			return
		}
	}
}

// Clone returns a copy that shares nothing with f.
func (f Fields) Clone() Fields {
	if f == nil {
		return nil
	}
	out := make(Fields, len(f))
	copy(out, f)
	return out
}

// String renders the fields as space-separated key=value pairs, for logs
// and tests. Values of keys that look like secrets are hidden.
func (f Fields) String() string {
	var b strings.Builder
	for i, fl := range f {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fl.Key)
		if fl.Value != "" {
			b.WriteByte('=')
			if IsSecretKey(fl.Key) {
				b.WriteString("<hidden>")
			} else {
				b.WriteString(fl.Value)
			}
		}
	}
	return b.String()
}

// IsSecretKey reports whether a field's value must never be logged: Dovecot
// hides every field whose key contains "pass" (docs/protocol.md §5.10);
// authd also hides "token", the bearer token the oauth2 passdb returns
// (house rule 3).
func IsSecretKey(key string) bool {
	k := strings.ToLower(key)
	return strings.Contains(k, "pass") || k == "token"
}
