package criu

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
	"unsafe"

	"github.com/vpsctl/vpsctl/internal/timerslack"
	"golang.org/x/sys/unix"
)

// PreflightTimeout bounds the whole of Preflight.
const PreflightTimeout = 10 * time.Second

// Check is what Preflight found out about this host.
type Check struct {
	CRIU    string  // path of the criu binary (empty if none was found)
	Version Version // its version
	TooOld  bool    // Version < MinVersion: Dump and Restore will refuse it
	// BreakpointsWork: a ptrace-set x86 hardware execution breakpoint
	// (DR0/DR7) trapped in a child process. False in VMs whose hypervisor
	// drops debug-register traps (Firecracker), and on other architectures,
	// where the probe is not implemented.
	BreakpointsWork bool
	// NeedsFaultWorkaround: criu would hang in the parasite cure step
	// without CRIU_FAULT=130. Dump and Restore set it always; this tells an
	// operator running criu by hand.
	NeedsFaultWorkaround bool
	// SoftDirty: the kernel tracks soft-dirty pages (CONFIG_MEM_SOFT_DIRTY),
	// which `criu pre-dump` and --track-mem (iterative, live migration)
	// need. Without it only stop-dump-copy-restore migration works.
	SoftDirty bool
	Problems  []string // things that will make dump or restore fail
	Notes     []string // things worth knowing that do not
}

// Preflight finds criu ([Find]), runs `criu check` and `criu check --all`,
// and probes the two host properties criu check does not report correctly:
// whether hardware breakpoints fire, and whether soft-dirty tracking works.
// It takes at most PreflightTimeout (less if ctx is shorter).
//
// It always returns a non-nil Check. The error is non-nil only when ctx ends
// or no criu was found at all (wrapping ErrNotFound); the kernel probes are
// filled in even then. A too-old criu is reported in the Check (TooOld,
// Problems), not as an error.
func Preflight(ctx context.Context) (*Check, error) {
	ctx, cancel := context.WithTimeout(ctx, PreflightTimeout)
	defer cancel()
	c := &Check{}

	// The kernel/CPU probes need no criu.
	bp, detail := probeBreakpoints(ctx)
	c.BreakpointsWork = bp
	c.NeedsFaultWorkaround = !bp
	if !bp {
		c.Notes = append(c.Notes, "hardware breakpoints do not work ("+detail+"): criu needs CRIU_FAULT=130 (Dump and Restore set it)")
	}
	sd, err := probeSoftDirty()
	c.SoftDirty = sd
	switch {
	case err != nil:
		c.Notes = append(c.Notes, "soft-dirty probe failed: "+err.Error())
	case !sd:
		c.Notes = append(c.Notes, "no soft-dirty page tracking: criu pre-dump/--track-mem (iterative live migration) will abort; stop-dump-restore works")
	}
	if os.Geteuid() != 0 {
		c.Problems = append(c.Problems, "not running as root: criu dump/restore need CAP_SYS_ADMIN and more in the initial user namespace")
	}
	for _, t := range []struct{ cmd, why string }{
		{"tar", "criu archives tmpfs mounts with tar"},
		{"ip", "criu saves and restores network namespaces with ip(8) (iproute2)"},
	} {
		if _, err := exec.LookPath(t.cmd); err != nil {
			c.Problems = append(c.Problems, t.cmd+" not found: "+t.why)
		}
	}
	if _, err := exec.LookPath("iptables-restore"); err != nil {
		c.Notes = append(c.Notes, "iptables-restore not found: use DumpOptions.NetworkLock \"nftables\" (or install iptables)")
	}

	path, v, err := Find()
	c.CRIU, c.Version = path, v
	switch {
	case errors.Is(err, ErrTooOld):
		c.TooOld = true
		c.Problems = append(c.Problems, err.Error())
		return c, ctx.Err()
	case err != nil:
		c.Problems = append(c.Problems, err.Error())
		return c, err
	}

	env := criuEnv()
	out, err := runBounded(ctx, path, env, "check")
	if err != nil {
		c.Problems = append(c.Problems, fmt.Sprintf("criu check: %v: %s", err, lastLines(out, 5)))
	}
	// --all exits 1 when optional features are missing; its warnings are notes, said to be
	// about optional features, since criu prints them as "Error" lines beside a clean result.
	out, _ = runBounded(ctx, path, env, "check", "--all")
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "Warn") || strings.HasPrefix(l, "Error") {
			c.Notes = append(c.Notes, "optional CRIU feature missing (criu check --all): "+l)
		}
	}
	// criu's own view of soft-dirty; the pagemap probe above is the truth
	// of this kernel, this is what criu will act on.
	_, err = runBounded(ctx, path, env, "check", "--feature", "mem_dirty_track")
	if criuSD := err == nil; criuSD != c.SoftDirty && ctx.Err() == nil {
		c.Notes = append(c.Notes, fmt.Sprintf("criu check --feature mem_dirty_track says %v, pagemap probe says %v", criuSD, c.SoftDirty))
	}
	return c, ctx.Err()
}

// runBounded runs criu with combined output, killed when ctx ends.
func runBounded(ctx context.Context, path string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.WaitDelay = time.Second
	return timerslack.WithHostOutput(cmd.CombinedOutput)
}

// pagemapSoftDirty is bit 55 of a /proc/PID/pagemap entry
// (Documentation/admin-guide/mm/soft-dirty.rst).
const pagemapSoftDirty = 1 << 55

// probeSoftDirty does what soft-dirty.rst describes: clear the bits by
// writing "4" to /proc/self/clear_refs, write to a page, and look for bit 55
// of its pagemap entry. Without CONFIG_MEM_SOFT_DIRTY the write to clear_refs
// is accepted but the bit never appears. Clearing our own soft-dirty bits is
// harmless: nothing tracks this process's memory.
func probeSoftDirty() (bool, error) {
	ps := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return false, os.NewSyscallError("mmap", err)
	}
	defer unix.Munmap(mem)
	mem[0] = 1 // fault the page in
	if err := os.WriteFile("/proc/self/clear_refs", []byte("4"), 0); err != nil {
		return false, err
	}
	mem[0] = 2 // dirty it after the clear
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return false, err
	}
	defer f.Close()
	var e [8]byte
	addr := uintptr(unsafe.Pointer(&mem[0]))
	if _, err := f.ReadAt(e[:], int64(addr/uintptr(ps))*8); err != nil {
		return false, err
	}
	return binary.LittleEndian.Uint64(e[:])&pagemapSoftDirty != 0, nil
}

// lastLines returns the last n non-empty lines of b, joined by " | ".
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(bytes.TrimSpace(b)), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
