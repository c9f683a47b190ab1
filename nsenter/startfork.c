// vpsctl start's fork: one Go runtime per boot instead of two. A VPS's monitor outlives the
// command that starts it, so it cannot be that command's process; it used to be a second copy
// of vpsctl, spawned and started from scratch (its Go runtime start was a fifth of a start).
// Here the process forks before the Go runtime exists: the parent stays behind as the command
// the caller waits for, the child runs `vpsctl start` itself and, once the VPS's init runs,
// carries on as its monitor.
//
//   caller ── vpsctl start (parent, C only) ── waits on a pipe, exits with what it reads
//                  └─ child: setsid, own mount namespace ── Go: start, boot, print ── "0" ──▶ pipe
//                             └─ stays as the monitor (then the C reaper)
//
// If the child exits before it writes (a start that failed, with its message already printed),
// the parent mirrors the child's exit status. The child is in a session of its own from the
// start (a terminal's ^C reaches the parent only, as it reached only the old CLI) and in a
// mount namespace of its own whose mounts do not propagate (the boot's mounts never reach the
// host). Only a plain `vpsctl [--root DIR] start ID` forks; anything else starts as usual, and
// Go falls back to spawning the monitor whenever vpsctl_start_fd is -1.
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "exitas.h"

int vpsctl_start_fd = -1;

// is_plain_start: argv is `vpsctl [--root DIR|--root=DIR] start ARG` with no other flag.
static int is_plain_start(int argc, char **argv)
{
	int i = 1;
	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "--root") || !strcmp(argv[i], "-root"))
			i += 2;
		else if (!strncmp(argv[i], "--root=", 7) || !strncmp(argv[i], "-root=", 6))
			i++;
		else
			return 0;
	}
	return i + 2 == argc && !strcmp(argv[i], "start") && argv[i + 1][0] != '-';
}

void vpsctl_start_fork(int argc, char **argv)
{
	if (!is_plain_start(argc, argv) || getenv("VPSCTL_NO_INPROCESS"))
		return;
	int fd;
	pid_t child = vpsctl_fork_waiter(&fd);
	if (child < 0)
		return;
	if (child == 0) {
		setsid();
		// A private mount namespace, or none at all: the Go side then spawns a monitor.
		if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0) {
			vpsctl_start_fd = fd;
			return;
		}
		close(fd);
		return;
	}
	vpsctl_exit_as_code(fd, child);
}
