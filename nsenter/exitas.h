// Shared by the C parts of package nsenter (each is a constructor-time program of its own).
#ifndef VPSCTL_EXITAS_H
#define VPSCTL_EXITAS_H
#include <sys/types.h>

// vpsctl_exit_as waits for child (retrying on EINTR; exit code fail if waiting fails) and
// ends this process the way the child ended: its exit code, or, killed by a signal, 128+N
// with reraise == 0 (what a shell reports: `vpsctl exec` promises exactly that) or death by
// the same signal with reraise != 0 (no core file of ours).
void vpsctl_exit_as(pid_t child, int fail, int reraise) __attribute__((noreturn));

// vpsctl_command_word returns argv's command (`vpsctl [--root DIR] [flags] COMMAND ...`), or
// NULL: what the constructor's programs decide on before any parsing.
const char *vpsctl_command_word(int argc, char **argv);

// vpsctl_state_root returns the state root a command line names (`vpsctl --root DIR ...`, else
// VPSCTL_ROOT, else /var/lib/vpsctl) and sets *i to the index of the word after it.
const char *vpsctl_state_root(int argc, char **argv, int *i);

// vpsctl_fork_waiter forks a command that its caller will wait for in the parent: -1 if it
// could not (nothing changed); 0 in the child, *fd the pipe's write end for its exit code;
// the child's PID in the parent, *fd the read end. Both ends are close-on-exec.
pid_t vpsctl_fork_waiter(int *fd);

// vpsctl_exit_as_code ends a forked command's waiting parent: with the exit code child writes
// to fd, or, if it ends without writing, as child ended (vpsctl_exit_as, re-raising a signal).
void vpsctl_exit_as_code(int fd, pid_t child) __attribute__((noreturn));

#endif
