// Package seccomp builds vpsctl's syscall filter: the classic-BPF program that every process
// of a VPS runs under (the init and every exec alike), denying the system calls no VPS needs
// and that reach host-wide kernel state or a large kernel attack surface.
//
// The program is built here, in pure Go, from the table in table.go, and `go generate` writes
// it out as prestart/vpsctl_seccomp.h (committed): a C header with the program as a struct
// sock_filter array and a static installer, vpsctl_seccomp_install(), for the C code that runs
// before the Go runtime (the init child and the joiner) to call just before execve(2). C
// needs nothing from Go, and no libseccomp, at run time.
//
// TestGeneratedUpToDate fails when the header differs from what the table builds, so the
// table and the header cannot drift apart.
//
// # Policy
//
// A deny list (Docker's and Incus's default profiles are the references; the table says why
// each entry is there): a listed syscall returns EPERM, everything else runs. A VPS is a whole
// Linux system whose root may mount, make namespaces and run systemd, so an allow list of
// Docker's kind would break guests; the calls denied here are those whose every use reaches
// the host (module loading, kexec, handle-based opens, host clock, swap, accounting, I/O
// ports) or opens kernel attack surface a VPS does without (bpf, perf_event_open,
// userfaultfd, io_uring, keyrings). Two calls are denied by argument: ioctl(TIOCSTI) (pushing
// input into a terminal) and umount2(MNT_FORCE) (LXC's reject_force_umount). Arguments are
// compared on their low 32 bits, which is what the kernel reads for both (an unsigned int).
//
// # Architectures
//
// The filter is for x86-64 kernels. seccomp_data.arch tells which ABI a call came in by:
//
//   - AUDIT_ARCH_X86_64 with nr below 0x40000000: the native ABI, checked against the
//     x86-64 numbers;
//   - AUDIT_ARCH_X86_64 with nr at or above 0x40000000 (__X32_SYSCALL_BIT): the x32 ABI.
//     Every x32 call returns EPERM: Debian ships no x32 userland, Debian's and this host's
//     kernels have it off, and its numbers would need a table of their own;
//   - AUDIT_ARCH_I386 (int $0x80, sysenter, 32-bit programs in the guest): the same deny list
//     with the i386 numbers, as Docker allows 32-bit programs;
//   - anything else cannot happen on an x86-64 kernel; the program kills the process
//     (SECCOMP_RET_KILL_PROCESS) rather than guess.
//
// The C header refuses to compile on another architecture (#error): a build there needs a
// table of its own, not a filter that would kill every process.
//
// # Installing it
//
// seccomp(SECCOMP_SET_MODE_FILTER) needs either no_new_privs or CAP_SYS_ADMIN in the caller's
// user namespace (kernel/seccomp.c, seccomp_prepare_filter). vpsctl uses the latter: the
// installer runs as the VPS's root with its full capabilities in the VPS's user namespace, so
// no_new_privs is never set and setuid programs in the guest (sudo, su, passwd) keep working.
// The filter is inherited across fork, clone and execve and can never be removed; a process
// may only add filters of its own, which can deny more, never allow more.
//
// # Cost
//
// Since Linux 5.11 the kernel emulates a filter once per syscall number and arch and skips it
// entirely for numbers it always allows (the seccomp action cache). The program reads
// arguments only on the ioctl and umount2 branches, so every other allowed call, native or
// i386, costs nothing per call; the ioctl and umount2 paths run a handful of instructions.
//
// Invariants:
//   - Every table entry names at least one ABI number, and no number appears twice per ABI.
//   - Every conditional jump fits in the 8-bit offset classic BPF has; Build fails otherwise.
//   - The program ends every path in a return; no path allows a call the table denies.
package seccomp
