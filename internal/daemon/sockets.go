package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/authd-project/authd/internal/config"
)

// Unix sockets on the file system, made without ever following a link an
// attacker planted. Socket directories are often writable by others (the
// postfix user owns /var/spool/postfix/private): a chmod or chown by path
// there could be aimed, through a symlink, at any file. So a socket is
// made in a private directory of authd's own, given its mode and owner
// there, and renamed into place; later changes (a reload) go through a
// descriptor opened without following links and checked to be the very
// socket authd made; and a path that is not that socket is refused, never
// changed or removed.

// sockFile is a socket authd made: its path and identity.
type sockFile struct {
	path     string
	dev, ino uint64
}

// listenUnix creates the socket of lc with its mode and owner.
func listenUnix(lc config.Listener, loginUser string) (*net.UnixListener, *sockFile, error) {
	path := lc.Path
	wrap := func(err error) error { return fmt.Errorf("listener %s: %w", path, err) }
	if err := makeSocketDir(lc, loginUser); err != nil {
		return nil, nil, wrap(err)
	}
	if err := clearStale(path); err != nil {
		return nil, nil, wrap(err)
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".authd-")
	if err != nil {
		return nil, nil, wrap(err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, wrap(err)
	}
	ln.SetUnlinkOnClose(false)
	sf := &sockFile{path: tmp}
	err = sf.identify()
	if err == nil {
		err = sf.setOwnerMode(lc, loginUser)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = ln.Close()
		return nil, nil, wrap(err)
	}
	sf.path = path
	return ln, sf, nil
}

// clearStale removes a dead socket at path. Anything else there (a file,
// a link, a live socket) is an error: it is not authd's to replace.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return errors.New("the path exists and is not a socket")
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return errors.New("another process is listening on this socket")
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	return nil
}

// identify records the device and inode of the socket at sf.path.
func (sf *sockFile) identify() error {
	var st unix.Stat_t
	if err := unix.Lstat(sf.path, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return errors.New("not a socket")
	}
	sf.dev, sf.ino = st.Dev, st.Ino
	return nil
}

// open returns a descriptor of the socket, opened without following a
// link, and checked to be the socket authd made.
func (sf *sockFile) open() (int, error) {
	fd, err := unix.Open(sf.path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Dev != sf.dev || st.Ino != sf.ino {
		unix.Close(fd)
		return -1, errors.New("the path is no longer authd's socket (replaced by something else); not touching it")
	}
	return fd, nil
}

// setOwnerMode gives the socket lc's mode and owner, through a descriptor:
// the change reaches that socket or nothing.
func (sf *sockFile) setOwnerMode(lc config.Listener, loginUser string) error {
	uid, gid, err := socketOwner(lc)
	if err != nil {
		return fmt.Errorf("listener %s: %w", lc.Path, err)
	}
	fd, err := sf.open()
	if err != nil {
		return fmt.Errorf("listener %s: %w", lc.Path, err)
	}
	defer unix.Close(fd)
	// An O_PATH descriptor cannot be fchmod'ed; its /proc name reaches
	// the inode it was opened on, which is not a link that can be
	// swapped.
	proc := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Chmod(proc, uint32(lc.Mode.Perm())); err != nil {
		return fmt.Errorf("listener %s: chmod: %w", lc.Path, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("listener %s: chown: %w", lc.Path, err)
		}
	}
	if lc.Role == config.RoleLogin && lc.Group == "" {
		// The login processes' group, when authd may give it (root or
		// CAP_CHOWN; the demo run by a user may not, and needs not).
		if lg := loginGID(loginUser); lg >= 0 {
			if err := unix.Fchownat(fd, "", -1, lg, unix.AT_EMPTY_PATH); err != nil && !errors.Is(err, unix.EPERM) {
				return fmt.Errorf("listener %s: chown: %w", lc.Path, err)
			}
		}
	}
	return nil
}

// remove unlinks the socket if the path still is authd's socket.
func (sf *sockFile) remove() {
	if sf == nil {
		return
	}
	fd, err := sf.open()
	if err != nil {
		return
	}
	unix.Close(fd)
	_ = os.Remove(sf.path)
}

// socketOwner is the owner configured for a listener's socket (-1: leave
// it). A login socket without a configured group also goes to
// default_login_user's group (setOwnerMode), as Dovecot's login directory
// does: the login processes run as that user and must reach it.
func socketOwner(lc config.Listener) (uid, gid int, err error) {
	uid, gid = -1, -1
	if lc.User != "" {
		u, err := user.Lookup(lc.User)
		if err != nil {
			return 0, 0, fmt.Errorf("user %s: %w", lc.User, err)
		}
		uid, _ = strconv.Atoi(u.Uid)
	}
	if lc.Group != "" {
		g, err := user.LookupGroup(lc.Group)
		if err != nil {
			return 0, 0, fmt.Errorf("group %s: %w", lc.Group, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	return uid, gid, nil
}

// loginGID is the primary group of default_login_user, or -1 when there is
// no such user (a machine without Dovecot: the socket keeps authd's group).
func loginGID(loginUser string) int {
	if loginUser == "" {
		return -1
	}
	u, err := user.Lookup(loginUser)
	if err != nil {
		return -1
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return -1
	}
	return gid
}

// makeSocketDir creates the socket's directory (0755). A login socket's
// own subdirectory (login/ under base_dir) is Dovecot's login directory:
// 0750, group default_login_user's, so that only the login processes can
// reach the sockets in it — what a login socket trusts (rip, no-penalty)
// must not come from any local user.
func makeSocketDir(lc config.Listener, loginUser string) error {
	dir := filepath.Dir(lc.Path)
	if lc.Role != config.RoleLogin || filepath.Base(dir) != "login" {
		return os.MkdirAll(dir, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, 0o750); err != nil {
		return fmt.Errorf("%s: chmod: %w", dir, err)
	}
	if gid := loginGID(loginUser); gid >= 0 {
		// As for the login socket: when authd may (root or CAP_CHOWN).
		if err := unix.Fchown(fd, -1, gid); err != nil && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("%s: chown: %w", dir, err)
		}
	}
	return nil
}
