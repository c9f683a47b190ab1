package seccomp

// none marks an ABI that has no such system call.
const none = -1

// Cond narrows a rule to calls whose argument Arg matches: its low 32 bits equal to Value
// (Bits false) or sharing a bit with Value (Bits true).
type Cond struct {
	Arg   uint8
	Bits  bool
	Value uint32
}

// Rule denies one system call (with EPERM), on every ABI that has it.
type Rule struct {
	Name string
	Nr64 int   // x86-64 number (arch/x86/entry/syscalls/syscall_64.tbl), or none
	Nr32 int   // i386 number (syscall_32.tbl), or none
	Cond *Cond // nil: every call; else only calls whose argument matches
	Why  string
}

// Table is vpsctl's deny list. Numbers are from the kernel's syscall tables (checked against
// the installed <asm/unistd_64.h> and <asm/unistd_32.h> by the tests). Docker's default
// profile denies all of these to a container without the matching capability; Incus's default
// denies the module, kexec and open_by_handle_at calls and forced unmounts.
var Table = []Rule{
	{Name: "kexec_load", Nr64: 246, Nr32: 283, Why: "load a new kernel to boot into (CAP_SYS_BOOT in the initial namespace)"},
	{Name: "kexec_file_load", Nr64: 320, Nr32: none, Why: "the same, from a file"},
	{Name: "init_module", Nr64: 175, Nr32: 128, Why: "load code into the host's kernel"},
	{Name: "finit_module", Nr64: 313, Nr32: 350, Why: "the same, from a file"},
	{Name: "delete_module", Nr64: 176, Nr32: 129, Why: "unload the host's kernel modules"},
	{Name: "create_module", Nr64: 174, Nr32: 127, Why: "obsolete module call (ENOSYS since 2.6): nothing uses it"},
	{Name: "get_kernel_syms", Nr64: 177, Nr32: 130, Why: "obsolete module call"},
	{Name: "query_module", Nr64: 178, Nr32: 167, Why: "obsolete module call"},
	{Name: "open_by_handle_at", Nr64: 304, Nr32: 342, Why: "open any inode of a mounted file system by handle, bypassing paths (Docker's \"shocker\" escape)"},
	{Name: "iopl", Nr64: 172, Nr32: 110, Why: "raw access to the host's I/O ports"},
	{Name: "ioperm", Nr64: 173, Nr32: 101, Why: "raw access to the host's I/O ports"},
	{Name: "acct", Nr64: 163, Nr32: 51, Why: "host-wide process accounting"},
	{Name: "swapon", Nr64: 167, Nr32: 87, Why: "the host's swap"},
	{Name: "swapoff", Nr64: 168, Nr32: 115, Why: "the host's swap"},
	{Name: "settimeofday", Nr64: 164, Nr32: 79, Why: "set the host's clock (no time namespace for CLOCK_REALTIME)"},
	{Name: "clock_settime", Nr64: 227, Nr32: 264, Why: "set the host's clock"},
	{Name: "clock_settime64", Nr64: none, Nr32: 404, Why: "set the host's clock (i386, 64-bit time)"},
	{Name: "stime", Nr64: none, Nr32: 25, Why: "set the host's clock (i386)"},
	{Name: "syslog", Nr64: 103, Nr32: 103, Why: "read or clear the host's kernel log (readable when kernel.dmesg_restrict=0)"},
	{Name: "bpf", Nr64: 321, Nr32: 357, Why: "kernel BPF programs and maps: a large attack surface, reachable when kernel.unprivileged_bpf_disabled=0"},
	{Name: "perf_event_open", Nr64: 298, Nr32: 336, Why: "host-wide tracing and side channels within kernel.perf_event_paranoid"},
	{Name: "userfaultfd", Nr64: 323, Nr32: 374, Why: "stalls kernel page faults at will: the usual tool for winning kernel races"},
	{Name: "add_key", Nr64: 248, Nr32: 286, Why: "kernel keyrings are not namespaced; a long CVE history (systemd treats EPERM as \"no keyring\")"},
	{Name: "keyctl", Nr64: 250, Nr32: 288, Why: "kernel keyrings"},
	{Name: "request_key", Nr64: 249, Nr32: 287, Why: "kernel keyrings (and upcalls to host helpers)"},
	{Name: "lookup_dcookie", Nr64: 212, Nr32: 253, Why: "obsolete profiling call that resolves host paths"},
	{Name: "uselib", Nr64: 134, Nr32: 86, Why: "obsolete a.out library loader"},
	{Name: "nfsservctl", Nr64: 180, Nr32: 169, Why: "obsolete NFS server control"},
	{Name: "_sysctl", Nr64: 156, Nr32: 149, Why: "obsolete binary sysctl: host sysctls"},
	{Name: "vm86", Nr64: none, Nr32: 166, Why: "virtual 8086 mode (i386)"},
	{Name: "vm86old", Nr64: none, Nr32: 113, Why: "virtual 8086 mode (i386)"},
	{Name: "io_uring_setup", Nr64: 425, Nr32: 425, Why: "io_uring: a large, fast-moving attack surface (Docker denies it since 25.0); programs fall back to plain I/O"},
	{Name: "io_uring_enter", Nr64: 426, Nr32: 426, Why: "io_uring"},
	{Name: "io_uring_register", Nr64: 427, Nr32: 427, Why: "io_uring"},
	{Name: "ioctl", Nr64: 16, Nr32: 54, Cond: &Cond{Arg: 1, Value: tiocsti},
		Why: "TIOCSTI only: push input into a terminal, e.g. into the shell of a VPS user who su'd to root"},
	{Name: "umount2", Nr64: 166, Nr32: 52, Cond: &Cond{Arg: 1, Bits: true, Value: mntForce},
		Why: "MNT_FORCE only: a forced unmount aborts every request on the superblock, which a bind mount may share with others (Incus's reject_force_umount)"},
}

// Values the conditional rules compare with.
const (
	tiocsti  = 0x5412 // TIOCSTI, <asm-generic/ioctls.h>
	mntForce = 0x1    // MNT_FORCE, <sys/mount.h>
)

// Values from <linux/audit.h> and <linux/seccomp.h>.
const (
	auditArchX8664 = 0xc000003e
	auditArchI386  = 0x40000003
	x32SyscallBit  = 0x40000000

	retKillProcess = 0x80000000
	retErrno       = 0x00050000
	retAllow       = 0x7fff0000

	eperm = 1

	// Offsets into struct seccomp_data: nr, arch, instruction_pointer, args[6].
	offNr   = 0
	offArch = 4
	offArgs = 16
)
