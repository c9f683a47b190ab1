// The joiner: runs a command inside a running VPS, in all of its namespaces (the user namespace
// included, which a multithreaded process can never join: setns(2) EINVAL), its groups, its root
// directory, as its root user. The protocol is drawn in join.go.
//
//   joiner: join the VPS's groups; setns(pidfd of the VPS init, its namespaces); become its root;
//           fork (the PID namespace applies to children only)
//   child:  a session of its own; a pty from the VPS's devpts if asked; drop capabilities;
//           close every fd above 2 on exec; exec the command
//   joiner: reports the child's PID, waits for it and exits as it did (signals re-raised)
//
// The joiner makes itself non-dumpable before it joins anything: its /proc/PID/exe is the
// host's vpsctl binary, and a tenant must not reach it through /proc (CVE-2019-5736). execve()
// of the command resets that, and the command is the tenant's own binary.
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

#include "prestart.h"
#include "vpsctl_seccomp.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

// Report kinds and the stages of a failure: join.go has the same numbers.
enum { MSG_STARTED = 1, MSG_ERROR = 2 };
enum {
	ST_CONFIG = 1, ST_SETNS, ST_IDS, ST_FORK, ST_PTY, ST_SENDPTY, ST_CAPS, ST_CHDIR, ST_EXEC, ST_CGROUP, ST_SECCOMP,
};

struct report {
	int32_t kind;
	int32_t stage;
	int32_t err;
	int32_t pid;
};

static int rsock = -1;

static void send_report(int kind, int stage, int err, int pid)
{
	struct report m = { kind, stage, err, pid };
	ssize_t r;
	do
		r = send(rsock, &m, sizeof(m), MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
}

static void fail(int stage) __attribute__((noreturn));
static void fail(int stage)
{
	send_report(MSG_ERROR, stage, errno, 0);
	_exit(255);
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
	return sendmsg(rsock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

// join_group writes this thread, the whole process while it is one thread, into the v1 group
// whose tasks file is tasks: "0" moves the writer and takes no global lock (a PID written to
// cgroup.procs waits for an RCU grace period after a quiet spell). The cgroup2 group is the
// one we were cloned into.
static int join_group(const char *tasks)
{
	int fd = open(tasks, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, "0", 1);
	int e = errno;
	close(fd);
	errno = e;
	return w == 1 ? 0 : -1;
}

static volatile pid_t child = -1;

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

#define MAXARGS 4096
static char *argv_[MAXARGS + 1], *envp_[MAXARGS + 1];

// What a joiner's message says.
struct join {
	int pidfd, nsflags, tty, setgroups, nargs, nenv, ngroups, cwd_fallback;
	uint64_t capdrop;
	const char *cwd;
	const char *groups[64];
};

static void parse(struct msg *m, struct join *j)
{
	memset(j, 0, sizeof(*j));
	j->pidfd = -1, j->cwd = "/";
	for (int i = 0; i < m->n; i++) {
		const struct msg_kv *kv = &m->kv[i];
		int bad = 0;
		if (!strcmp(kv->key, "pidfd"))
			bad = msg_int(kv->val, &j->pidfd);
		else if (!strcmp(kv->key, "ns"))
			bad = msg_int(kv->val, &j->nsflags);
		else if (!strcmp(kv->key, "tty"))
			bad = msg_int(kv->val, &j->tty);
		else if (!strcmp(kv->key, "setgroups"))
			bad = msg_int(kv->val, &j->setgroups);
		else if (!strcmp(kv->key, "capdrop"))
			bad = msg_u64(kv->val, &j->capdrop);
		else if (!strcmp(kv->key, "cwd"))
			j->cwd = kv->val;
		else if (!strcmp(kv->key, "cwd-fallback"))
			bad = msg_int(kv->val, &j->cwd_fallback);
		else if (!strcmp(kv->key, "tasks") && j->ngroups < 64)
			j->groups[j->ngroups++] = kv->val;
		else if (!strcmp(kv->key, "arg") && j->nargs < MAXARGS)
			argv_[j->nargs++] = (char *)kv->val;
		else if (!strcmp(kv->key, "env") && j->nenv < MAXARGS)
			envp_[j->nenv++] = (char *)kv->val;
		else
			bad = msg_bad(kv);
		if (bad)
			fail(ST_CONFIG);
	}
	argv_[j->nargs] = NULL;
	envp_[j->nenv] = NULL;
	if (j->pidfd < 0 || j->nargs == 0) {
		errno = EINVAL;
		fail(ST_CONFIG);
	}
}

// enter joins the VPS: its groups first, while we are still the host's (the command is
// accounted to the VPS, and killed with it, from its first instruction), then every namespace of
// its init with one setns(pidfd) (atomic, with no PID-reuse race), then its root user. The PID
// namespace applies to children only.
static void enter(const struct join *j)
{
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	for (int i = 0; i < j->ngroups; i++)
		if (join_group(j->groups[i]) < 0 && errno != ENOENT) // ENOENT: a hierarchy the host lacks
			fail(ST_CGROUP);
	if (setns(j->pidfd, j->nsflags) < 0)
		fail(ST_SETNS);
	close(j->pidfd);
	if (j->nsflags & CLONE_NEWUSER) {
		if (setresgid(0, 0, 0) < 0)
			fail(ST_IDS);
		if (j->setgroups && setgroups(0, NULL) < 0)
			fail(ST_IDS);
		if (setresuid(0, 0, 0) < 0)
			fail(ST_IDS);
	} else if (setgroups(0, NULL) < 0) {
		fail(ST_IDS);
	}
}

// run execs the command, in the VPS already (its PID namespace too): a session of its own, a
// pty from the VPS's devpts if asked, the bounding set, the working directory, no host fd.
static void run(const struct join *j) __attribute__((noreturn));
static void run(const struct join *j)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	// A session of its own, always: without a pty the command's stdio may be the
	// administrator's terminal, and a command sharing that terminal's session could push
	// keystrokes into the administrator's shell with TIOCSTI.
	if (setsid() < 0)
		fail(ST_PTY);
	if (j->tty) {
		// The pty comes from the VPS's own devpts, so the shell sees /dev/pts/N.
		int mfd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (mfd < 0)
			fail(ST_PTY);
		int unlock = 0;
		if (ioctl(mfd, TIOCSPTLCK, &unlock) < 0)
			fail(ST_PTY);
		int sl = ioctl(mfd, TIOCGPTPEER, O_RDWR | O_NOCTTY);
		if (sl < 0)
			fail(ST_PTY);
		if (ioctl(sl, TIOCSCTTY, 0) < 0)
			fail(ST_PTY);
		if (send_fd(mfd) < 0)
			fail(ST_SENDPTY);
		close(mfd);
		if (dup2(sl, 0) < 0 || dup2(sl, 1) < 0 || dup2(sl, 2) < 0)
			fail(ST_PTY);
		if (sl > 2)
			close(sl);
	}
	for (int c = 0; c < 64; c++) {
		if ((j->capdrop >> c) & 1) {
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
				fail(ST_CAPS);
		}
	}
	// A directory that is not there is an error, unless the caller allows "/" instead (enter's
	// /root, which a guest may lack).
	if (chdir(j->cwd) < 0 && (!j->cwd_fallback || chdir("/") < 0))
		fail(ST_CHDIR);
	// No host fd other than stdio may survive into the VPS (CVE-2024-21626). The socket stays
	// usable to report an exec failure and closes on exec.
	vpsctl_cloexec_from(3);
	// The syscall filter every process of the VPS has (internal/seccomp), as its init's.
	if (vpsctl_seccomp_install_default() < 0)
		fail(ST_SECCOMP);
	vpsctl_guest_slack(); // before environ is the command's
	extern char **environ;
	environ = envp_;
	execvp(argv_[0], argv_);
	fail(ST_EXEC);
}

void vpsctl_join_here(struct msg *m, int sock)
{
	rsock = sock;
	struct join j;
	parse(m, &j);
	enter(&j);
	run(&j);
}

void vpsctl_join(struct msg *m, int sock)
{
	rsock = sock;
	struct join j;
	parse(m, &j);
	enter(&j);
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid < 0)
		fail(ST_FORK);
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		run(&j);
	}
	child = pid;
	struct sigaction sa = { 0 };
	sa.sa_handler = forward;
	sa.sa_flags = SA_RESTART;
	int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
		sigaction(fwd[i], &sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	send_report(MSG_STARTED, 0, 0, pid);
	close(sock);
	vpsctl_exit_as(pid, 255, 1);
}
