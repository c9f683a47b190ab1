// The vpsctl CLI's front door: C that reads the command line before the Go runtime starts, for
// the commands whose cost is mostly that runtime's start. It is part of the vpsctl program only
// (package main): a program that imports vpsctl's packages links the library's gated C
// (prestart/prestart.c), never this. It decides nothing a Go command would decide differently:
// each path does the common case of one command and, for anything it does not expect, returns
// having changed nothing, and the Go CLI does the whole command with its checks and messages.
//
//   vpsctl exec ID -- CMD...        the join record the VPS's monitor wrote (prestart/join.go)
//                                   and the joiner's code (prestart/join.c), no Go runtime at all
//   vpsctl run --rm --template T [--hostname H] -- CMD...
//                                   a spare VPS of a keeper of T runs CMD (package spare)
//   vpsctl start ID                 forks: the child starts the VPS and stays as its monitor,
//                                   the parent exits with the child's code (one Go runtime per
//                                   boot instead of two); the child is placed in vpsctl's
//                                   monitor group as the state root's placement record says
//   vpsctl create|set|stop|destroy|run|list|status ...
//                                   forks: the parent exits with the code the child writes once
//                                   its work is done, off the clock of the child's Go exit
//   start, run, stop and destroy also get a spawner (prestart/spawner.c) forked here.
//
// VPSCTL_NO_FASTPATH=1 turns the exec and spare paths off (debugging); VPSCTL_FAULT (the crash
// tests) turns them off too, as they have no fault points.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "prestart.h"

// The command line, parsed once: vpsctl [--root DIR|--root=DIR] COMMAND ARGS...
struct cmdline {
	int argc;
	char **argv;
	// the state root it names, else VPSCTL_ROOT, else the host configuration's ROOT, else
	// /var/lib/vpsctl; NULL when the configuration's ROOT cannot be read here (the paths that
	// need the root are then left to Go)
	const char *root;
	int cmd;          // index of COMMAND (argc: none)
	int plain;        // no global flag other than --root before COMMAND
};

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

// config_root finds ROOT in the host configuration (hostconf: VPSCTL_CONFIG, else
// /etc/vpsctl/vpsctl.conf; KEY="value" lines, the last one counts): 1 with *root set, 0 if the
// file sets none or, at the default path, does not exist, -1 if this simple reading cannot
// tell (an explicit file missing, a file too large, an escape in the value). It reads ROOT
// alone: the Go CLI checks the whole file, which a path taken here (exec's, a spare's claim)
// does not start.
static char conf_buf[1 << 16];

static int config_root(const char **root)
{
	const char *path = getenv("VPSCTL_CONFIG");
	int explicit = path && *path;
	if (!explicit)
		path = "/etc/vpsctl/vpsctl.conf";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT && !explicit ? 0 : -1;
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, conf_buf + n, sizeof(conf_buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			close(fd);
			if (r < 0)
				return -1;
			break;
		}
		n += (size_t)r;
		if (n == sizeof(conf_buf) - 1) {
			close(fd);
			return -1;
		}
	}
	conf_buf[n] = 0;
	int found = 0;
	for (char *line = conf_buf, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		while (*line == ' ' || *line == '\t')
			line++;
		if (strncmp(line, "ROOT=", 5))
			continue;
		char *v = line + 5, *end = v + strlen(v);
		while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = 0;
		if (*v == '"') {
			if (end - v < 2 || end[-1] != '"')
				return -1;
			*--end = 0;
			v++;
		}
		if (strpbrk(v, "\"\\ \t") || *v != '/')
			return -1; // escapes, blanks, a relative path: Go's to read (and refuse)
		*root = v;
		found = 1;
	}
	return found;
}

static void parse_cmdline(int argc, char **argv, struct cmdline *c)
{
	c->argc = argc, c->argv = argv, c->plain = 1;
	const char *env = getenv("VPSCTL_ROOT");
	c->root = "/var/lib/vpsctl";
	if (env && *env)
		c->root = env;
	else if (config_root(&c->root) < 0)
		c->root = NULL;
	int i = 1;
	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i] + (argv[i][1] == '-' ? 2 : 1);
		if (!strcmp(a, "root") && i + 1 < argc) {
			c->root = argv[i + 1];
			i += 2;
		} else if (!strncmp(a, "root=", 5)) {
			c->root = a + 5;
			i++;
		} else {
			c->plain = 0;
			i++;
		}
	}
	c->cmd = i;
}

static const char *word(const struct cmdline *c, int k)
{
	return c->cmd + k < c->argc ? c->argv[c->cmd + k] : NULL;
}

static int is(const struct cmdline *c, const char *command)
{
	const char *w = word(c, 0);
	return w && !strcmp(w, command);
}

// plain_id: s is a VPS ID in its one spelling (1..4294967295, no sign, no leading zero).
static int plain_id(const char *s)
{
	if (!s || s[0] < '1' || s[0] > '9' || strlen(s) > 10)
		return 0;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return strtoull(s, NULL, 10) <= 4294967295ULL;
}

// clone_into forks as fork(2) does, the child born in cgroup2 directory dirfd
// (CLONE_INTO_CGROUP: no move by PID after the fork, which would wait for an RCU grace period,
// see cgroup.Manager.TaskFiles); -1 if the kernel refuses. A raw clone3: libc's cached thread ID stays its parent's in the child, which only
// raise() and pthread_kill() of the main thread would read (the Go runtime signals its threads
// by the IDs it reads itself).
static pid_t clone_into(int dirfd)
{
	struct vpsctl_clone_args args = { 0 };
	args.flags = CLONE_INTO_CGROUP;
	args.exit_signal = SIGCHLD;
	args.cgroup = (uint64_t)dirfd;
	return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

// read_record reads the record at rel below the state root (a message Go wrote) into buf and
// m: 0, or -1 if there is none or it cannot be read.
static int read_record(const struct cmdline *c, const char *rel, char *buf, size_t n, struct msg *m)
{
	char path[4096];
	if (!c->root || snprintf(path, sizeof(path), "%s/%s", c->root, rel) >= (int)sizeof(path))
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	long r = msg_read_fd(fd, buf, n, m);
	close(fd);
	return r < 0 ? -1 : 0;
}

// --- vpsctl exec ID -- CMD ---------------------------------------------------------------

static char recbuf[1 << 16];
static struct msg rec, req;
static char pidfdbuf[16];

// proc_start is process pid's start time (/proc/PID/stat field 22) and state, 0 if none.
static unsigned long long proc_start(int pid, char *state)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p || !p[1])
		return 0;
	p += 2;
	*state = *p;
	for (int f = 3; f < 22 && p; f++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return p ? strtoull(p, NULL, 10) : 0;
}

// file_is: the first line of path is exactly want.
static int file_is(const char *path, const char *want)
{
	char buf[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return !strcmp(buf, want);
}

static volatile pid_t joiner = -1;

static void to_joiner(int sig)
{
	if (joiner > 0)
		kill(joiner, sig);
}

// fast_exec runs CMD in VPS id from its join record, and exits with CMD's status; it returns,
// having run nothing, if the record is missing or stale, the VPS is frozen, or the joiner
// reports any failure (the Go CLI then does the exec and says why).
static void fast_exec(const struct cmdline *c, const char *id, char **cmd, int ncmd)
{
	char rel[64];
	snprintf(rel, sizeof(rel), "vps/%s/join", id); // id: a plain ID, at most 10 digits
	if (read_record(c, rel, recbuf, sizeof(recbuf), &rec) < 0)
		return;
	int pid = 0;
	uint64_t start = 0;
	const char *cgroup2 = NULL;
	req.n = 0;
	for (int i = 0; i < rec.n; i++) {
		struct msg_kv *kv = &rec.kv[i];
		if (!strcmp(kv->key, "cgroup2")) {
			cgroup2 = kv->val; // where the child is born (the joiner's v1 groups are its tasks keys)
		} else if (!strcmp(kv->key, "pid")) {
			if (msg_int(kv->val, &pid) < 0)
				return;
		} else if (!strcmp(kv->key, "start")) {
			if (msg_u64(kv->val, &start) < 0)
				return;
		} else if (!strcmp(kv->key, "thawed")) {
			// "PATH=VALUE": the VPS is not suspended while PATH's first line is VALUE.
			char *eq = strrchr(kv->val, '=');
			if (!eq)
				return;
			*eq = 0;
			int ok = file_is(kv->val, eq + 1);
			*eq = '=';
			if (!ok)
				return;
		} else if (req.n < MSG_MAXKV - 1) {
			req.kv[req.n++] = *kv; // the joiner's own keys
		}
	}
	char st;
	if (pid <= 0 || !start || proc_start(pid, &st) != start || st == 'Z')
		return;
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return;
	// Checked again with the pidfd held: the PID cannot have been reused since.
	if (proc_start(pid, &st) != start || req.n + 1 + ncmd > MSG_MAXKV) {
		close(pidfd);
		return;
	}
	snprintf(pidfdbuf, sizeof(pidfdbuf), "%d", pidfd);
	req.kv[req.n++] = (struct msg_kv){ "pidfd", pidfdbuf };
	for (int k = 0; k < ncmd; k++)
		req.kv[req.n++] = (struct msg_kv){ "arg", cmd[k] };

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		close(pidfd);
		return;
	}
	// The command is our child in the VPS's PID namespace: we set that namespace for our
	// children (our own stays the host's), fork, and set ours back, so that the Go path, if
	// it must take over, starts its processes on the host. The child joins the rest and execs.
	int cgfd = cgroup2 ? open(cgroup2, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
	int ownpid = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if ((cgroup2 && cgfd < 0) || ownpid < 0 || setns(pidfd, CLONE_NEWPID) < 0) {
		if (ownpid >= 0)
			close(ownpid);
		if (cgfd >= 0)
			close(cgfd);
		close(pidfd);
		close(sv[0]);
		close(sv[1]);
		return;
	}
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	// Born in the VPS's cgroup2 group, or not at all (Go then joins where the init is now: a
	// guest's systemd may have made the recorded group an inner node, which takes no process).
	pid_t child = cgfd >= 0 ? clone_into(cgfd) : fork();
	if (cgfd >= 0)
		close(cgfd);
	if (child == 0) {
		close(sv[0]);
		sigprocmask(SIG_SETMASK, &old, NULL);
		vpsctl_join_here(&req, sv[1]);
	}
	int back = setns(ownpid, CLONE_NEWPID);
	close(ownpid);
	close(sv[1]);
	close(pidfd);
	if (child < 0 || back < 0) {
		// A host whose PID namespace for children we cannot set back cannot run the Go path
		// either: nothing the command line asked for has happened; the child, if any, dies with
		// us (parent-death signal) before it runs anything.
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(sv[0]);
		if (back < 0)
			_exit(3);
		return;
	}
	joiner = child;
	struct sigaction sa = { 0 };
	sa.sa_handler = to_joiner;
	sa.sa_flags = SA_RESTART;
	int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
	struct sigaction prev[sizeof(fwd) / sizeof(fwd[0])];
	for (size_t k = 0; k < sizeof(fwd) / sizeof(fwd[0]); k++)
		sigaction(fwd[k], &sa, &prev[k]);
	sigprocmask(SIG_SETMASK, &old, NULL);
	// join.c's report (kind, stage, errno, pid): ERROR if anything failed, the exec included;
	// EOF once the command runs (the socket is close-on-exec in it).
	int32_t r[4];
	ssize_t got;
	do
		got = recv(sv[0], r, sizeof(r), 0);
	while (got < 0 && errno == EINTR);
	close(sv[0]);
	if (got == 0)
		vpsctl_exit_as(child, 255, 0); // the command runs: its status is ours
	// The command never ran: Go does the whole exec, and says why if it fails too.
	for (size_t k = 0; k < sizeof(fwd) / sizeof(fwd[0]); k++)
		sigaction(fwd[k], &prev[k], NULL);
	joiner = -1;
	while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
		;
}

// --- vpsctl run --rm --template T [--hostname H] -- CMD ------------------------------------

// The keeper's answers (spare/claim.go has the same numbers).
enum { CLAIM_STARTED = 1, CLAIM_EXITED = 2, CLAIM_FALLBACK = 3 };

static int claim_sock = -1;

// forward_signal: SIGINT, SIGTERM and SIGQUIT end the VPS, as they end a run's (the keeper
// kills its init; we then exit with its status).
static void forward_signal(int sig)
{
	int32_t s = sig;
	send(claim_sock, &s, sizeof(s), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// flag_value matches argv[*i] against --name VALUE, --name=VALUE (and one dash): the value, or
// NULL if it is not that flag.
static const char *flag_value(int argc, char **argv, int *i, const char *name)
{
	const char *a = argv[*i] + (argv[*i][1] == '-' ? 2 : 1);
	size_t n = strlen(name);
	if (strncmp(a, name, n))
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] || *i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int plain_name(const char *s)
{
	if (!*s || *s == '.' || *s == '-' || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
		    *s != '.' && *s != '_' && *s != '-')
			return 0;
	return 1;
}

static char claimbuf[1 << 16];

// add_kv appends "key=value\0" to claimbuf at *n: 0, or -1 if it does not fit.
static int add_kv(size_t *n, const char *key, const char *value)
{
	size_t kl = strlen(key), vl = strlen(value);
	if (*n + kl + vl + 3 > sizeof(claimbuf))
		return -1;
	memcpy(claimbuf + *n, key, kl);
	claimbuf[*n + kl] = '=';
	memcpy(claimbuf + *n + kl + 1, value, vl + 1);
	*n += kl + vl + 2;
	return 0;
}

// spare_claim has a spare VPS of a keeper of the run's template run the command, and exits
// with its status; it returns, having run nothing, if there is no keeper or it does not serve
// the claim (the Go CLI then does the whole run).
static void spare_claim(const struct cmdline *c)
{
	int argc = c->argc, i = c->cmd + 1;
	char **argv = c->argv;
	const char *tpl = NULL, *host = "";
	int rm = 0;
	for (; i < argc && strcmp(argv[i], "--"); i++) {
		const char *v;
		if (argv[i][0] != '-')
			return; // an ID, or arguments before "--"
		if (!strcmp(argv[i], "--rm") || !strcmp(argv[i], "-rm"))
			rm = 1;
		else if ((v = flag_value(argc, argv, &i, "template")))
			tpl = v;
		else if ((v = flag_value(argc, argv, &i, "hostname")))
			host = v;
		else
			return;
	}
	if (!rm || !tpl || !plain_name(tpl) || i + 1 >= argc || !c->root || c->root[0] != '/')
		return;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/spare/%s.sock", c->root, tpl) >= sizeof(sa.sun_path))
		return;
	size_t n = 0;
	if (add_kv(&n, "hostname", host) < 0)
		return;
	for (int k = i + 1; k < argc; k++)
		if (add_kv(&n, "arg", argv[k]) < 0)
			return;
	claimbuf[n++] = 0;
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(s); // no keeper of this template: the usual run
		return;
	}
	claim_sock = s;
	struct sigaction fwd = { 0 }, old[3];
	fwd.sa_handler = forward_signal;
	fwd.sa_flags = SA_RESTART;
	int sigs[3] = { SIGINT, SIGTERM, SIGQUIT };
	for (int k = 0; k < 3; k++)
		sigaction(sigs[k], &fwd, &old[k]);

	int give[3] = { 0, 1, 2 };
	char cbuf[CMSG_SPACE(sizeof(give))];
	struct iovec iov = { claimbuf, n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET, cm->cmsg_type = SCM_RIGHTS, cm->cmsg_len = CMSG_LEN(sizeof(give));
	memcpy(CMSG_DATA(cm), give, sizeof(give));
	int started = 0;
	if (sendmsg(s, &mh, MSG_NOSIGNAL) == (ssize_t)n) {
		for (;;) {
			int32_t rep[2];
			ssize_t r = recv(s, rep, sizeof(rep), 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r != sizeof(rep))
				break;
			if (rep[0] == CLAIM_STARTED)
				started = 1;
			else if (rep[0] == CLAIM_EXITED)
				_exit(rep[1] & 0xff);
			else
				break; // CLAIM_FALLBACK
		}
	}
	if (started) {
		// The command ran, and its keeper went away before its status came: the status is
		// lost, and running the command again is not ours to decide (a case only this path
		// has, so its message is here).
		fprintf(stderr, "vpsctl: run: the spare keeper went away while the command ran\n");
		_exit(3);
	}
	for (int k = 0; k < 3; k++)
		sigaction(sigs[k], &old[k], NULL);
	close(s);
	claim_sock = -1;
}

// --- forks: start, and the short commands ---------------------------------------------------

// vpsctl_start_fd and vpsctl_exit_fd are the pipes to a parent waiting for this process's exit
// code (-1: none), for the Go side (frontdoor.go).
int vpsctl_start_fd = -1;
int vpsctl_exit_fd = -1;
// vpsctl_host_mntns is the caller's mount namespace, opened by a forked start before its child
// made a private one (-1: none): the monitor makes some mounts' clones there (LXCFS's).
int vpsctl_host_mntns = -1;

// The record of where a started VPS's monitor places itself (monitor.placementRecord, which says
// what each key means): the state root's "placement", a message (msg.h) that Go writes.
struct placement {
	const char *cgroup2;  // the cgroup2 directory to clone the monitor into (NULL: none)
	const char *tasks[32]; // the v1 tasks files it writes 0 to
	int ntasks;
	int preclone; // a boot here uses an init child cloned in advance
};

static char placebuf[1 << 13];
static struct msg placemsg;

// read_placement fills p from the record; a missing or unreadable one, or one with a key this
// binary does not know (another vpsctl's), places nothing: the monitor then moves itself.
static void read_placement(const struct cmdline *c, struct placement *p)
{
	*p = (struct placement){ .preclone = 1 };
	if (read_record(c, "placement", placebuf, sizeof(placebuf), &placemsg) < 0)
		return;
	struct placement q = { .preclone = 1 };
	for (int i = 0; i < placemsg.n; i++) {
		const struct msg_kv *kv = &placemsg.kv[i];
		if (!strcmp(kv->key, "cgroup2"))
			q.cgroup2 = kv->val;
		else if (!strcmp(kv->key, "tasks") && q.ntasks < (int)(sizeof(q.tasks) / sizeof(q.tasks[0])))
			q.tasks[q.ntasks++] = kv->val;
		else if (strcmp(kv->key, "preclone") || msg_int(kv->val, &q.preclone) < 0)
			return;
	}
	*p = q;
}

// join_tasks moves this process, one thread, into the v1 groups whose tasks files p names:
// "0" moves the writing thread and takes no global lock. A file that fails is left to Go.
static void join_tasks(const struct placement *p)
{
	for (int i = 0; i < p->ntasks; i++) {
		int fd = open(p->tasks[i], O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)!write(fd, "0", 1);
			close(fd);
		}
	}
}

// fork_waiter forks a command that its caller waits for in the parent: -1 if it could not
// (nothing changed); 0 in the child, *fd the pipe's write end for its exit code; the child's PID
// in the parent, *fd the read end. Both ends are close-on-exec. cgroup2, if not NULL, is the
// cgroup2 directory the child is born in where the kernel allows.
static pid_t fork_waiter(int *fd, const char *cgroup2)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t child = -1;
	if (cgroup2) {
		int dirfd = open(cgroup2, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dirfd >= 0) {
			child = clone_into(dirfd);
			close(dirfd);
		}
	}
	if (child < 0)
		child = fork();
	if (child < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	close(p[child == 0 ? 0 : 1]);
	*fd = p[child == 0 ? 1 : 0];
	return child;
}

// exit_as_code ends a waiting parent with the exit code the child writes to fd, or, if the
// child ends without writing, as the child ended (re-raising a signal).
static void exit_as_code(int fd, pid_t child) __attribute__((noreturn));
static void exit_as_code(int fd, pid_t child)
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

// start_fork: `vpsctl start ID`'s monitor outlives the command, so it cannot be the command's
// process; here the process forks before the Go runtime exists: the parent stays behind as the
// command the caller waits for, the child (a session and a private mount namespace of its own,
// in vpsctl's monitor group as pl places it) runs the start and carries on as the VPS's monitor
// (monitor.StartHere). If the child cannot have its namespace, the Go side spawns a monitor as
// any library caller does.
static void start_fork(const struct placement *pl)
{
	int fd;
	pid_t child = fork_waiter(&fd, pl->cgroup2);
	if (child < 0)
		return;
	if (child == 0) {
		join_tasks(pl); // before the spawner is forked: what it clones is born there
		setsid();
		vpsctl_host_mntns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
		if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
			vpsctl_start_fd = fd;
		else
			close(fd);
		return;
	}
	exit_as_code(fd, child);
}

static pid_t exit_child = -1;

static void forward_to_child(int sig)
{
	if (exit_child > 0)
		kill(exit_child, sig);
}

// exit_fork: the caller's wait ends when the command's work is done, not when its Go runtime
// has been torn down (0.15-0.9 ms after its last act: its threads woken to die, its address
// space, a run's mount namespace). The child dies with the parent (PR_SET_PDEATHSIG): a command
// killed with SIGKILL stops as the one process did. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to
// the parent reach the child. Both stay in the caller's process group and session.
static void exit_fork(void)
{
	pid_t parent = getpid();
	int fd;
	pid_t child = fork_waiter(&fd, NULL);
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
	exit_as_code(fd, child);
}

static const char *short_commands[] = { "create", "set", "stop", "destroy", "run", "list", "status", NULL };

// Before the library's gate (prestart.c), which only acts when vpsctl started this process as
// one of its programs: then this one does nothing.
__attribute__((constructor(200))) static void vpsctl_frontdoor(int argc, char **argv)
{
	if (getenv(VPSCTL_STAGE_ENV))
		return;
#ifndef __GLIBC__
	argc = process_args(&argv);
#endif
	struct cmdline c;
	parse_cmdline(argc, argv, &c);
	int fast = !getenv("VPSCTL_NO_FASTPATH") && !getenv("VPSCTL_FAULT");
	if (fast && c.plain && is(&c, "exec") && c.cmd + 3 < argc && plain_id(word(&c, 1)) && !strcmp(word(&c, 2), "--"))
		fast_exec(&c, word(&c, 1), argv + c.cmd + 3, argc - c.cmd - 3);
	if (fast && c.plain && is(&c, "run"))
		spare_claim(&c);
	struct placement pl;
	if (c.plain && is(&c, "start") && c.cmd + 2 == argc && word(&c, 1)[0] != '-') {
		read_placement(&c, &pl);
		start_fork(&pl);
		if (vpsctl_start_fd >= 0)
			vpsctl_spawner_start(pl.preclone, 0);
		return;
	}
	for (int k = 0; short_commands[k]; k++)
		if (is(&c, short_commands[k])) {
			exit_fork();
			break;
		}
	if (is(&c, "run")) {
		read_placement(&c, &pl);
		vpsctl_spawner_start(pl.preclone, 0);
	}
	else if (is(&c, "stop") || is(&c, "destroy"))
		vpsctl_spawner_start(0, 0);
}
