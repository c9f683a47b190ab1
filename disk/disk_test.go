package disk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func statfs(t testing.TB, path string) (size, used, avail uint64) {
	t.Helper()
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		t.Fatal(err)
	}
	bs := uint64(s.Bsize)
	return s.Blocks * bs, (s.Blocks - s.Bfree) * bs, s.Bavail * bs
}

func fileSize(t testing.TB, path string) (size, allocated int64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Size, st.Blocks * 512
}

// writeFile writes n MiB of varied bytes to path and returns their digest.
func writeFile(t testing.TB, path string, n int) [32]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for i := 0; i < n; i++ {
		for j := range buf {
			buf[j] = byte(i*7 + j*13 + j>>9)
		}
		h.Write(buf)
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

func digest(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// dirNames lists dir's entries.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}

func TestCreate(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	img := newImage(t, dir, 2<<30)
	size, alloc := fileSize(t, img)
	if size != 2<<30 || alloc < size {
		t.Errorf("image: %d bytes, %d allocated; want %d, all allocated", size, alloc, 2<<30)
	}
	st, err := os.Stat(img)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("image mode %v, %v; want 0600", st.Mode(), err)
	}
	u, err := ReadUsage(img)
	if err != nil || u.SizeBytes != 2<<30 || u.UsedBytes == 0 || u.UsedBytes > 1<<20 {
		t.Errorf("ReadUsage = %+v, %v", u, err)
	}

	// An existing image is never replaced, and nothing else appears beside it.
	var before, after unix.Stat_t
	unix.Stat(img, &before)
	if err := Create(t.Context(), img, Limits{HardBytes: 1 << 30}); !errors.Is(err, ErrExist) {
		t.Errorf("Create over an image: %v, want ErrExist", err)
	}
	unix.Stat(img, &after)
	if after.Ino != before.Ino || after.Ctim != before.Ctim || after.Size != before.Size {
		t.Error("Create over an image changed it")
	}
	if n := dirNames(t, dir); len(n) != 1 {
		t.Errorf("directory holds %v, want the image only", n)
	}
}

func TestCreateFails(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	img := filepath.Join(dir, "disk.img")
	check := func(name string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
		if n := dirNames(t, dir); len(n) != 0 {
			t.Errorf("%s left %v", name, n)
		}
	}
	check("too small", Create(t.Context(), img, Limits{HardBytes: 100 << 20}), ErrBadValue)
	check("inode limit", Create(t.Context(), img, Limits{HardBytes: 1 << 30, Inodes: 1000}), ErrInodeLimit)
	check("soft above hard", Create(t.Context(), img, Limits{SoftBytes: 2 << 30, HardBytes: 1 << 30}), ErrBadValue)
	check("no directory", Create(t.Context(), filepath.Join(dir, "none", "disk.img"), Limits{HardBytes: 1 << 30}), os.ErrNotExist)
	check("too big for the host's files", Create(t.Context(), img, Limits{HardBytes: 1 << 62}), ErrBadValue)

	// A host without room: a small tmpfs (in this test's mount namespace).
	small := filepath.Join(dir, "small")
	os.Mkdir(small, 0o700)
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=64m"); err != nil {
		t.Fatal(err)
	}
	err := Create(t.Context(), filepath.Join(small, "disk.img"), Limits{HardBytes: 1 << 30})
	if !errors.Is(err, ErrHostSpace) {
		t.Errorf("Create on a full host: %v, want ErrHostSpace", err)
	}
	if _, _, avail := statfs(t, small); avail < 63<<20 {
		t.Errorf("the failed Create left %d bytes of the host's 64M taken", 64<<20-avail)
	}
	if err := unix.Unmount(small, 0); err != nil {
		t.Fatal(err)
	}
	os.Remove(small)

	// mkfs.btrfs missing, or failing.
	defer func(p string) { mkfsProgram = p }(mkfsProgram)
	mkfsProgram = "/nonexistent/mkfs.btrfs"
	check("no mkfs.btrfs", Create(t.Context(), img, Limits{HardBytes: 1 << 30}), ErrNoMkfs)
	mkfsProgram = "/bin/false"
	if err := Create(t.Context(), img, Limits{HardBytes: 1 << 30}); err == nil || !strings.Contains(err.Error(), "mkfs.btrfs") {
		t.Errorf("failing mkfs: %v", err)
	}
	check("failing mkfs", nil, nil)
}

func TestMountLayout(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	img := newImage(t, dir, 2<<30)
	m := mountImage(t, img)
	size, used, avail := statfs(t, m.Dir)
	if size != 2<<30 || avail < size-size/50 {
		t.Errorf("statfs: size %d, used %d, avail %d; want the whole 2G", size, used, avail)
	}
	for _, c := range []struct {
		path     string
		uid      uint32
		mode     uint32
		wantPath string
	}{{m.Upper, vpsRoot, 0o755, filepath.Join(m.Dir, "upper")}, {m.Work, 0, 0o700, filepath.Join(m.Dir, "work")}} {
		var st unix.Stat_t
		if err := unix.Stat(c.path, &st); err != nil || c.path != c.wantPath {
			t.Fatalf("%s (want %s): %v", c.path, c.wantPath, err)
		}
		if st.Uid != c.uid || st.Gid != c.uid || st.Mode&0o7777 != c.mode {
			t.Errorf("%s: %d:%d %o, want %d:%d %o", c.path, st.Uid, st.Gid, st.Mode&0o7777, c.uid, c.uid, c.mode)
		}
	}
	var mnt unix.Statfs_t
	unix.Statfs(m.Dir, &mnt)
	if mnt.Flags&unix.ST_NODEV == 0 {
		t.Error("the image is mounted without nodev")
	}
	dev := ""
	for d, f := range loopBackings() {
		if f == img {
			dev = d
		}
	}
	if b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/loop/dio"); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Errorf("loop device %s: direct I/O %q, %v; want 1", dev, b, err)
	}

	// A second attach of the same image is refused while the first holds it, offline too.
	other := filepath.Join(dir, "other")
	os.Mkdir(other, 0o700)
	if _, err := Mount(img, other, 0, 0); !errors.Is(err, ErrInUse) {
		t.Errorf("second Mount: %v, want ErrInUse", err)
	}
	if err := SetLimitsOffline(img, Limits{HardBytes: 1 << 30}); !errors.Is(err, ErrInUse) {
		t.Errorf("SetLimitsOffline of a mounted image: %v, want ErrInUse", err)
	}

	// Mounted again, an existing upper/ keeps its owner and mode.
	if err := os.Chmod(m.Upper, 0o751); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if left := waitFor(5*time.Second, func() []string { return leftovers(dir) }); len(left) > 0 {
		t.Fatalf("after Close: %v", left)
	}
	m2, err := Mount(img, m.Dir, 5, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	var st unix.Stat_t
	unix.Stat(m2.Upper, &st)
	if st.Uid != vpsRoot || st.Mode&0o7777 != 0o751 {
		t.Errorf("remounted upper: %d %o, want %d 751", st.Uid, st.Mode&0o7777, vpsRoot)
	}
	if err := m2.Close(); err != nil || m2.Close() != nil {
		t.Errorf("Close, twice: %v", err)
	}
}

func TestMountFails(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	img := newImage(t, dir, MinHardBytes)
	if _, err := Mount(img, filepath.Join(dir, "none"), 0, 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Mount on a missing directory: %v", err)
	}
	// Its loop device went with the failure: the image mounts again at once.
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o700)
	m, err := Mount(img, mnt, 0, 0)
	if err != nil {
		t.Fatalf("Mount after a failed one: %v", err)
	}
	m.Close()

	notImage := filepath.Join(dir, "zeros.img")
	if err := os.WriteFile(notImage, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Mount(notImage, mnt, 0, 0); !errors.Is(err, ErrNotImage) {
		t.Errorf("Mount of zeros: %v, want ErrNotImage", err)
	}
	if _, err := ReadUsage(notImage); !errors.Is(err, ErrNotImage) {
		t.Errorf("ReadUsage of zeros: %v, want ErrNotImage", err)
	}
	os.Truncate(notImage, 1000)
	if _, err := ReadUsage(notImage); !errors.Is(err, ErrNotImage) {
		t.Errorf("ReadUsage of a short file: %v, want ErrNotImage", err)
	}
	// A btrfs this package did not make (no mixed block groups) is not attached.
	plain := filepath.Join(dir, "plain.img")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Truncate(plain, 256<<20)
	f, _ := os.OpenFile(plain, os.O_RDWR, 0)
	cmdErr := runMkfs(f, "-q", "-K", "/proc/self/fd/3")
	f.Close()
	if cmdErr != nil {
		t.Fatal(cmdErr)
	}
	if _, err := Mount(plain, mnt, 0, 0); !errors.Is(err, ErrNotImage) {
		t.Errorf("Mount of a btrfs without mixed block groups: %v, want ErrNotImage", err)
	}
	// A file where upper/ should be a directory.
	m, err = Mount(img, mnt, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(m.Work)
	os.WriteFile(m.Work, nil, 0o600)
	m.Close()
	if _, err := Mount(img, mnt, 0, 0); !errors.Is(err, ErrNotImage) {
		t.Errorf("Mount with a file as work/: %v, want ErrNotImage", err)
	}
}

// TestFullDisk is the acceptance in small: a VPS's root, writing through its overlay,
// gets ENOSPC at the limit, df shows the limit, and the host gives nothing more.
func TestFullDisk(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	const limit = 512 << 20
	img := newImage(t, dir, limit)
	m := mountImage(t, img)
	merged := mountOverlay(t, m)

	size, _, _ := statfs(t, merged)
	if size != limit {
		t.Errorf("df through the overlay: size %d, want the limit %d", size, limit)
	}
	_, allocBefore := fileSize(t, img)
	out := asVPSRoot(t, "fill", merged, "big")
	f := strings.Fields(out)
	if len(f) != 2 || f[0] != "ENOSPC" {
		t.Fatalf("a VPS filling its disk: %q, want ENOSPC and a count", out)
	}
	if n, _ := strconv.ParseInt(f[1], 10, 64); n < limit*97/100 || n > limit {
		t.Errorf("a VPS wrote %d bytes of its %d before ENOSPC, want nearly all of them", n, limit)
	}
	// The file is the VPS's (host UID vpsRoot), in the image only.
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(m.Upper, "big"), &st); err != nil || st.Uid != vpsRoot {
		t.Errorf("the VPS's file in the image: uid %d, %v", st.Uid, err)
	}
	if _, used, avail := statfs(t, merged); used < limit*97/100 || avail > limit/100 {
		t.Errorf("df of a full disk: used %d, avail %d", used, avail)
	}
	unix.Sync()
	if _, alloc := fileSize(t, img); alloc != allocBefore {
		t.Errorf("the image took %d bytes more of the host while the VPS wrote", alloc-allocBefore)
	}
	// Deleting gives the VPS its space back at once (mixed block groups: no stuck chunks).
	if err := os.Remove(filepath.Join(merged, "big")); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	if _, _, avail := statfs(t, merged); avail < limit*95/100 {
		t.Errorf("after deleting: avail %d of %d", avail, limit)
	}
	if _, alloc := fileSize(t, img); alloc != allocBefore {
		t.Errorf("deleting changed the image's allocation by %d bytes (a discard reached the host)", alloc-allocBefore)
	}
}

// TestTenantCannotChangeLimit: a VPS's root cannot resize its file system, trim it or relabel
// it, through the overlay (no ioctl passes) or on the image's mount itself (not capable in the
// host's user namespace).
func TestTenantCannotChangeLimit(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	img := newImage(t, dir, MinHardBytes)
	m := mountImage(t, img)
	merged := mountOverlay(t, m)
	for _, d := range []string{merged, m.Upper} {
		out := asVPSRoot(t, "ioctl", d, "")
		if strings.Contains(out, "=ok") {
			t.Errorf("a VPS's root on %s: %s", d, out)
		}
		t.Logf("%s: %s", d, out)
	}
	if size, _, _ := statfs(t, m.Dir); size != MinHardBytes {
		t.Errorf("size %d after the VPS tried, want %d", size, MinHardBytes)
	}
}

func TestGrowLive(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	img := newImage(t, dir, MinHardBytes)
	m := mountImage(t, img)
	merged := mountOverlay(t, m)
	sum := writeFile(t, filepath.Join(merged, "data"), 100)

	if err := m.SetLimits(Limits{HardBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if size, _, _ := statfs(t, merged); size != 1<<30 {
		t.Errorf("df after growing: %d, want %d", size, 1<<30)
	}
	if size, alloc := fileSize(t, img); size != 1<<30 || alloc < size {
		t.Errorf("image after growing: %d bytes, %d allocated", size, alloc)
	}
	// More than the old limit fits now, and the old data is intact.
	writeFile(t, filepath.Join(merged, "more"), 400)
	if digest(t, filepath.Join(merged, "data")) != sum {
		t.Error("data changed by growing")
	}
	if u, err := ReadUsage(img); err != nil || u.SizeBytes != 1<<30 {
		t.Errorf("ReadUsage after growing: %+v, %v", u, err)
	}
	// The same limits again: nothing to do.
	if err := m.SetLimits(Limits{SoftBytes: 1 << 29, HardBytes: 1 << 30}); err != nil {
		t.Errorf("SetLimits to the same size: %v", err)
	}
}

func TestShrinkLive(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	img := newImage(t, dir, 1<<30)
	m := mountImage(t, img)
	merged := mountOverlay(t, m)
	// Data at the far end too: btrfs must move it.
	writeFile(t, filepath.Join(merged, "filler"), 600)
	sum := writeFile(t, filepath.Join(merged, "data"), 100)
	os.Remove(filepath.Join(merged, "filler"))
	unix.Sync()

	if err := m.SetLimits(Limits{HardBytes: 300 << 20}); err != nil {
		t.Fatal(err)
	}
	if size, _, _ := statfs(t, merged); size != 300<<20 {
		t.Errorf("df after shrinking: %d, want %d", size, 300<<20)
	}
	if size, _ := fileSize(t, img); size != 300<<20 {
		t.Errorf("image after shrinking: %d bytes, want %d (the host's space back)", size, 300<<20)
	}
	if digest(t, filepath.Join(merged, "data")) != sum {
		t.Error("data changed by shrinking")
	}
	// An unprivileged user of the VPS meets the same limit as its root.
	home := filepath.Join(merged, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, vpsRoot+1000, vpsRoot+1000); err != nil {
		t.Fatal(err)
	}
	out := asVPSUser(t, 1000, "fill", home, "big")
	if f := strings.Fields(out); len(f) != 2 || f[0] != "ENOSPC" {
		t.Errorf("a VPS user filling the shrunk disk: %q", out)
	} else if n, _ := strconv.ParseInt(f[1], 10, 64); n > 200<<20 {
		t.Errorf("wrote %d bytes next to 100M in a 300M disk", n)
	}
}

func TestShrinkRefused(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	img := newImage(t, dir, 1<<30)
	m := mountImage(t, img)
	writeFile(t, filepath.Join(m.Upper, "data"), 350)
	unix.Sync()
	_, used, _ := statfs(t, m.Dir)

	err := m.SetLimits(Limits{HardBytes: 300 << 20})
	if !errors.Is(err, ErrTooSmall) {
		t.Fatalf("shrinking below usage: %v, want ErrTooSmall", err)
	}
	want := "diskspace 300M is less than the " + FormatSize(used) + " in use"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not say %q", err, want)
	}
	if size, _, _ := statfs(t, m.Dir); size != 1<<30 {
		t.Errorf("size %d after a refused shrink", size)
	}
	if size, _ := fileSize(t, img); size != 1<<30 {
		t.Errorf("image %d bytes after a refused shrink", size)
	}
	if err := m.SetLimits(Limits{HardBytes: 1 << 20}); !errors.Is(err, ErrBadValue) {
		t.Errorf("SetLimits below the minimum: %v, want ErrBadValue", err)
	}
}

// TestShrinkNoRoom: a shrink the usage fits but btrfs cannot do (it moves data a block group at
// a time, and needs one's room free) is refused by btrfs, and nothing changes.
func TestShrinkNoRoom(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	img := newImage(t, dir, 512<<20)
	m := mountImage(t, img)
	sum := writeFile(t, filepath.Join(m.Upper, "data"), 240)
	err := m.SetLimits(Limits{HardBytes: 256 << 20})
	if !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "does not fit the 24") {
		t.Fatalf("shrinking to just above the usage: %v, want btrfs's refusal as ErrTooSmall", err)
	}
	if size, _, _ := statfs(t, m.Dir); size != 512<<20 {
		t.Errorf("size %d after btrfs refused to shrink", size)
	}
	if size, _ := fileSize(t, img); size != 512<<20 {
		t.Errorf("image %d bytes after btrfs refused to shrink", size)
	}
	if digest(t, filepath.Join(m.Upper, "data")) != sum {
		t.Error("data changed by a refused shrink")
	}
	// With a block group's room (64M at this size) free below the new end, it goes through.
	if err := m.SetLimits(Limits{HardBytes: 400 << 20}); err != nil {
		t.Errorf("shrinking with room: %v", err)
	}
}

func TestGrowHostFull(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	small := filepath.Join(dir, "small")
	os.Mkdir(small, 0o700)
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=400m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(small, unix.MNT_DETACH) })
	img := newImage(t, small, MinHardBytes)
	m := mountImage(t, img)
	err := m.SetLimits(Limits{HardBytes: 1 << 30})
	if !errors.Is(err, ErrHostSpace) {
		t.Fatalf("growing past the host's room: %v, want ErrHostSpace", err)
	}
	if size, _, _ := statfs(t, m.Dir); size != MinHardBytes {
		t.Errorf("size %d after a failed grow", size)
	}
	if size, _ := fileSize(t, img); size != MinHardBytes {
		t.Errorf("image %d bytes after a failed grow, want it as it was", size)
	}
	if _, _, avail := statfs(t, small); avail < 400<<20-MinHardBytes-(8<<20) {
		t.Errorf("the failed grow kept %d bytes of the host", 400<<20-MinHardBytes-avail)
	}
}

func TestSetLimitsOffline(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	img := newImage(t, dir, MinHardBytes)
	if err := SetLimitsOffline(img, Limits{HardBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if u, err := ReadUsage(img); err != nil || u.SizeBytes != 1<<30 {
		t.Errorf("after growing offline: %+v, %v", u, err)
	}
	if err := SetLimitsOffline(img, Limits{HardBytes: 300 << 20}); err != nil {
		t.Fatal(err)
	}
	if size, _ := fileSize(t, img); size != 300<<20 {
		t.Errorf("image %d bytes after shrinking offline", size)
	}
	if err := SetLimitsOffline(img, Limits{HardBytes: 1 << 20}); !errors.Is(err, ErrBadValue) {
		t.Errorf("SetLimitsOffline below the minimum: %v", err)
	}
	if err := SetLimitsOffline(filepath.Join(dir, "none"), Limits{HardBytes: 1 << 30}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SetLimitsOffline of no image: %v", err)
	}

	// An image left larger than its file system (a crash between preallocating and resizing)
	// is trimmed by the next SetLimits with the same limits.
	if err := os.Truncate(img, 400<<20); err != nil {
		t.Fatal(err)
	}
	if err := SetLimitsOffline(img, Limits{HardBytes: 300 << 20}); err != nil {
		t.Fatal(err)
	}
	if size, _ := fileSize(t, img); size != 300<<20 {
		t.Errorf("image %d bytes, want it trimmed to %d", size, 300<<20)
	}
	m := mountImage(t, img)
	if size, _, _ := statfs(t, m.Dir); size != 300<<20 {
		t.Errorf("mounted after offline changes: %d", size)
	}
}

// TestOpen: another process (vpsctl set) reaches the mounted file system through the mount
// namespace it is in, and changes the limit there.
func TestOpen(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	img := newImage(t, dir, MinHardBytes)
	m := mountImage(t, img)
	o, err := Open(img, "/proc/self/root"+m.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.SetLimits(Limits{HardBytes: 512 << 20}); err != nil {
		t.Fatal(err)
	}
	if size, _, _ := statfs(t, m.Dir); size != 512<<20 {
		t.Errorf("size %d after SetLimits through Open", size)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if size, _, _ := statfs(t, m.Dir); size != 512<<20 {
		t.Error("closing what Open opened unmounted the file system")
	}

	od := filepath.Join(dir, "o")
	os.Mkdir(od, 0o700)
	other := newImage(t, od, MinHardBytes)
	if _, err := Open(other, m.Dir); !errors.Is(err, ErrNotImage) {
		t.Errorf("Open with the wrong image: %v, want ErrNotImage", err)
	}
	if _, err := Open(img, m.Upper); !errors.Is(err, ErrNotImage) {
		t.Errorf("Open below the root: %v, want ErrNotImage", err)
	}
	if _, err := Open(img, dir); !errors.Is(err, ErrNotImage) {
		t.Errorf("Open of a host directory: %v, want ErrNotImage", err)
	}
}

func TestUsage(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	img := newImage(t, dir, 1<<30)
	m := mountImage(t, img)
	u0, err := m.Usage()
	if err != nil || u0.SizeBytes != 1<<30 {
		t.Errorf("empty: %+v, %v; want 1G", u0, err)
	}
	n0, err := m.Inodes()
	if err != nil || n0 != 3 { // the root, upper/, work/
		t.Errorf("empty: %d inodes, %v; want 3", n0, err)
	}
	// Many inodes, past one search buffer's worth of items.
	for i := 0; i < 3000; i++ {
		d := filepath.Join(m.Upper, "d"+strconv.Itoa(i%30))
		os.Mkdir(d, 0o755)
		if err := os.WriteFile(filepath.Join(d, strconv.Itoa(i)), bytes.Repeat([]byte{1}, i%5000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(m.Upper, "big"), 50)
	unix.Sync() // statfs counts written data, not dirty pages
	u, err := m.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Inodes(); err != nil || n != n0+3000+30+1 {
		t.Errorf("inodes %d, %v; want %d", n, err, n0+3000+30+1)
	}
	if u.UsedBytes < 50<<20 || u.UsedBytes+u.AvailBytes > u.SizeBytes {
		t.Errorf("usage %+v", u)
	}
	// The superblock agrees, as of the commit.
	r, err := ReadUsage(img)
	if err != nil {
		t.Fatal(err)
	}
	if r.SizeBytes != u.SizeBytes || r.UsedBytes < 50<<20 || r.UsedBytes > u.UsedBytes+u.UsedBytes/10 {
		t.Errorf("ReadUsage %+v, statfs %+v", r, u)
	}
}

// privateArea builds what a VPS's plain private area holds: every kind of file, and overlayfs's
// marks (a whiteout, an opaque directory, a redirect), owned by the VPS's users.
func privateArea(t testing.TB, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(dir, 0o755))
	must(os.Chown(dir, vpsRoot, vpsRoot))
	must(os.MkdirAll(filepath.Join(dir, "etc/opaque"), 0o755))
	must(unix.Setxattr(filepath.Join(dir, "etc/opaque"), "trusted.overlay.opaque", []byte("y"), 0))
	must(os.Mkdir(filepath.Join(dir, "moved"), 0o700))
	must(unix.Setxattr(filepath.Join(dir, "moved"), "trusted.overlay.redirect", []byte("/old"), 0))
	must(unix.Mknod(filepath.Join(dir, "etc/deleted"), unix.S_IFCHR, 0)) // a whiteout
	must(unix.Mknod(filepath.Join(dir, "fifo"), unix.S_IFIFO|0o600, 0))
	must(os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644))
	must(os.Link(filepath.Join(dir, "etc/passwd"), filepath.Join(dir, "passwd.link")))
	must(os.Symlink("etc/passwd", filepath.Join(dir, "sym")))
	ping := filepath.Join(dir, "ping")
	must(os.WriteFile(ping, []byte("#!/bin/sh\n"), 0o755))
	must(os.Chown(ping, vpsRoot+5, vpsRoot+7))
	must(os.Chmod(ping, 0o4755))
	// cap_net_raw+ep, as setcap writes it (VFS_CAP_REVISION_2).
	must(unix.Setxattr(ping, "security.capability", []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0))
	must(unix.Setxattr(ping, "user.note", []byte("kept"), 0))
	su := filepath.Join(dir, "su")
	must(os.WriteFile(su, []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(su, 0o4755))
	sparse := filepath.Join(dir, "sparse")
	f, err := os.Create(sparse)
	must(err)
	must(f.Truncate(64 << 20))
	_, err = f.WriteAt([]byte("end"), 64<<20-3)
	must(err)
	must(f.Close())
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	must(os.Chtimes(filepath.Join(dir, "etc/passwd"), old, old))
	must(unix.Lchown(filepath.Join(dir, "sym"), vpsRoot+1, vpsRoot+1))
}

// treeOf describes every file under dir, a line each: type, mode, owner, links, size, time,
// device, link target or content digest, extended attributes.
func treeOf(t testing.TB, dir string) []string {
	t.Helper()
	var lines []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		l := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			// A directory's links, size and times are its file system's own.
			l += fmt.Sprintf(" n%d s%d t%d", st.Nlink, st.Size, st.Mtim.Sec)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR, unix.S_IFBLK:
			l += fmt.Sprintf(" dev%d", st.Rdev)
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			l += " -> " + target
		case unix.S_IFREG:
			l += fmt.Sprintf(" %x", digest(t, p))
			if st.Size > 1<<20 && st.Blocks*512 > 1<<20 {
				l += " (not sparse)"
			}
		}
		buf := make([]byte, 4096)
		n, _ := unix.Llistxattr(p, buf)
		names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
		sort.Strings(names)
		for _, name := range names {
			if name == "" {
				continue
			}
			v := make([]byte, 256)
			vn, _ := unix.Lgetxattr(p, name, v)
			l += fmt.Sprintf(" %s=%q", name, v[:max(vn, 0)])
		}
		lines = append(lines, l)
		return nil
	})
	return lines
}

func TestConvert(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	priv := filepath.Join(dir, "private")
	privateArea(t, priv)
	want := treeOf(t, priv)
	img := filepath.Join(dir, "disk.img")
	if err := Convert(t.Context(), priv, img, Limits{HardBytes: 512 << 20}); err != nil {
		t.Fatal(err)
	}
	if u, err := ReadUsage(img); err != nil || u.SizeBytes != 512<<20 {
		t.Fatalf("converted image: %+v, %v", u, err)
	}
	if got := treeOf(t, priv); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Error("Convert changed the private area")
	}
	m := mountImage(t, img)
	got := treeOf(t, m.Upper)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the image's upper/ differs from the private area:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if err := Convert(t.Context(), priv, img, Limits{HardBytes: 512 << 20}); !errors.Is(err, ErrExist) {
		t.Errorf("Convert onto an image: %v, want ErrExist", err)
	}
}

func TestConvertFails(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	priv := filepath.Join(dir, "private")
	privateArea(t, priv)
	img := filepath.Join(dir, "disk.img")
	noImage := func(name string) {
		t.Helper()
		if _, err := os.Lstat(img); err == nil {
			t.Errorf("%s: an image was left", name)
			os.Remove(img)
		}
		if n := dirNames(t, dir); len(n) != 1 {
			t.Errorf("%s: the directory holds %v", name, n)
		}
	}

	fallocate := func(path string, size int64) {
		t.Helper()
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
			t.Fatal(err)
		}
	}
	fallocate(filepath.Join(priv, "big"), 300<<20)
	err := Convert(t.Context(), priv, img, Limits{HardBytes: 256 << 20})
	if !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "diskspace 256M is less than the 301M in use") {
		t.Errorf("Convert into too small a disk: %v", err)
	}
	noImage("too small")
	os.Remove(filepath.Join(priv, "big"))

	// What fits by du but not with btrfs's metadata for many files is refused before copying.
	big := filepath.Join(priv, "big")
	fallocate(big, 250<<20)
	many := filepath.Join(priv, "many")
	os.Mkdir(many, 0o755)
	for i := 0; i < 6000; i++ {
		if err := os.WriteFile(filepath.Join(many, strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err = Convert(t.Context(), priv, img, Limits{HardBytes: 256 << 20})
	if !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "metadata for its 60") {
		t.Errorf("Convert of files that fit without their metadata: %v", err)
	}
	noImage("metadata")
	os.RemoveAll(many)
	os.Remove(big)

	// A copy that fills the disk all the same is stopped at its first error, and said so.
	defer func(p string) { cpProgram = p }(cpProgram)
	cpProgram = filepath.Join(t.TempDir(), "fill-cp")
	script := "#!/bin/sh\n# cp's stand-in: fills its destination, as too much to copy would\n" +
		"eval dst=\\${$#}\ni=0\nwhile :; do i=$((i+1)); head -c 4194304 /dev/zero >\"$dst/f$i\" || :; done\n"
	if err := os.WriteFile(cpProgram, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = Convert(t.Context(), priv, img, Limits{HardBytes: 256 << 20})
	if !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("Convert whose copy fills the disk: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the copy ran on for %v after the disk was full", d)
	}
	noImage("filled")

	cpProgram = "/bin/false"
	if err := Convert(t.Context(), priv, img, Limits{HardBytes: 256 << 20}); err == nil || !strings.Contains(err.Error(), "copy") {
		t.Errorf("Convert with a failing cp: %v", err)
	}
	noImage("failing cp")
	cpProgram = "/nonexistent/cp"
	if err := Convert(t.Context(), priv, img, Limits{HardBytes: 256 << 20}); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("Convert without cp: %v", err)
	}
	noImage("no cp")

	if err := Convert(t.Context(), filepath.Join(priv, "fifo"), img, Limits{HardBytes: 256 << 20}); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("Convert of a fifo: %v", err)
	}
	if err := Convert(t.Context(), priv, img, Limits{HardBytes: 256 << 20, Inodes: 5}); !errors.Is(err, ErrInodeLimit) {
		t.Errorf("Convert with an inode limit: %v", err)
	}
	noImage("bad arguments")
}

// runMkfs runs mkfs.btrfs with args on f (its descriptor 3).
func runMkfs(f *os.File, args ...string) error {
	p, err := findTool(mkfsProgram)
	if err != nil {
		return err
	}
	cmd := exec.Command(p, args...)
	cmd.ExtraFiles = []*os.File{f}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}
