// Package fstree copies directory trees through tar streams: a VPS's private area into a
// backup or to another host, a template to another host, a checkpoint's images. It writes
// everything the files of a VPS carry (numeric owners, modes with the setuid and setgid bits,
// modification times, extended attributes: the overlay's own, POSIX ACLs, file capabilities,
// user attributes), hard links, symbolic links, devices (the overlay's whiteouts are 0:0
// character devices) and FIFOs; sockets are left out, as tar leaves them out.
//
// Extraction is safe against any stream: names must be local paths, every parent directory is
// opened with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), every entry is made under a
// temporary name in its parent and renamed into place, and metadata is set through descriptors
// or the parent's descriptor, so nothing is reached through a symbolic link the stream made or
// outside the target directory. Owners, ACLs and capabilities are moved by an idshift.Shift on
// the way (a tree copied into another VPS range).
//
// A Writer can record an Inventory of what it wrote and, on a later run, write only what
// changed since (a migration's second pass: its first ran while the VPS did).
package fstree

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/internal/idshift"
	"golang.org/x/sys/unix"
)

// paxXattr prefixes an extended attribute's name in a PAX record (GNU tar and bsdtar read it).
const paxXattr = "SCHILY.xattr."

// dropXattrs are attributes not copied: trusted.overlay.origin holds a file handle of the lower
// layer a file was copied up from, meaningless on another file system or template copy (the
// overlay only uses it to keep inode numbers stable, and tolerates its absence).
var dropXattrs = []string{"trusted.overlay.origin"}

// FileState is what tells whether a file changed between two writes of a tree.
type FileState struct {
	Ino, Size    uint64
	Mtime, Ctime int64 // nanoseconds
	Mode         uint32
}

// Inventory maps paths relative to the tree's root ("." for the root) to their state.
type Inventory map[string]FileState

// WriteOptions tune Write.
type WriteOptions struct {
	// Prefix is prepended to every entry name ("private" writes private, private/etc, ...);
	// "" writes the root as "." and the rest without a prefix.
	Prefix string
	// Since, if not nil, leaves out files unchanged since it was recorded (directories are
	// always written: their metadata is cheap and a changed child needs them).
	Since Inventory
	// Record, if not nil, receives the state of every entry of the tree (written or not).
	Record Inventory
}

// TarWriter is what Write writes to: a *tar.Writer, or one that also digests what passes.
type TarWriter interface {
	WriteHeader(hdr *tar.Header) error
	Write(b []byte) (int, error)
}

// Write writes the tree at root into tw. Files that change while they are read are written
// as far as the header says (padded if they shrank); their new state shows in a later
// Inventory comparison.
func Write(tw TarWriter, root string, o WriteOptions) error {
	w := &writer{tw: tw, root: root, o: o, links: map[[2]uint64]string{}}
	return w.walk(".")
}

type writer struct {
	tw    TarWriter
	root  string
	o     WriteOptions
	links map[[2]uint64]string // (dev, ino) of a multiply linked file -> its first entry name
}

func (w *writer) name(rel string) string {
	switch {
	case w.o.Prefix == "":
		return rel
	case rel == ".":
		return w.o.Prefix
	}
	return w.o.Prefix + "/" + rel
}

func (w *writer) walk(rel string) error {
	p := filepath.Join(w.root, rel)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) && rel != "." {
			return nil // removed while the tree was walked (a running VPS's)
		}
		return &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	state := FileState{Ino: st.Ino, Size: uint64(st.Size), Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Mode: st.Mode}
	if w.o.Record != nil {
		w.o.Record[rel] = state
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if w.o.Since != nil && !isDir {
		if prev, ok := w.o.Since[rel]; ok && prev == state {
			return nil
		}
	}
	if err := w.entry(rel, p, &st); err != nil {
		return err
	}
	if !isDir {
		return nil
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if err := w.walk(path.Join(rel, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) entry(rel, p string, st *unix.Stat_t) error {
	hdr := &tar.Header{Name: w.name(rel), Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()).UTC(), Format: tar.FormatPAX}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		if st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := w.links[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				w.links[key] = hdr.Name
			}
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets: nothing to copy
	}
	xs, err := readXattrs(p)
	if err != nil {
		return err
	}
	if len(xs) > 0 {
		hdr.PAXRecords = map[string]string{}
		for k, v := range xs {
			hdr.PAXRecords[paxXattr+k] = v
		}
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyN(w.tw, f, hdr.Size)
	if err != nil && err != io.EOF {
		return fmt.Errorf("%s: %w", p, err)
	}
	if n < hdr.Size { // shrank while it was read
		if _, err := io.CopyN(w.tw, zeros{}, hdr.Size-n); err != nil {
			return err
		}
	}
	return nil
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// readXattrs returns the extended attributes of p (not following a symbolic link).
func readXattrs(p string) (map[string]string, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			err = nil
		}
		return nil, err
	}
	buf := make([]byte, sz)
	if sz, err = unix.Llistxattr(p, buf); err != nil {
		return nil, &os.PathError{Op: "llistxattr", Path: p, Err: err}
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" || slices.Contains(dropXattrs, name) {
			continue
		}
		vsz, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			continue // removed meanwhile
		}
		v := make([]byte, vsz)
		if vsz, err = unix.Lgetxattr(p, name, v); err != nil {
			continue
		}
		out[name] = string(v[:vsz])
	}
	return out, nil
}

// Extractor writes tar entries into a directory (see the package doc for its safety).
type Extractor struct {
	root  int // O_PATH descriptor of the target directory
	dir   string
	shift idshift.Shift
	dirs  []dirTime
	tmpN  int
}

type dirTime struct {
	rel   string
	mtime time.Time
}

// NewExtractor extracts into existing directory dir, moving owners by shift.
func NewExtractor(dir string, shift idshift.Shift) (*Extractor, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &Extractor{root: fd, dir: dir, shift: shift}, nil
}

// ErrBadEntry reports a tar entry that cannot be extracted safely (a name that is not a local
// path, a hard link to outside the tree, an unknown type).
var ErrBadEntry = errors.New("bad archive entry")

// Close sets the modification times of the directories extracted (their children changed
// them) and lets go of the target directory.
func (x *Extractor) Close() error {
	var first error
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		ts := []unix.Timespec{unix.NsecToTimespec(d.mtime.UnixNano()), unix.NsecToTimespec(d.mtime.UnixNano())}
		if err := x.at(d.rel, func(pfd int, name string) error {
			return unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
		}); err != nil && first == nil {
			first = err
		}
	}
	x.dirs = nil
	unix.Close(x.root)
	return first
}

// clean checks an entry name and returns it relative to the target ("." for the target).
func clean(name string) (string, error) {
	n := path.Clean(strings.TrimPrefix(name, "./"))
	if n == "." || filepath.IsLocal(n) {
		return n, nil
	}
	return "", fmt.Errorf("%w: name %q", ErrBadEntry, name)
}

// at runs f with a descriptor of rel's parent directory, opened beneath the target without
// following any symbolic link, and rel's last component ("." for the target itself).
func (x *Extractor) at(rel string, f func(pfd int, name string) error) error {
	if rel == "." {
		return f(x.root, ".")
	}
	dir, name := path.Split(rel)
	pfd := x.root
	if dir != "" {
		var err error
		pfd, err = unix.Openat2(x.root, strings.TrimSuffix(dir, "/"), &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
		if err != nil {
			return &os.PathError{Op: "openat2", Path: filepath.Join(x.dir, dir), Err: err}
		}
		defer unix.Close(pfd)
	}
	return f(pfd, name)
}

// Entry extracts one entry whose (already checked by Entry) name is hdr.Name and whose content
// is r.
func (x *Extractor) Entry(hdr *tar.Header, r io.Reader) error {
	rel, err := clean(hdr.Name)
	if err != nil {
		return err
	}
	return x.at(rel, func(pfd int, name string) error { return x.entry(pfd, name, rel, hdr, r) })
}

func (x *Extractor) entry(pfd int, name, rel string, hdr *tar.Header, r io.Reader) error {
	uid, gid := int(x.shift.ID(uint32(hdr.Uid))), int(x.shift.ID(uint32(hdr.Gid)))
	mode := uint32(hdr.Mode & 0o7777)
	if hdr.Typeflag == tar.TypeDir {
		return x.dirEntry(pfd, name, rel, hdr, uid, gid, mode)
	}
	if name == "." {
		return fmt.Errorf("%w: %q is the target but not a directory", ErrBadEntry, hdr.Name)
	}
	x.tmpN++
	tmp := fmt.Sprintf(".fstree-%d-%d", os.Getpid(), x.tmpN)
	made := false
	defer func() {
		if made {
			unix.Unlinkat(pfd, tmp, 0)
		}
	}()
	switch hdr.Typeflag {
	case tar.TypeReg:
		fd, err := unix.Openat(pfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return x.err("create", rel, err)
		}
		made = true
		f := os.NewFile(uintptr(fd), rel)
		_, err = io.Copy(f, r)
		if err == nil {
			err = x.meta(fd, -1, "", hdr, uid, gid, mode)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(x.dir, rel), err)
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, tmp); err != nil {
			return x.err("symlink", rel, err)
		}
		made = true
		if err := x.meta(-1, pfd, tmp, hdr, uid, gid, mode); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(x.dir, rel), err)
		}
	case tar.TypeLink:
		target, err := clean(hdr.Linkname)
		if err != nil || target == "." {
			return fmt.Errorf("%w: hard link %q to %q", ErrBadEntry, hdr.Name, hdr.Linkname)
		}
		if err := x.at(target, func(tpfd int, tname string) error {
			return unix.Linkat(tpfd, tname, pfd, tmp, 0) // 0: a link to a symbolic link is to the link
		}); err != nil {
			return x.err("link", rel, err)
		}
		made = true
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		if err := unix.Mknodat(pfd, tmp, kind|0o600, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return x.err("mknod", rel, err)
		}
		made = true
		if err := x.meta(-1, pfd, tmp, hdr, uid, gid, mode); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(x.dir, rel), err)
		}
	default:
		return fmt.Errorf("%w: %q has type %q", ErrBadEntry, hdr.Name, hdr.Typeflag)
	}
	err := unix.Renameat(pfd, tmp, pfd, name)
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
		// A directory where the entry goes (the tree changed kind there): it goes first.
		if err = removeAt(pfd, name); err == nil {
			err = unix.Renameat(pfd, tmp, pfd, name)
		}
	}
	if err != nil {
		return x.err("rename", rel, err)
	}
	made = false
	return nil
}

func (x *Extractor) dirEntry(pfd int, name, rel string, hdr *tar.Header, uid, gid int, mode uint32) error {
	if name != "." {
		err := unix.Mkdirat(pfd, name, 0o700)
		if errors.Is(err, unix.EEXIST) {
			var st unix.Stat_t
			if err = unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				if err = removeAt(pfd, name); err == nil {
					err = unix.Mkdirat(pfd, name, 0o700)
				}
			}
		}
		if err != nil {
			return x.err("mkdir", rel, err)
		}
	}
	fd, err := unix.Openat2(pfd, name, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		return x.err("open", rel, err)
	}
	defer unix.Close(fd)
	if err := x.meta(fd, -1, "", hdr, uid, gid, mode); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(x.dir, rel), err)
	}
	x.dirs = append(x.dirs, dirTime{rel: rel, mtime: hdr.ModTime})
	return nil
}

// meta sets owner, then mode (chown clears setuid and setgid) and extended attributes (chown
// drops a file capability), then the modification time, through descriptor fd, or else on
// name in directory pfd without following it.
func (x *Extractor) meta(fd, pfd int, name string, hdr *tar.Header, uid, gid int, mode uint32) error {
	if fd >= 0 {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return os.NewSyscallError("fchown", err)
		}
		if err := unix.Fchmod(fd, mode); err != nil {
			return os.NewSyscallError("fchmod", err)
		}
	} else {
		if err := unix.Fchownat(pfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return os.NewSyscallError("fchownat", err)
		}
		if hdr.Typeflag != tar.TypeSymlink { // a link's mode is always 0777
			if err := unix.Fchmodat(pfd, name, mode, 0); err != nil {
				return os.NewSyscallError("fchmodat", err)
			}
		}
	}
	for k, v := range hdr.PAXRecords {
		xname, ok := strings.CutPrefix(k, paxXattr)
		if !ok || slices.Contains(dropXattrs, xname) {
			continue
		}
		val := x.shift.Xattr(xname, []byte(v))
		var err error
		if fd >= 0 {
			err = unix.Fsetxattr(fd, xname, val, 0)
		} else {
			// The parent through its descriptor's magic link, the entry itself not followed.
			err = unix.Lsetxattr(fmt.Sprintf("/proc/self/fd/%d/%s", pfd, name), xname, val, 0)
		}
		if err != nil {
			return fmt.Errorf("set xattr %s: %w", xname, err)
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil // Close sets it, once the children are in
	}
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if fd >= 0 {
		return unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
	}
	return unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func (x *Extractor) err(op, rel string, err error) error {
	return &os.PathError{Op: op, Path: filepath.Join(x.dir, rel), Err: err}
}

// Remove removes rel (a whole directory tree if it is one) from the target, following no link;
// a path that does not exist is no error.
func (x *Extractor) Remove(rel string) error {
	rel, err := clean(rel)
	if err != nil || rel == "." {
		return fmt.Errorf("%w: remove %q", ErrBadEntry, rel)
	}
	err = x.at(rel, func(pfd int, name string) error { return removeAt(pfd, name) })
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// removeAt removes name in directory dfd, recursively, never following a symbolic link.
func removeAt(dfd int, name string) error {
	err := unix.Unlinkat(dfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAt(fd, n); err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR)
}
