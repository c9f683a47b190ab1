// The one gate into vpsctl's C programs: a constructor, run before the Go runtime starts, that
// acts only when the process was started by vpsctl as one of them, which vpsctl says with the
// environment variable _VPSCTL_STAGE (runc's nsexec wakes on _LIBCONTAINER_INITPIPE the same
// way). Without it the constructor returns at once and the Go program starts as usual: a program
// that imports vpsctl's packages behaves like itself whatever its arguments.
//
//   _VPSCTL_STAGE=join:FD     the joiner (join.c): its message comes on socket FD
//   _VPSCTL_STAGE=reaper:FD   a running VPS's monitor at rest (reaper.c): message on pipe FD
//   _VPSCTL_STAGE=remover:FD  the background remover (remover.c): message on pipe FD
//   _VPSCTL_STAGE=spawner:FD  a spawner for a Go program that has none (spawner.c), on FD
//   _VPSCTL_STAGE=monitor|keeper  a Go monitor or spare keeper: a spawner is forked for its
//                             boots here, then Go starts and runs it (package monitor, spare)
//   _VPSCTL_STAGE=OTHER       Go's own (a CRIU action script): nothing to do here
//
// Every message is in the one format of msg.h. The CLI's argv-driven front door
// (cmd/vpsctl/frontdoor.c) is linked into the vpsctl binary only, not into a program that
// imports the library; it calls these programs directly.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "prestart.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

void vpsctl_exit_as(pid_t child, int fail, int reraise)
{
	int st;
	while (waitpid(child, &st, 0) < 0)
		if (errno != EINTR)
			_exit(fail);
	if (WIFEXITED(st))
		_exit(WEXITSTATUS(st));
	int sig = WTERMSIG(st);
	if (reraise) {
		signal(sig, SIG_DFL);
		sigset_t one;
		sigemptyset(&one);
		sigaddset(&one, sig);
		sigprocmask(SIG_UNBLOCK, &one, NULL);
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); // no core file of ours
		kill(getpid(), sig);
	}
	_exit(128 + sig);
}

void vpsctl_cloexec_from(unsigned first)
{
	if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		for (int fd = (int)first; fd < 1024; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
}

void vpsctl_trace(const char *name)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	fprintf(stderr, "vpsctl trace: %d %s %lld\n", (int)getpid(), name, (long long)tv.tv_sec * 1000000 + tv.tv_usec);
}

// keep_thread_start_group: musl's allocator unmaps a group of small slots as soon as its last
// slot is freed. Go's cgo runtime mallocs a three-word start record for every thread it makes
// (x_cgo_thread_start), which the new thread frees at once: an mmap and a munmap per thread, and
// the munmap of a multithreaded process is a TLB shootdown, an IPI to the other CPU, which
// traps to the hypervisor in a VM. One record of that size that is never freed keeps the group
// mapped. glibc's allocator keeps small chunks anyway.
static void keep_thread_start_group(void)
{
#ifndef __GLIBC__
	static void *kept;
	if (!kept)
		kept = malloc(3 * sizeof(void *));
#endif
}

// The slack a new thread's kernel default is; what a host process normally has.
#define KERNEL_DEFAULT_SLACK_NS 50000UL

// vpsctl_host_slack is the timer slack this process was started with (0: unknown), for the
// Go side (internal/timerslack).
unsigned long vpsctl_host_slack;

// host_slack finds the slack vpsctl was started with: from the vpsctl that executed this one
// (_VPSCTL_TIMERSLACK), else this thread's own, unless that is vpsctl's raised one (inherited
// through an environment without the variable), which stands for the kernel's default.
static unsigned long host_slack(void)
{
	const char *v = getenv("_VPSCTL_TIMERSLACK");
	if (v && *v) {
		char *end;
		unsigned long ns = strtoul(v, &end, 10);
		if (!*end && ns > 0)
			return ns;
	}
	int cur = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (cur <= 0)
		return 0;
	return (unsigned long)cur == VPSCTL_RAISED_SLACK_NS ? KERNEL_DEFAULT_SLACK_NS : (unsigned long)cur;
}

void vpsctl_guest_slack(void)
{
	unsigned long ns = host_slack();
	if (ns)
		prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0);
}

// raise_slack gives the main thread, and so every thread the Go runtime makes, vpsctl's raised
// slack (internal/timerslack says why), after any fork: a spawner keeps the host's. A host
// slack higher still is kept.
static void raise_slack(void)
{
	vpsctl_host_slack = host_slack();
	int cur = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (cur >= 0 && (unsigned long)cur < VPSCTL_RAISED_SLACK_NS)
		prctl(PR_SET_TIMERSLACK, VPSCTL_RAISED_SLACK_NS, 0, 0, 0);
}

static char stagebuf[1 << 20];
static struct msg stagemsg;

// stage_fd parses "NAME:FD" for name: FD, or -1 if stage is not name's.
static int stage_fd(const char *stage, const char *name)
{
	size_t n = strlen(name);
	if (strncmp(stage, name, n) || stage[n] != ':')
		return -1;
	int fd;
	return msg_int(stage + n + 1, &fd) == 0 && fd >= 0 ? fd : -1;
}

// bad_stage ends a process started with a stage it cannot carry out: the Go side that started it
// reads its exit (or a report on its socket) as the failure.
static void bad_stage(const char *stage) __attribute__((noreturn));
static void bad_stage(const char *stage)
{
	fprintf(stderr, "vpsctl: %s=%s: %s\n", VPSCTL_STAGE_ENV, stage, strerror(errno ? errno : EINVAL));
	_exit(127);
}

static void run_stage(const char *stage)
{
	int fd, nfds = 0;
	int fds[64];
	if ((fd = stage_fd(stage, "join")) >= 0) {
		if (msg_recv(fd, stagebuf, sizeof(stagebuf), &stagemsg, fds, 0, &nfds) <= 0) {
			// Reported to the Go side as the joiner's (join.go: StageConfig).
			struct { int32_t kind, stage, err, pid; } r = { 2, 1, errno ? errno : EPROTO, 0 };
			(void)!write(fd, &r, sizeof(r));
			_exit(255);
		}
		vpsctl_join(&stagemsg, fd);
	}
	if ((fd = stage_fd(stage, "reaper")) >= 0) {
		if (msg_read_fd(fd, stagebuf, sizeof(stagebuf), &stagemsg) < 0)
			bad_stage(stage);
		close(fd);
		vpsctl_reaper(&stagemsg);
	}
	if ((fd = stage_fd(stage, "remover")) >= 0) {
		if (msg_read_fd(fd, stagebuf, sizeof(stagebuf), &stagemsg) < 0)
			bad_stage(stage);
		close(fd);
		vpsctl_remover(&stagemsg);
	}
	if ((fd = stage_fd(stage, "spawner")) >= 0) {
		vpsctl_spawner_persistent = 1;
		vpsctl_spawner_main(fd, 0);
	}
	if (!strcmp(stage, "monitor"))
		vpsctl_spawner_start(1, 0);
	else if (!strcmp(stage, "keeper"))
		vpsctl_spawner_start(1, 1);
	// Any other stage is Go's.
}

__attribute__((constructor)) static void vpsctl_prestart(void)
{
	const char *stage = getenv(VPSCTL_STAGE_ENV);
	if (stage)
		run_stage(stage);
	keep_thread_start_group();
	raise_slack();
}
