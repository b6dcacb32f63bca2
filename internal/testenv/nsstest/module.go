//go:build cgo

package nsstest

// moduleC is the NSS module: one user, named and numbered by -D flags at
// compile time, answering getpwnam_r, getpwuid_r and the getpwent_r
// enumeration, as any passwd module of glibc's NSS does.
const moduleC = `#include <errno.h>
#include <nss.h>
#include <pwd.h>
#include <string.h>

static int walked;

static enum nss_status fill(struct passwd *pw, char *buf, size_t len, int *errnop) {
	const char *src[] = {USER_NAME, "x", "", HOME_DIR, "/usr/sbin/nologin"};
	char *dst[5];
	size_t used = 0;
	for (int i = 0; i < 5; i++) {
		size_t n = strlen(src[i]) + 1;
		if (used + n > len) {
			*errnop = ERANGE;
			return NSS_STATUS_TRYAGAIN;
		}
		memcpy(buf + used, src[i], n);
		dst[i] = buf + used;
		used += n;
	}
	pw->pw_name = dst[0];
	pw->pw_passwd = dst[1];
	pw->pw_gecos = dst[2];
	pw->pw_dir = dst[3];
	pw->pw_shell = dst[4];
	pw->pw_uid = USER_UID;
	pw->pw_gid = USER_GID;
	return NSS_STATUS_SUCCESS;
}

enum nss_status _nss_authdtest_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t len, int *errnop) {
	if (strcmp(name, USER_NAME) != 0)
		return NSS_STATUS_NOTFOUND;
	return fill(pw, buf, len, errnop);
}

enum nss_status _nss_authdtest_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t len, int *errnop) {
	if (uid != USER_UID)
		return NSS_STATUS_NOTFOUND;
	return fill(pw, buf, len, errnop);
}

enum nss_status _nss_authdtest_setpwent(int stayopen) {
	walked = 0;
	return NSS_STATUS_SUCCESS;
}

enum nss_status _nss_authdtest_endpwent(void) {
	return NSS_STATUS_SUCCESS;
}

enum nss_status _nss_authdtest_getpwent_r(struct passwd *pw, char *buf, size_t len, int *errnop) {
	if (walked)
		return NSS_STATUS_NOTFOUND;
	enum nss_status st = fill(pw, buf, len, errnop);
	if (st == NSS_STATUS_SUCCESS)
		walked = 1;
	return st;
}
`
