package monitor

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/vpsctl/vpsctl/disk"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/uid"
)

// A VPS's disk image (package disk), if it has one, and where its monitor mounts it.
const (
	DiskImage = "disk.img" // STATE/vps/ID/disk.img
	DiskDir   = "disk"     // STATE/vps/ID/disk: the image's file system, in the monitor's namespace
)

// diskAttachWait bounds the wait for an image still attached by the VPS's previous boot: its
// loop device lets go once the last mount of its file system is gone, which the end of the
// previous monitor's mount namespace brings about a moment after that monitor exits.
const diskAttachWait = 3 * time.Second

// mountDisk returns the overlay's upper and work directories, relative to the VPS's directory:
// the plain private area, or, for a VPS with a disk image, the image's, mounted at DiskDir in
// the monitor's mount namespace (left mounted there for as long as the monitor lives, so that
// `set --diskspace` reaches it through /proc/MONITOR/root, and reused by the next boot).
func (m *monitor) mountDisk(c *store.Config) (upper, work string, err error) {
	image := m.st.Path(m.id, DiskImage)
	if _, err := os.Stat(image); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "private", "work", nil
		}
		return "", "", err
	}
	dir := m.st.Path(m.id, DiskDir)
	if mm, err := disk.Open(image, dir); err == nil {
		mm.Close() // mounted by an earlier boot of this monitor
		return DiskDir + "/" + disk.UpperDir, DiskDir + "/" + disk.WorkDir, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	owner := 0
	if slices.Contains(c.Namespaces, "user") {
		r, err := uid.ParseRange(c.IDMap)
		if err != nil {
			return "", "", fmt.Errorf("config IDMAP: %w", err)
		}
		owner = int(r.Host)
	}
	deadline := time.Now().Add(diskAttachWait)
	for {
		_, err = disk.Mount(image, dir, owner, owner)
		if !errors.Is(err, disk.ErrInUse) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return "", "", fmt.Errorf("disk image: %w", err)
	}
	return DiskDir + "/" + disk.UpperDir, DiskDir + "/" + disk.WorkDir, nil
}
