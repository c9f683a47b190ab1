// vpsctl's joiner: runs before the Go runtime starts (a constructor), so that it can join a
// VPS's user namespace, which a multithreaded process never can (setns(2): EINVAL).
//
// It acts only when _VPSCTL_NSENTER names a socket fd; otherwise it returns at once and the Go
// program starts as usual. The protocol is documented in protocol.go beside this file.
//
//   vpsctl (Go) --spawn /proc/self/exe--> joiner (this code, in the VPS's cgroup)
//       joiner: setns(pidfd of the VPS init, its namespaces); become VPS root; fork
//       child: in the VPS's PID namespace; pty if asked; drop caps; exec the command
//       joiner: waits for the child and exits with its status (signals re-raised)
//
// The joiner makes itself non-dumpable before it joins anything: its /proc/PID/exe is the host's
// vpsctl binary, and a tenant must not reach it through /proc (CVE-2019-5736). execve() of the
// command resets that, and the command is the tenant's own binary.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "exitas.h"
#include "slack.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

// Message kinds and stages: keep in step with protocol.go.
enum { MSG_STARTED = 1, MSG_ERROR = 2 };
// The socket is SOCK_SEQPACKET: the joiner and its child both write to it, and message
// boundaries keep their reports apart.
enum {
	ST_CONFIG = 1, ST_SETNS, ST_IDS, ST_FORK, ST_PTY, ST_SENDPTY, ST_CAPS, ST_CHDIR, ST_EXEC,
};

struct msg {
	int32_t kind;
	int32_t stage;
	int32_t err;
	int32_t pid;
};

static int sock = -1;

static void send_msg(int kind, int stage, int err, int pid)
{
	struct msg m = { kind, stage, err, pid };
	ssize_t r;
	do {
		r = send(sock, &m, sizeof(m), MSG_NOSIGNAL);
	} while (r < 0 && errno == EINTR);
}

static void fail(int stage)
{
	send_msg(MSG_ERROR, stage, errno, 0);
	_exit(255);
}

#define MAXARGS 4096
static char buf[1 << 20];
static char *argv_[MAXARGS + 1], *envp_[MAXARGS + 1];

static volatile pid_t child = -1;

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

static int send_fd(int fd)
{
	char c = 'P';
	struct iovec iov = { &c, 1 };
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr mh = { 0 };
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.b;
	mh.msg_controllen = sizeof(u.b);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

void vpsctl_fastexec(int argc, char **argv);
void vpsctl_faststop(int argc, char **argv);
void vpsctl_fastdestroy(int argc, char **argv);
void vpsctl_spare_claim(int argc, char **argv);
void vpsctl_init_child(const char *sockfd) __attribute__((noreturn));
void vpsctl_reaper(int argc, char **argv, const char *spec) __attribute__((noreturn));
void vpsctl_rmtree(const char *path) __attribute__((noreturn));
void vpsctl_start_fork(int argc, char **argv);
void vpsctl_exit_fork(int argc, char **argv);
void vpsctl_spawner_start(int argc, char **argv, int boot);
extern int vpsctl_start_fd;

#ifndef __GLIBC__
extern char **environ;

// process_args finds argc and argv without libc's help. glibc passes them to constructors;
// musl calls constructors with no arguments. At this point environ still points where the
// kernel put the environment: on the initial stack, right after argv's NULL, which follows
// argc and argv (the System V ABI's process start). Walking back from there, the first word
// that equals the number of pointers passed over is argc: a pointer never is that small.
static int process_args(char ***argv)
{
	char **p = environ - 1; // argv[argc], the NULL
	long n = 0;
	while (n < (1 << 20) && (long)p[-1] != n) {
		p--;
		n++;
	}
	*argv = p;
	return (int)n;
}
#endif

// keep_thread_start_group: musl's allocator unmaps a group of small slots as soon as its last
// slot is freed. Go's cgo runtime mallocs a three-word start record for every thread it makes
// (x_cgo_thread_start), which the new thread frees at once: an mmap and a munmap per thread, and
// the munmap of a multithreaded process is a TLB shootdown, an IPI to the other CPU, which
// traps to the hypervisor here (about 20 per command). One record of that size that is never
// freed keeps the group mapped. glibc's allocator keeps small chunks anyway.
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

// vpsctl_host_slack is the timer slack this vpsctl was started with (0: unknown), for the Go
// side (internal/timerslack).
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
// slack (internal/timerslack says why), after the forks above: the spawner and start's waiting
// parent keep the host's. A host slack higher still is kept.
static void raise_slack(void)
{
	vpsctl_host_slack = host_slack();
	int cur = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (cur >= 0 && (unsigned long)cur < VPSCTL_RAISED_SLACK_NS)
		prctl(PR_SET_TIMERSLACK, VPSCTL_RAISED_SLACK_NS, 0, 0, 0);
}

// glibc passes constructors the program's argc, argv and environment (see process_args).
__attribute__((constructor)) static void vpsctl_nsenter(int argc, char **argv, char **envp)
{
	(void)envp;
#ifndef __GLIBC__
	argc = process_args(&argv);
#endif
	const char *ic = getenv("_VPSCTL_INIT");
	if (ic)
		vpsctl_init_child(ic); // the VPS's init child (initchild.c): never returns
	const char *rp = getenv("_VPSCTL_REAPER");
	if (rp)
		vpsctl_reaper(argc, argv, rp); // a running VPS's monitor (reaper.c): never returns
	const char *rm = getenv("_VPSCTL_RMTREE");
	if (rm)
		vpsctl_rmtree(rm); // a destroyed VPS's files (rmtree.c): never returns
	const char *s = getenv("_VPSCTL_NSENTER");
	if (!s) {
		if (!getenv("_VPSCTL_MODE"))
			vpsctl_spare_claim(argc, argv); // `vpsctl run --rm`: returns unless a spare ran it
		if (!getenv("_VPSCTL_MODE") && !getenv("VPSCTL_NO_FASTPATH"))
			vpsctl_fastexec(argc, argv); // returns unless it ran the whole exec
		if (!getenv("_VPSCTL_MODE") && !getenv("VPSCTL_NO_FASTPATH")) {
			vpsctl_faststop(argc, argv);    // `stop --kill ID`: returns unless it did the stop
			vpsctl_fastdestroy(argc, argv); // `destroy ID`: returns unless it did the destroy
		}
		if (!getenv("_VPSCTL_MODE")) {
			vpsctl_start_fork(argc, argv); // `vpsctl start`: see startfork.c
			vpsctl_exit_fork(argc, argv);  // short commands: see exitfork.c
			vpsctl_spawner_start(argc, argv, vpsctl_start_fd >= 0); // see spawner.c
		} else if (!strcmp(getenv("_VPSCTL_MODE"), "spare")) {
			vpsctl_spawner_start(argc, argv, 2); // a spare keeper's, for all its boots
		}
		keep_thread_start_group();
		raise_slack();
		return;
	}
	sock = atoi(s);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	// Read the whole config: NUL-terminated "key=value" strings ending with an empty one.
	size_t n = 0;
	for (;;) {
		if (n == sizeof(buf))
			fail(ST_CONFIG);
		ssize_t r = read(sock, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errno = r == 0 ? EPROTO : errno;
			fail(ST_CONFIG);
		}
		n += r;
		if (n >= 2 && buf[n - 1] == 0 && buf[n - 2] == 0)
			break;
		if (n == 1 && buf[0] == 0)
			break;
	}
	int pidfd = -1, nsflags = 0, tty = 0, nargs = 0, nenv = 0, setgroups_ok = 0;
	uint64_t capdrop = 0;
	const char *cwd = "/";
	for (char *p = buf; p < buf + n && *p; p += strlen(p) + 1) {
		if (!strncmp(p, "pidfd=", 6))
			pidfd = atoi(p + 6);
		else if (!strncmp(p, "ns=", 3))
			nsflags = atoi(p + 3);
		else if (!strncmp(p, "tty=", 4))
			tty = atoi(p + 4);
		else if (!strncmp(p, "setgroups=", 10))
			setgroups_ok = atoi(p + 10);
		else if (!strncmp(p, "capdrop=", 8))
			capdrop = strtoull(p + 8, NULL, 16);
		else if (!strncmp(p, "cwd=", 4))
			cwd = p + 4;
		else if (!strncmp(p, "arg=", 4) && nargs < MAXARGS)
			argv_[nargs++] = p + 4;
		else if (!strncmp(p, "env=", 4) && nenv < MAXARGS)
			envp_[nenv++] = p + 4;
	}
	argv_[nargs] = NULL;
	envp_[nenv] = NULL;
	if (pidfd < 0 || nargs == 0) {
		errno = EINVAL;
		fail(ST_CONFIG);
	}

	// One call joins every namespace of the VPS's init, atomically, with no PID-reuse race.
	if (setns(pidfd, nsflags) < 0)
		fail(ST_SETNS);
	close(pidfd);
	if (nsflags & CLONE_NEWUSER) {
		if (setresgid(0, 0, 0) < 0)
			fail(ST_IDS);
		if (setgroups_ok && setgroups(0, NULL) < 0)
			fail(ST_IDS);
		if (setresuid(0, 0, 0) < 0)
			fail(ST_IDS);
	} else if (setgroups(0, NULL) < 0) {
		fail(ST_IDS);
	}

	// The PID namespace applies to children only.
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid < 0)
		fail(ST_FORK);
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		// A session of its own, always: without a pty the command's stdio may be the
		// administrator's terminal, and a command sharing that terminal's session could push
		// keystrokes into the administrator's shell with TIOCSTI.
		if (setsid() < 0)
			fail(ST_PTY);
		if (tty) {
			// The pty comes from the VPS's own devpts, so the shell sees /dev/pts/N.
			int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
			if (m < 0)
				fail(ST_PTY);
			int unlock = 0;
			if (ioctl(m, TIOCSPTLCK, &unlock) < 0)
				fail(ST_PTY);
			int sl = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY);
			if (sl < 0)
				fail(ST_PTY);
			if (ioctl(sl, TIOCSCTTY, 0) < 0)
				fail(ST_PTY);
			if (send_fd(m) < 0)
				fail(ST_SENDPTY);
			close(m);
			if (dup2(sl, 0) < 0 || dup2(sl, 1) < 0 || dup2(sl, 2) < 0)
				fail(ST_PTY);
			if (sl > 2)
				close(sl);
		}
		for (int c = 0; c < 64; c++) {
			if ((capdrop >> c) & 1) {
				if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
					fail(ST_CAPS);
			}
		}
		if (chdir(cwd) < 0 && chdir("/") < 0)
			fail(ST_CHDIR);
		// No host fd other than stdio may survive into the VPS (CVE-2024-21626). The socket
		// stays usable to report an exec failure and closes on exec.
		if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
			for (int fd = 3; fd < 1024; fd++)
				fcntl(fd, F_SETFD, FD_CLOEXEC);
		}
		vpsctl_guest_slack(); // before environ is the command's
		extern char **environ;
		environ = envp_;
		execvp(argv_[0], argv_);
		fail(ST_EXEC);
	}
	child = pid;
	struct sigaction sa = { 0 };
	sa.sa_handler = forward;
	sa.sa_flags = SA_RESTART;
	int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
		sigaction(fwd[i], &sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	send_msg(MSG_STARTED, 0, 0, pid);
	close(sock);

	vpsctl_exit_as(pid, 255, 1);
}

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
