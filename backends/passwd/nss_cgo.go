//go:build cgo && !osusergo

package passwd

/*
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>

// authd_getpwent returns the next user name of the enumeration, 0 at its
// end, or an errno value (ERANGE: buf is too small for this entry).
static int authd_getpwent(char *buf, size_t len, char **name) {
	struct passwd pw, *res = NULL;
	int rc = getpwent_r(&pw, buf, len, &res);
	if (rc == ENOENT || (rc == 0 && res == NULL)) {
		*name = NULL;
		return 0;
	}
	if (rc != 0) {
		return rc;
	}
	*name = pw.pw_name;
	return 0;
}
*/
import "C"

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"unsafe"
)

// With cgo (and without the osusergo tag, which forces os/user's pure-Go
// code), os/user looks users up with getpwnam_r, i.e. through NSS.
const usesNSS = true

// pwentMu serializes enumerations: setpwent/getpwent_r/endpwent share one
// position per process.
var pwentMu sync.Mutex

// maxPwentBuf bounds the buffer one entry may need (a group-heavy LDAP
// entry can exceed the usual 1 KiB); larger entries are an error.
const maxPwentBuf = 1 << 20

// iterate lists the users NSS enumerates, as Dovecot's userdb passwd
// does with getpwent. An NSS module that does not enumerate (sssd with
// enumerate = false, the default) contributes nobody.
func (d *DB) iterate(ctx context.Context, fn func(user string) bool) error {
	pwentMu.Lock()
	defer pwentMu.Unlock()
	C.setpwent()
	defer C.endpwent()
	size := C.size_t(4096)
	buf := (*C.char)(C.malloc(size))
	defer func() { C.free(unsafe.Pointer(buf)) }()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var name *C.char
		rc := C.authd_getpwent(buf, size, &name)
		if rc == C.ERANGE && size < maxPwentBuf {
			// The entry is retried with a larger buffer (glibc keeps the
			// position on ERANGE).
			size *= 4
			C.free(unsafe.Pointer(buf))
			buf = (*C.char)(C.malloc(size))
			continue
		}
		if rc != 0 {
			return fmt.Errorf("passwd: getpwent: %w", syscall.Errno(rc))
		}
		if name == nil {
			return nil
		}
		if !fn(C.GoString(name)) {
			return nil
		}
	}
}
