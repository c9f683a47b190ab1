package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/store"
)

// defaultDropped are the capabilities a VPS's bounding set lacks by default (LXC's and vzctl's
// choices; runc drops more, but a VPS is a whole system whose init needs the rest). Inside a
// user namespace most capabilities only act on objects the VPS owns; these are dropped because
// they reach host-wide state even so, or have no use in a VPS:
//
//	sys_module   load kernel modules                 sys_rawio     raw I/O ports, /dev/mem
//	sys_time     set the host's clock                mac_admin/mac_override  LSM policy
//	syslog       read/clear the host's kernel log    wake_alarm, block_suspend  host power state
//	audit_control, audit_read  the host's audit log  sys_pacct     process accounting
//	bpf, perfmon  kernel-wide tracing and BPF
//
// sys_boot stays: reboot(2) in a PID namespace only ends the VPS's init, which is how an in-VPS
// reboot or poweroff reaches the monitor.
var defaultDropped = []capability.Cap{
	capability.CAP_SYS_MODULE, capability.CAP_SYS_RAWIO, capability.CAP_SYS_TIME,
	capability.CAP_MAC_ADMIN, capability.CAP_MAC_OVERRIDE, capability.CAP_SYSLOG,
	capability.CAP_WAKE_ALARM, capability.CAP_BLOCK_SUSPEND, capability.CAP_AUDIT_CONTROL,
	capability.CAP_AUDIT_READ, capability.CAP_SYS_PACCT, capability.CAP_BPF, capability.CAP_PERFMON,
}

// ParseCapability parses NAME:on|off (NAME with or without "cap_", any case).
func ParseCapability(s string) (capability.Cap, bool, error) {
	name, val, ok := strings.Cut(s, ":")
	if !ok || (val != "on" && val != "off") {
		return 0, false, fmt.Errorf("--capability %q: want NAME:on|off: %w", s, ErrBadValue)
	}
	n := strings.TrimPrefix(strings.ToLower(name), "cap_")
	for _, c := range capability.ListKnown() {
		if c.String() == n {
			return c, val == "on", nil
		}
	}
	return 0, false, fmt.Errorf("--capability %q: unknown capability %q: %w", s, name, ErrBadValue)
}

// capDrop returns the capabilities to drop for c: the defaults, adjusted by CAPABILITY.
func CapDrop(c *store.Config) []int {
	drop := slices.Clone(defaultDropped)
	for _, s := range c.Capabilities {
		cp, on, err := ParseCapability(s)
		if err != nil {
			continue
		}
		drop = slices.DeleteFunc(drop, func(x capability.Cap) bool { return x == cp })
		if !on {
			drop = append(drop, cp)
		}
	}
	out := make([]int, len(drop))
	for i, x := range drop {
		out[i] = int(x)
	}
	return out
}

func CapMask(c *store.Config) uint64 {
	var m uint64
	for _, x := range CapDrop(c) {
		if x < 64 {
			m |= 1 << uint(x)
		}
	}
	return m
}

// poweroffSignal is the signal that asks the VPS's init (host PID pid) to power off: each init
// has its own. systemd: SIGRTMIN+4; busybox init: SIGUSR2; sysvinit and others: SIGPWR (with
// Debian's inittab "powerfail" entry, which vpsctl's templates point at a shutdown).
func PoweroffSignal(pid int) syscall.Signal {
	comm, _ := sysfile.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if strings.TrimSpace(string(comm)) == "systemd" {
		return syscall.Signal(34 + 4) // glibc's SIGRTMIN is 34
	}
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if filepath.Base(exe) == "busybox" {
		return syscall.SIGUSR2
	}
	return syscall.SIGPWR
}
