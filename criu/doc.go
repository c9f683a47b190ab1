// Package criu drives CRIU (Checkpoint/Restore In Userspace), the external
// `criu` binary, to checkpoint a VPS's process tree to image files and to
// restore it from them: [Find] locates a usable binary, [Preflight] probes what
// this host's kernel and CPU let CRIU do, and [Dump] and [Restore] run one
// checkpoint or restore.
//
// It is a leaf: it knows nothing of VPSs, cgroups or networks; callers pass
// host PIDs, host paths and CRIU's own --external/--inherit-fd keys. It runs
// the `criu` command line rather than `criu swrk` over RPC because the RPC
// needs protobuf bindings (go-criu), which vpsctl's dependency rules exclude.
//
// Invariants:
//
//   - Only CRIU >= 4.2 is ever run ([MinVersion]). Debian bookworm's 3.17
//     dies at start-up on 6.x kernels ("vdso: Unexpected rt vDSO area
//     bounds"), 4.1 on the first inet socket of Linux >= 6.16;
//     scripts/install-criu.sh builds 4.2.x into
//     /usr/local/lib/vpsctl/criu/criu.
//   - Every dump and restore runs with CRIU_FAULT=130 in criu's environment.
//     130 is FI_NO_BREAKPOINTS, a "not fatal" entry of CRIU's fault-injection
//     table: it makes CRIU skip x86 hardware breakpoints (DR0/DR7 set via
//     PTRACE_POKEUSER) when it runs the parasite's exit path, and single-step
//     through the final rt_sigreturn with PTRACE_SYSCALL instead. In VMs whose
//     hypervisor does not deliver debug-register traps (Firecracker here, Xen
//     before) the breakpoint never fires and criu waits forever; for years
//     CRIU compiled this fallback in as the default ("temporary workaround for
//     Xen guests"), so it is the well-trodden path, merely a few syscalls
//     slower. Setting it unconditionally trades microseconds for never
//     hanging, so [Dump] and [Restore] do not depend on [Preflight] having run.
//   - The image directory keeps CRIU's own verbose log (dump.log,
//     restore.log at -v4) beside the images, and errors quote its last lines,
//     so a failed checkpoint can be diagnosed after the fact.
//   - criu runs with exactly fds 0-2 plus the descriptors named in
//     [RestoreOptions.InheritFds]; nothing else leaks into a restored VPS.
//   - A restore is never reported as successful when its root task was
//     killed at birth: CRIU re-arms a dumped PR_SET_PDEATHSIG, which fires as
//     soon as criu (the restored root's parent) exits ([ErrPdeathSig]).
//   - Unless [RestoreOptions.Detached], the caller becomes a child subreaper
//     so that the restored root ends up as its child, as a booted init is
//     the monitor's.
//   - Every run is bounded by the caller's context; [Preflight] by
//     [PreflightTimeout] as well.
package criu
