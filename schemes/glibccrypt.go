//go:build cgo && glibccrypt

package schemes

// A cgo binding to the system crypt_r() (libxcrypt on Debian 12, the
// library Dovecot's CRYPT verifier calls), built only with the glibccrypt
// tag so that the default build stays pure Go. Used by the reference
// benchmark and the differential test in glibccrypt_test.go.

/*
#cgo LDFLAGS: -lcrypt
#include <crypt.h>
#include <stdlib.h>
#include <string.h>

static struct crypt_data *authd_new_crypt_data(void) {
	return calloc(1, sizeof(struct crypt_data));
}

static int authd_crypt_r(const char *pw, const char *setting, struct crypt_data *d, char *out, size_t outlen) {
	char *r = crypt_r(pw, setting, d);
	if (r == NULL) return -1;
	size_t n = strlen(r);
	if (n >= outlen) return -1;
	memcpy(out, r, n + 1);
	return (int)n;
}
*/
import "C"

import "unsafe"

// libcCrypter holds one crypt_data (about 32 KiB) for repeated calls.
type libcCrypter struct {
	data *C.struct_crypt_data
	pw   *C.char
	set  *C.char
	out  [512]C.char
}

func newLibcCrypter() *libcCrypter {
	return &libcCrypter{data: C.authd_new_crypt_data()}
}

// prepare copies the arguments into C memory once (for benchmarks).
func (c *libcCrypter) prepare(pw, setting string) {
	c.free()
	c.pw, c.set = C.CString(pw), C.CString(setting)
}

// run calls crypt_r on the prepared arguments.
func (c *libcCrypter) run() string {
	n := C.authd_crypt_r(c.pw, c.set, c.data, &c.out[0], C.size_t(len(c.out)))
	if n < 0 {
		return ""
	}
	return C.GoStringN(&c.out[0], n)
}

func (c *libcCrypter) crypt(pw, setting string) string {
	c.prepare(pw, setting)
	return c.run()
}

func (c *libcCrypter) free() {
	if c.pw != nil {
		C.free(unsafe.Pointer(c.pw))
		C.free(unsafe.Pointer(c.set))
		c.pw, c.set = nil, nil
	}
}

func (c *libcCrypter) close() {
	c.free()
	C.free(unsafe.Pointer(c.data))
}
