// The early exit of short commands: the caller's wait ends when the command's work is done, not
// when its Go runtime has been torn down. A Go process's exit costs 0.15-0.9 ms here after its
// last act (its threads woken to die, its address space and, for a run, its boot thread's
// mount namespace torn down), and scripts run these commands back to back. So the process forks
// before the Go runtime exists:
//
//   caller ── vpsctl create|set|stop|destroy|run|list|status (parent, C only): forwards
//               signals, waits on a pipe, exits with the code it reads
//                  └─ child: Go: the command and its output; its stdio let go; code ──▶ pipe;
//                             then its own exit, off the caller's clock
//
// The child dies with the parent (PR_SET_PDEATHSIG): a command killed with SIGKILL stops as the
// one process did, and crash safety is unchanged. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to
// the parent reach the child, which handles them as before; if the child ends without writing
// (killed, crashed), the parent ends the same way (vpsctl_exit_as). Both stay in the caller's
// process group and session: a terminal reaches both. VPSCTL_NO_EARLY_EXIT=1 turns it off.
// `vpsctl start` forks for a reason of its own (startfork.c), interactive commands not at all.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "exitas.h"

int vpsctl_exit_fd = -1;

static const char *early_commands[] = { "create", "set", "stop", "destroy", "run", "list", "status", NULL };

const char *vpsctl_command_word(int argc, char **argv)
{
	int i = 1;
	while (i < argc && argv[i][0] == '-')
		i += (!strcmp(argv[i], "--root") || !strcmp(argv[i], "-root")) ? 2 : 1;
	return i < argc ? argv[i] : NULL;
}

const char *vpsctl_state_root(int argc, char **argv, int *i)
{
	const char *root = getenv("VPSCTL_ROOT");
	*i = 1;
	if (argc > 2 && !strcmp(argv[1], "--root")) {
		root = argv[2];
		*i = 3;
	}
	return root && *root ? root : "/var/lib/vpsctl";
}

// early_command: argv's command is one of early_commands.
static int early_command(int argc, char **argv)
{
	const char *c = vpsctl_command_word(argc, argv);
	for (int k = 0; c && early_commands[k]; k++)
		if (!strcmp(c, early_commands[k]))
			return 1;
	return 0;
}

static pid_t exit_child = -1;

static void forward_to_child(int sig)
{
	if (exit_child > 0)
		kill(exit_child, sig);
}

pid_t vpsctl_fork_waiter(int *fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t child = fork();
	if (child < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	close(p[child == 0 ? 0 : 1]);
	*fd = p[child == 0 ? 1 : 0];
	return child;
}

void vpsctl_exit_as_code(int fd, pid_t child)
{
	unsigned char code;
	ssize_t n;
	do
		n = read(fd, &code, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		_exit(code);
	vpsctl_exit_as(child, 3, 1);
}

void vpsctl_exit_fork(int argc, char **argv)
{
	if (!early_command(argc, argv) || getenv("VPSCTL_NO_EARLY_EXIT"))
		return;
	pid_t parent = getpid();
	int fd;
	pid_t child = vpsctl_fork_waiter(&fd);
	if (child < 0)
		return;
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (getppid() != parent)
			_exit(128 + SIGKILL); // the parent is gone already: as if it had taken us along
		vpsctl_exit_fd = fd;
		return;
	}
	exit_child = child;
	struct sigaction sa = { 0 };
	sa.sa_handler = forward_to_child;
	static const int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
		sigaction(fwd[i], &sa, NULL);
	vpsctl_exit_as_code(fd, child);
}
