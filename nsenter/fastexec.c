// vpsctl's fast path for `vpsctl exec ID -- CMD...`: the whole command done here, before the Go
// runtime starts, so that exec costs about what nsenter(1) does (the Go runtime alone costs more
// than an nsenter). It handles only the plain form (numeric ID, no exec options, the VPS running
// and not suspended, the default bounding set); for anything else, or anything unexpected, it
// returns and the Go CLI does the same work with full error reporting.
//
// It reads two of the store's files (see package store): vps/ID/run.json for the init's PID and
// start time, vps/ID/vps.conf for NAMESPACES and CAPABILITY; the VPS's groups (to refuse a
// frozen VPS, and to join) are named as the fast stop names them (fastlife.c,
// vpsctl_fast_groups). The joining itself is the same as the joiner's in nsenter.c.
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitas.h"
#include "fastpath.h"
#include "slack.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

// Keep in step with runtime/caps.go defaultDropped (a Go test compares them).
static const int default_dropped[] = { 16 /* sys_module */, 17 /* sys_rawio */, 25 /* sys_time */,
	33 /* mac_admin */, 32 /* mac_override */, 34 /* syslog */, 35 /* wake_alarm */,
	36 /* block_suspend */, 30 /* audit_control */, 37 /* audit_read */, 20 /* sys_pacct */,
	39 /* bpf */, 38 /* perfmon */ };

uint64_t vpsctl_fast_capdrop(void)
{
	uint64_t m = 0;
	for (size_t i = 0; i < sizeof(default_dropped) / sizeof(default_dropped[0]); i++)
		m |= 1ULL << default_dropped[i];
	return m;
}

int vpsctl_read_file(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	// In a loop: a /proc file (the mount table) can come in pieces.
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + got, n - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			return -1;
		}
		got += (size_t)r;
		if (r == 0 || got == n - 1)
			break;
	}
	close(fd);
	buf[got] = 0;
	return (int)got;
}

// vpsctl_json_num finds "key": NUMBER in a flat JSON object written by Go's encoding/json.
long long vpsctl_json_num(const char *js, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(js, pat);
	if (!p)
		return -1;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	if (!isdigit((unsigned char)*p))
		return -1;
	return strtoll(p, NULL, 10);
}

// vpsctl_conf_value copies the value of KEY="..." from vps.conf (no escapes expected in the keys read).
int vpsctl_conf_value(const char *conf, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	for (const char *l = conf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, key, kl) || l[kl] != '=')
			continue;
		const char *v = l + kl + 1;
		int q = *v == '"';
		v += q;
		size_t i = 0;
		while (v[i] && v[i] != '\n' && !(q && v[i] == '"') && i + 1 < n) {
			if (v[i] == '\\')
				return -1;
			out[i] = v[i];
			i++;
		}
		out[i] = 0;
		return 0;
	}
	out[0] = 0;
	return 1;
}

unsigned long long vpsctl_proc_start(int pid, char *state)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (vpsctl_read_file(path, buf, sizeof(buf)) <= 0)
		return 0;
	char *p = strrchr(buf, ')');
	if (!p)
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

static volatile pid_t fast_child = -1;

static void fast_forward(int sig)
{
	if (fast_child > 0)
		kill(fast_child, sig);
}

void vpsctl_fastexec(int argc, char **argv)
{
	int i;
	const char *root = vpsctl_state_root(argc, argv, &i);
	if (i + 3 >= argc || strcmp(argv[i], "exec") || strcmp(argv[i + 2], "--"))
		return;
	const char *id = argv[i + 1];
	if (!vpsctl_plain_id(id))
		return;
	char **cmd = argv + i + 3;
	if (root[0] != '/' || getenv("VPSCTL_FAULT"))
		return;

	char path[4096], run[4096], conf[65536], ns[256], caps[256], st;
	snprintf(path, sizeof(path), "%s/vps/%s/run.json", root, id);
	if (vpsctl_read_file(path, run, sizeof(run)) <= 0)
		return;
	long long initpid = vpsctl_json_num(run, "init_pid"), start = vpsctl_json_num(run, "init_start");
	if (initpid <= 0 || start <= 0 || vpsctl_proc_start((int)initpid, &st) != (unsigned long long)start || st == 'Z')
		return;
	snprintf(path, sizeof(path), "%s/vps/%s/vps.conf", root, id);
	if (vpsctl_read_file(path, conf, sizeof(conf)) <= 0)
		return;
	if (vpsctl_conf_value(conf, "NAMESPACES", ns, sizeof(ns)) != 0 || vpsctl_conf_value(conf, "CAPABILITY", caps, sizeof(caps)) < 0 || caps[0])
		return;
	int flags = 0;
	for (char *t = strtok(ns, " "); t; t = strtok(NULL, " ")) {
		if (!strcmp(t, "uts")) flags |= CLONE_NEWUTS;
		else if (!strcmp(t, "ipc")) flags |= CLONE_NEWIPC;
		else if (!strcmp(t, "pid")) flags |= CLONE_NEWPID;
		else if (!strcmp(t, "mnt")) flags |= CLONE_NEWNS;
		else if (!strcmp(t, "net")) flags |= CLONE_NEWNET;
		else if (!strcmp(t, "user")) flags |= CLONE_NEWUSER;
		else if (!strcmp(t, "cgroup")) flags |= CLONE_NEWCGROUP;
		else return;
	}
	// A suspended VPS is refused by the Go path, with its message.
	if (vpsctl_fast_groups(id) < 0 || vpsctl_fast_frozen())
		return;
	int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)initpid, 0);
	if (pidfd < 0)
		return;

	// From here on we are committed: failures are reported and exit.
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (!vpsctl_fast_join() || setns(pidfd, flags) < 0) {
		fprintf(stderr, "vpsctl: joining VPS %s: %s\n", id, strerror(errno));
		_exit(3);
	}
	close(pidfd);
	if (flags & CLONE_NEWUSER) {
		if (setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0 || setresuid(0, 0, 0) < 0) {
			fprintf(stderr, "vpsctl: becoming root of VPS %s: %s\n", id, strerror(errno));
			_exit(3);
		}
	}
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "vpsctl: fork: %s\n", strerror(errno));
		_exit(3);
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		setsid(); // never share the caller's terminal session (TIOCSTI)
		uint64_t drop = vpsctl_fast_capdrop();
		for (int c = 0; c < 64; c++)
			if ((drop >> c) & 1)
				prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
		if (chdir("/") < 0)
			_exit(3);
		if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
			for (int fd = 3; fd < 1024; fd++)
				fcntl(fd, F_SETFD, FD_CLOEXEC);
		static char *env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=/root", "USER=root", "LOGNAME=root", "container=vpsctl", NULL };
		vpsctl_guest_slack();
		extern char **environ;
		environ = env;
		execvp(cmd[0], cmd);
		int e = errno;
		fprintf(stderr, "vpsctl: %s: %s\n", cmd[0], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	fast_child = pid;
	struct sigaction sa = { 0 };
	sa.sa_handler = fast_forward;
	sa.sa_flags = SA_RESTART;
	int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
	for (size_t k = 0; k < sizeof(fwd) / sizeof(fwd[0]); k++)
		sigaction(fwd[k], &sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	vpsctl_exit_as(pid, 3, 0);
}
