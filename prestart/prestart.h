// What vpsctl's C programs (this package's, and the CLI's front door in cmd/vpsctl) share.
// Each program is a function that never returns; the one gate into them is prestart.c.
#ifndef VPSCTL_PRESTART_H
#define VPSCTL_PRESTART_H
#include <stdint.h>
#include <sys/types.h>

#include "msg.h"

// The environment variable vpsctl sets, and only vpsctl, to make a process it starts one of
// its C programs: "NAME:FD" (the program and the fd its message comes on) or "NAME".
#define VPSCTL_STAGE_ENV "_VPSCTL_STAGE"

// The programs. Each reads its message (msg.h), does its work and exits.
void vpsctl_join(struct msg *m, int sock) __attribute__((noreturn));       // join.c
// vpsctl_join_here is the joiner without its fork, for a process forked already into the VPS's
// PID namespace (its parent set the namespace for its children): it execs the command itself.
void vpsctl_join_here(struct msg *m, int sock) __attribute__((noreturn));
void vpsctl_init_child(int sock) __attribute__((noreturn));                // initchild.c
void vpsctl_init_child_fail(int sock, const char *what) __attribute__((noreturn));
void vpsctl_reaper(struct msg *m) __attribute__((noreturn));               // reaper.c
void vpsctl_remover(struct msg *m) __attribute__((noreturn)); // remover.c
void vpsctl_spawner_main(int sock, int boots) __attribute__((noreturn));   // spawner.c

// vpsctl_spawner_start forks the spawner (spawner.c) for this process: boots (a process that
// will boot a VPS: clone an init child in advance), persistent (it serves many requests, a
// spare keeper's or a library's). 0, or -1 (no spawner; Go starts one when it needs one).
int vpsctl_spawner_start(int boots, int persistent);
extern int vpsctl_spawner_fd, vpsctl_spawner_pid, vpsctl_spawner_persistent;

// The kernel's struct clone_args (clone3(2)), up to cgroup (CLONE_ARGS_SIZE_VER2).
struct vpsctl_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
		set_tid_size, cgroup;
};
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

// vpsctl_exit_as waits for child (retrying on EINTR; exit code fail if waiting fails) and
// ends this process the way the child ended: its exit code, or, killed by a signal, 128+N
// with reraise == 0 (what a shell reports) or death by the same signal with reraise != 0.
void vpsctl_exit_as(pid_t child, int fail, int reraise) __attribute__((noreturn));

// vpsctl_cloexec_from marks every fd from first on close-on-exec.
void vpsctl_cloexec_from(unsigned first);

// Timer slack (internal/timerslack): vpsctl's Go threads run with a raised slack that nothing
// which is not vpsctl may keep. Keep VPSCTL_RAISED_SLACK_NS equal to timerslack.Raised.
#define VPSCTL_RAISED_SLACK_NS 200000UL
// vpsctl_guest_slack gives the calling thread the slack vpsctl was started with: call it
// before exec'ing a VPS's program.
void vpsctl_guest_slack(void);

// vpsctl_trace prints package fault's trace line for mark name ("vpsctl trace: PID NAME
// UNIX-MICROSECONDS") on standard error.
void vpsctl_trace(const char *name);

#endif
