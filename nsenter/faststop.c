// vpsctl's fast path for `vpsctl stop --kill ID`: the whole command done here, before the Go
// runtime starts, as fastexec.c does for exec. A stop --kill is mostly waiting on the kernel (the
// init's PID namespace dying, the monitor's exit); the Go runtime's start and the Go path's
// reads cost as much again, in the time of every script that stops VPSs back to back.
//
// It does what runtime.Stop does with Kill for the common case, in the same order, and returns
// to the Go path, having changed nothing, for anything else: a name instead of an ID, other
// flags, the lock held by another command, a VPS not running (or rebooting, suspended, without
// its own PID namespace, with network addresses or interfaces to tear down on the host, its
// monitor gone), a cgroup layout it does not know, VPSCTL_SYNC_DESTROY set, or VPSCTL_FAULT
// naming a point it does not have (it has package fault's stop-requested, stop-killed and
// stop-cleared, and traces with VPSCTL_TRACE as Go does). VPSCTL_NO_FASTPATH=1 turns it off.
// Once it has written the stop request it is committed; if the init or
// the monitor does not go in time, it lets go of everything and the Go path carries on (it
// finds the request, kills again and reports).
//
//   lock locks/ID.lock (flock, as store.LockVPS) ─ read vps.conf, run.json ─ pidfds of init and
//   monitor ─ stop-requested ─ hold the mount namespace ─ SIGKILL init, wait ─ wait monitor ─
//   remove run.json, stop-requested ─ fork the remover (rmtree.c: mount namespace, groups, then
//   the lock) ─ "VPS ID stopped"
//
// The VPS's groups are named as package cgroup names them (cgroup.New("vpsctl/ID")): on a
// cgroup2 host the one directory below /sys/fs/cgroup; otherwise one per v1 hierarchy and the
// first cgroup2 tree (hybrid), from the mount table, with two spare slots beside each v1 one
// (cgroup/fs1.go, spareSlots). A Go test compares the two (TestFastStopGroups).
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "exitas.h"
#include "fastpath.h"

// linux/magic.h's, which musl's headers lack.
#define CGROUP2_SUPER_MAGIC 0x63677270
#define TMPFS_MAGIC 0x01021994

void vpsctl_rmtree_job(const char *path, char *groups, const char *lock, char *spares, unsigned held)
	__attribute__((noreturn));

static char groups[16384], spares[16384];

// point is package fault's Point for this path's points (the same names, so that the crash
// tests run it): with VPSCTL_TRACE it prints the trace line; if VPSCTL_FAULT names it, it
// kills this process there.
static void point(const char *name)
{
	if (getenv("VPSCTL_TRACE")) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		fprintf(stderr, "vpsctl trace: %d %s %lld\n", (int)getpid(), name,
			(long long)t.tv_sec * 1000000 + t.tv_nsec / 1000);
	}
	const char *f = getenv("VPSCTL_FAULT");
	if (f && !strcmp(f, name))
		for (;;)
			kill(getpid(), SIGKILL);
}

// add_line appends a, b and a newline to buf (n bytes): 0, or -1 if they do not fit.
static int add_line(char *buf, size_t n, const char *a, const char *b)
{
	size_t l = strlen(buf);
	int w = snprintf(buf + l, n - l, "%s%s\n", a, b);
	return w < 0 || (size_t)w >= n - l ? -1 : 0;
}

// vpsctl_fast_groups fills groups and spares (one directory per line) for VPS id, as
// cgroup.New("vpsctl/ID").Paths() and Spares() name them: 0, or -1 if it cannot tell.
int vpsctl_fast_groups(const char *id)
{
	groups[0] = spares[0] = 0;
	char rel[32];
	snprintf(rel, sizeof(rel), "/vpsctl/%s", id);
	struct statfs sf;
	if (statfs("/sys/fs/cgroup", &sf) < 0)
		return -1;
	if (sf.f_type == CGROUP2_SUPER_MAGIC)
		return add_line(groups, sizeof(groups), "/sys/fs/cgroup", rel);
	if (sf.f_type != TMPFS_MAGIC)
		return -1;
	static char mi[1 << 20];
	int n = vpsctl_read_file("/proc/thread-self/mountinfo", mi, sizeof(mi));
	if (n <= 0 || n == (int)sizeof(mi) - 1)
		return -1;
	int v1 = 0, v2 = 0;
	for (char *l = mi; *l;) {
		char *end = strchr(l, '\n');
		if (end)
			*end = 0;
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
		char *f[5] = { 0 }, *p = l;
		for (int k = 0; k < 5 && p; k++) {
			f[k] = p;
			p = strchr(p, ' ');
			if (p)
				*p++ = 0;
		}
		char *sep = p ? strstr(p, " - ") : NULL;
		if (sep && f[4] && !strcmp(f[3], "/")) {
			char *fstype = sep + 3, *sp = strchr(fstype, ' ');
			if (sp)
				*sp = 0;
			if (strchr(f[4], '\\'))
				return -1; // an escaped mount point: leave it to Go
			char slot[64];
			if (!strcmp(fstype, "cgroup")) {
				v1++;
				if (add_line(groups, sizeof(groups), f[4], rel) < 0)
					return -1;
				for (int s = 0; s < 2; s++) {
					snprintf(slot, sizeof(slot), "/vpsctl/.spare-%d", s);
					if (add_line(spares, sizeof(spares), f[4], slot) < 0)
						return -1;
				}
			} else if (!strcmp(fstype, "cgroup2") && !v2++) {
				if (add_line(groups, sizeof(groups), f[4], rel) < 0)
					return -1;
			}
		}
		l = end ? end + 1 : l + strlen(l);
	}
	return v1 ? 0 : -1;
}

// vpsctl_fast_group_list returns what vpsctl_fast_groups filled: the groups, or the spares.
const char *vpsctl_fast_group_list(int which)
{
	return which ? spares : groups;
}

// frozen reports whether any of the groups is frozen (v1 freezer or cgroup2's cgroup.freeze).
static int frozen(void)
{
	char list[sizeof(groups)], path[4200], buf[256];
	strcpy(list, groups);
	for (char *save, *g = strtok_r(list, "\n", &save); g; g = strtok_r(NULL, "\n", &save)) {
		snprintf(path, sizeof(path), "%s/freezer.state", g);
		if (vpsctl_read_file(path, buf, sizeof(buf)) > 0 && strncmp(buf, "THAWED", 6))
			return 1;
		snprintf(path, sizeof(path), "%s/cgroup.events", g);
		if (vpsctl_read_file(path, buf, sizeof(buf)) > 0 && strstr(buf, "frozen 1"))
			return 1;
	}
	return 0;
}

// plain_id: a VPS ID as container.ParseID takes it (1..4294967295, no leading zero).
static int plain_id(const char *s)
{
	if (!*s || strlen(s) > 10 || s[0] == '0')
		return 0;
	for (const char *c = s; *c; c++)
		if (!isdigit((unsigned char)*c))
			return 0;
	return strtoull(s, NULL, 10) <= 0xffffffffULL;
}

// json_is reports whether the flat JSON object js has "key":"want".
static int json_is(const char *js, const char *key, const char *want)
{
	char pat[128];
	snprintf(pat, sizeof(pat), "\"%s\":\"%s\"", key, want);
	return strstr(js, pat) != NULL;
}

// live_pidfd opens a pidfd of process pid if it is the one started at start and not a zombie.
static int live_pidfd(long long pid, long long start)
{
	char st;
	if (pid <= 0 || start <= 0 || vpsctl_proc_start((int)pid, &st) != (unsigned long long)start || st == 'Z' || st == 'X')
		return -1;
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	// Checked again through the pidfd: the PID may have been reused between the two.
	if (fd >= 0 && vpsctl_proc_start((int)pid, &st) != (unsigned long long)start) {
		close(fd);
		return -1;
	}
	return fd;
}

// wait_fd waits up to ms for fd (a pidfd) to turn readable: 1 when it does.
static int wait_fd(int fd, int ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left < 0)
			return 0;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return 0;
	}
}

// lock_vps takes locks/ID.lock as store.LockVPS does, waiting as long and as often (1 ms, up
// to 20, for 3 s): the fd; -1 if it could not (the Go path tries and reports); -2 if the lock
// stayed held by a vpsctl, whose note is then in holder (the Go path's error is printed).
static int lock_vps(const char *lockpath, char *holder, size_t hn)
{
	int fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	struct timespec pause = { 0, 1000000 }, t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((errno != EWOULDBLOCK && errno != EINTR) || t.tv_sec - t0.tv_sec >= 3) {
			int n = errno == EWOULDBLOCK ? vpsctl_read_file(lockpath, holder, hn) : -1;
			close(fd);
			while (n > 0 && isspace((unsigned char)holder[n - 1]))
				holder[--n] = 0;
			return n > 0 ? -2 : -1; // no note: Go asks the kernel who holds it
		}
		nanosleep(&pause, NULL);
		pause.tv_nsec = pause.tv_nsec * 2 > 20000000 ? 20000000 : pause.tv_nsec * 2;
	}
	struct stat held, now;
	if (fstat(fd, &held) < 0 || stat(lockpath, &now) < 0 || held.st_ino != now.st_ino || held.st_dev != now.st_dev) {
		close(fd); // a destroy removed the file while we waited: Go's path takes it anew
		return -1;
	}
	char who[64];
	int n = snprintf(who, sizeof(who), "pid %d: vpsctl stop\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, who, n, 0) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

// unlock lets go of the lock as store.Lock.Unlock does (its note emptied first).
static void unlock(int fd)
{
	if (ftruncate(fd, 0) < 0) {
		// the note stays; the lock goes all the same
	}
	close(fd);
}

// write_volatile writes path as store.WriteFileVolatile does: a new file (tmp) renamed into
// place, not synced.
static int write_volatile(const char *path, const char *tmp, const char *s)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, s, strlen(s));
	close(fd);
	if (w != (ssize_t)strlen(s) || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

// hand_off forks the background remover (rmtree.c) for the stopped VPS: it closes the held
// mount namespace (hold, -1: none), removes the groups, lets go of the lock (lockfd) and makes
// the spare groups. As nsenter.RemoveTree's job after a stop: fd 3 a placeholder, 4 the lock,
// 5 the namespace. This process's copy of hold is closed at once (were it the last, its close
// would unmount the VPS's tree in the caller's time); without a remover (-1), that close does
// it, and the groups are left for the next start's repair.
static int hand_off(int lockfd, int hold)
{
	pid_t pid = fork();
	if (pid != 0) {
		if (hold >= 0)
			close(hold);
		return pid < 0 ? -1 : 0;
	}
	int null = open("/dev/null", O_RDWR);
	int lk = fcntl(lockfd, F_DUPFD, 100), ns = hold >= 0 ? fcntl(hold, F_DUPFD, 100) : -1;
	if (null < 0 || lk < 0 || (hold >= 0 && ns < 0))
		_exit(1); // the lock goes with this process; the next start repairs
	for (int std = 0; std <= 2; std++)
		dup2(null, std);
	dup2(null, 3);
	dup2(lk, 4);
	if (ns >= 0)
		dup2(ns, 5);
	else
		dup2(null, 5);
	syscall(SYS_close_range, 6, ~0U, 0U);
	vpsctl_rmtree_job("", groups[0] ? groups : NULL, "-", spares[0] ? spares : NULL, 5);
}

void vpsctl_faststop(int argc, char **argv)
{
	int i;
	const char *root = vpsctl_state_root(argc, argv, &i);
	if (i + 3 != argc || strcmp(argv[i], "stop"))
		return;
	const char *id = NULL;
	int nkill = 0;
	for (int k = i + 1; k < argc; k++) {
		if (!strcmp(argv[k], "--kill") || !strcmp(argv[k], "-kill"))
			nkill++;
		else if (plain_id(argv[k]))
			id = argv[k];
		else
			return;
	}
	const char *f = getenv("VPSCTL_FAULT");
	if (nkill != 1 || !id || root[0] != '/' || strlen(root) > 4000 || getenv("VPSCTL_SYNC_DESTROY") ||
		(f && strcmp(f, "stop-requested") && strcmp(f, "stop-killed") && strcmp(f, "stop-cleared")))
		return;
	point("cli-main");

	char conf_path[4200], run_path[4200], stop_path[4200], lock_path[4200];
	snprintf(conf_path, sizeof(conf_path), "%s/vps/%s/vps.conf", root, id);
	snprintf(run_path, sizeof(run_path), "%s/vps/%s/run.json", root, id);
	snprintf(stop_path, sizeof(stop_path), "%s/vps/%s/stop-requested", root, id);
	snprintf(lock_path, sizeof(lock_path), "%s/locks/%s.lock", root, id);
	if (access(conf_path, F_OK) < 0)
		return; // no such VPS: the lock file is not made for it; Go says so
	char holder[256];
	int lockfd = lock_vps(lock_path, holder, sizeof(holder));
	if (lockfd == -2) {
		fprintf(stderr, "vpsctl: VPS %s: locked by another vpsctl (%s)\n", id, holder);
		_exit(9);
	}
	if (lockfd < 0)
		return;
	static char conf[65536];
	char run[4096], ns[256], val[1024];
	int initfd = -1, monfd = -1;
	if (vpsctl_read_file(conf_path, conf, sizeof(conf)) <= 0 || vpsctl_read_file(run_path, run, sizeof(run)) <= 0)
		goto fallback;
	if (vpsctl_conf_value(conf, "NAMESPACES", ns, sizeof(ns)) != 0 || !json_is(run, "phase", "running"))
		goto fallback;
	int pidns = 0, mntns = 0, netns = 0;
	for (char *save, *t = strtok_r(ns, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		pidns |= !strcmp(t, "pid");
		mntns |= !strcmp(t, "mnt");
		netns |= !strcmp(t, "net");
	}
	// runtime.teardownNet has nothing to do only for a VPS without addresses and interfaces.
	if (!pidns || (netns && (vpsctl_conf_value(conf, "IP_ADDRESS", val, sizeof(val)) < 0 || val[0] ||
				 vpsctl_conf_value(conf, "NETIF", val, sizeof(val)) < 0 || val[0])))
		goto fallback;
	if (vpsctl_fast_groups(id) < 0 || frozen())
		goto fallback;
	initfd = live_pidfd(vpsctl_json_num(run, "init_pid"), vpsctl_json_num(run, "init_start"));
	monfd = live_pidfd(vpsctl_json_num(run, "monitor_pid"), vpsctl_json_num(run, "monitor_start"));
	if (initfd < 0 || monfd < 0)
		goto fallback;
	char me[32];
	snprintf(me, sizeof(me), "%d\n", (int)getpid());
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s/vps/%s/.stop-requested.tmpc%d", root, id, (int)getpid());
	if (write_volatile(stop_path, tmp, me) < 0)
		goto fallback;

	// Committed: the monitor (reaper.c) leaves the clean-up to this process.
	point("stop-requested");
	point("stop-fast"); // a trace-only mark: the tests see which path stopped
	int hold = -1;
	if (mntns) {
		// As runtime.holdMountNS: the init's death need not wait for its mounts' teardown.
		char p[64];
		snprintf(p, sizeof(p), "/proc/%lld/ns/mnt", vpsctl_json_num(run, "init_pid"));
		hold = open(p, O_RDONLY | O_CLOEXEC);
		if (hold >= 0 && syscall(SYS_pidfd_send_signal, initfd, 0, NULL, 0) < 0) {
			close(hold);
			hold = -1;
		}
	}
	// SIGKILL to a PID namespace's init kills all in it; the pidfd turns readable once all
	// are gone (see runtime.stopLocked).
	syscall(SYS_pidfd_send_signal, initfd, SIGKILL, NULL, 0);
	if (!wait_fd(initfd, 5000)) {
		if (hold >= 0)
			close(hold);
		goto fallback; // the Go path kills the whole group (and writes its own request)
	}
	point("stop-killed");
	if (!wait_fd(monfd, 15000)) {
		unlink(stop_path);
		unlock(lockfd);
		fprintf(stderr, "vpsctl: VPS %s: monitor (PID %lld) did not finish cleaning up\n", id,
			vpsctl_json_num(run, "monitor_pid"));
		_exit(3);
	}
	point("stop-monitor-gone");
	unlink(run_path);
	unlink(stop_path);
	point("stop-cleared"); // groups left for the next start's repair; the namespace dies with us
	hand_off(lockfd, hold);
	unlock(lockfd);
	printf("VPS %s stopped\n", id);
	fflush(stdout);
	point("cli-done");
	_exit(0);

fallback:
	if (initfd >= 0)
		close(initfd);
	if (monfd >= 0)
		close(monfd);
	unlock(lockfd);
}
