// vpsctl's fast paths for `vpsctl stop --kill ID` and `vpsctl destroy ID`: the whole command
// done here, before the Go runtime starts, as fastexec.c does for exec. Both are mostly waiting
// on the kernel (a PID namespace dying, a monitor's exit, a lock a remover lets go of); the Go
// runtime's start and the Go path's reads cost as much again, in the time of every script that
// stops and destroys VPSs back to back (W4: 11 -> 9 ms, docs/BENCHMARKS.md).
//
// Each does what the Go command does for the common case, in the same order, with the same
// locks, notes, messages and exit codes, and returns to the Go path, having changed nothing, for
// anything else: a name instead of an ID, other flags, a config that is not in its plainest form
// (Go parses it, and refuses a bad one), a cgroup layout it does not know, VPSCTL_SYNC_DESTROY,
// or VPSCTL_FAULT naming a point it does not have (it has package fault's stop-requested,
// stop-killed, stop-cleared, destroy-stopped and destroy-renamed, and traces with VPSCTL_TRACE
// as Go does). VPSCTL_NO_FASTPATH=1 turns them off. A lock held for the whole wait is reported
// as Go reports it (exit 9, the holder named).
//
// stop --kill, for a running VPS that is not suspended or rebooting, has its own PID namespace,
// no addresses or interfaces to tear down on the host, and a live monitor (runtime.Stop):
//
//   lock locks/ID.lock ─ read vps.conf, run.json ─ pidfds of init and monitor ─ stop-requested ─
//   hold the mount namespace ─ SIGKILL init, wait ─ wait monitor ─ remove run.json and
//   stop-requested ─ fork the remover (rmtree.c: mount namespace, groups, then the lock) ─
//   "VPS ID stopped"
//
// Once it has written the stop request it is committed; if the init does not die in time it
// lets go of everything and the Go path carries on (it kills the whole group); a monitor that
// does not finish is reported as Go reports it.
//
// destroy [-f], for a stopped VPS with nothing to repair (no run state, stop request or group
// left), or with -f for a running one, stopped first as stop --kill stops it (runtime.Destroy):
// the VPS's lock ─ (the stop) ─ the global lock ─ rename into tmp/ (the commit) ─ mounts below
// detached ─ fork the remover for the files (and the stop's namespace, groups and lock file) ─
// the name released ─ the lock file removed ─ "VPS ID destroyed".
//
// The VPS's groups are named as package cgroup names them (cgroup.New("vpsctl/ID")): on a
// cgroup2 host the one directory below /sys/fs/cgroup (below the VPS's scope where PID 1 is
// systemd); otherwise one per v1 hierarchy and the first cgroup2 tree (hybrid), from the mount
// table, with two spare slots beside each v1 one (cgroup/fs1.go, spareSlots). A Go test
// compares the two (TestFastStopGroups).
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
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
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
// The groups whose files say whether the VPS is frozen: its v1 freezer group and its cgroup2
// group (cgroup.freeze), "" where the host has none.
static char freezer_dir[4200], v2_dir[4200];

// point is package fault's Point for this path's points (the same names, so that the crash
// tests run it): with VPSCTL_TRACE it prints the trace line; if VPSCTL_FAULT names it, it
// kills this process there.
void vpsctl_trace(const char *name)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	dprintf(2, "vpsctl trace: %d %s %lld\n", (int)getpid(), name, (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000);
}

static void point(const char *name)
{
	if (getenv("VPSCTL_TRACE"))
		vpsctl_trace(name);
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
// cgroup.New("vpsctl/ID").Paths() and Spares() name them, and the freezer's and cgroup2's
// group: 0, or -1 if it cannot tell.
int vpsctl_fast_groups(const char *id)
{
	groups[0] = spares[0] = freezer_dir[0] = v2_dir[0] = 0;
	char rel[32];
	snprintf(rel, sizeof(rel), "/vpsctl/%s", id);
	struct statfs sf;
	if (statfs("/sys/fs/cgroup", &sf) < 0)
		return -1;
	if (sf.f_type == CGROUP2_SUPER_MAGIC) {
		// Where PID 1 is systemd, the group is below its delegated scope (cgroup/systemd.go).
		char base[96] = "/sys/fs/cgroup";
		if (access("/run/systemd/system", F_OK) == 0)
			snprintf(base, sizeof(base), "/sys/fs/cgroup/vpsctl.slice/vpsctl-%s.scope", id);
		snprintf(v2_dir, sizeof(v2_dir), "%s%s", base, rel);
		return add_line(groups, sizeof(groups), base, rel);
	}
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
			// SOURCE SUPEROPTIONS follow: a v1 hierarchy's controllers are among the latter.
			char *super = sp ? strchr(sp + 1, ' ') : NULL;
			if (strchr(f[4], '\\'))
				return -1; // an escaped mount point: leave it to Go
			char slot[64];
			if (!strcmp(fstype, "cgroup")) {
				v1++;
				for (char *save, *o = super ? strtok_r(super + 1, ",", &save) : NULL; o; o = strtok_r(NULL, ",", &save))
					if (!strcmp(o, "freezer"))
						snprintf(freezer_dir, sizeof(freezer_dir), "%s%s", f[4], rel);
				if (add_line(groups, sizeof(groups), f[4], rel) < 0)
					return -1;
				for (int s = 0; s < 2; s++) {
					snprintf(slot, sizeof(slot), "/vpsctl/.spare-%d", s);
					if (add_line(spares, sizeof(spares), f[4], slot) < 0)
						return -1;
				}
			} else if (!strcmp(fstype, "cgroup2") && !v2++) {
				snprintf(v2_dir, sizeof(v2_dir), "%s%s", f[4], rel);
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

// vpsctl_fast_frozen reports whether the VPS vpsctl_fast_groups named is frozen (suspended):
// its v1 freezer group not THAWED, or its cgroup2 group frozen.
int vpsctl_fast_frozen(void)
{
	char path[4300], buf[256];
	snprintf(path, sizeof(path), "%s/freezer.state", freezer_dir);
	if (freezer_dir[0] && vpsctl_read_file(path, buf, sizeof(buf)) > 0 && strncmp(buf, "THAWED", 6))
		return 1;
	snprintf(path, sizeof(path), "%s/cgroup.events", v2_dir);
	return v2_dir[0] && vpsctl_read_file(path, buf, sizeof(buf)) > 0 && strstr(buf, "frozen 1") != NULL;
}

// vpsctl_fast_join moves this process into every group vpsctl_fast_groups named that exists (as
// the Go joiner's cgroup.Apply): how many it joined.
int vpsctl_fast_join(void)
{
	char list[sizeof(groups)], path[4300];
	int joined = 0;
	strcpy(list, groups);
	for (char *save, *g = strtok_r(list, "\n", &save); g; g = strtok_r(NULL, "\n", &save)) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", g);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			joined += write(fd, "0", 1) == 1;
			close(fd);
		}
	}
	return joined;
}

int vpsctl_plain_id(const char *s)
{
	if (!*s || strlen(s) > 10 || s[0] == '0')
		return 0;
	for (const char *c = s; *c; c++)
		if (!isdigit((unsigned char)*c))
			return 0;
	return strtoull(s, NULL, 10) <= 0xffffffffULL;
}

// plain_config reports whether conf (vps.conf) is one store.ParseConfig takes, in its plainest
// form, as VPS id's: every line blank, a comment or KEY="value" with no escape, and ID="id".
// Anything else is Go's to parse (and to refuse: a bad config fails a stop or destroy there).
static int plain_config(const char *conf, const char *id)
{
	int has_id = 0;
	for (const char *l = conf; *l;) {
		const char *end = strchr(l, '\n');
		size_t n = end ? (size_t)(end - l) : strlen(l);
		while (n && isspace((unsigned char)*l))
			l++, n--;
		while (n && isspace((unsigned char)l[n - 1]))
			n--;
		if (n && *l != '#') {
			size_t k = 0;
			while (k < n && ((l[k] >= 'A' && l[k] <= 'Z') || l[k] == '_' || (k && isdigit((unsigned char)l[k]))))
				k++;
			if (!k || k + 3 > n || l[k] != '=' || l[k + 1] != '"' || l[n - 1] != '"')
				return 0;
			for (size_t v = k + 2; v < n - 1; v++)
				if (l[v] == '"' || l[v] == '\\')
					return 0;
			if (k == 2 && !strncmp(l, "ID", 2)) {
				if (n - k - 3 != strlen(id) || strncmp(l + k + 2, id, strlen(id)))
					return 0;
				has_id = 1;
			}
		}
		l = end ? end + 1 : l + strlen(l);
	}
	return has_id;
}

// read_config reads vps.conf into conf (n bytes) if it is a plain one (plain_config).
static int read_config(const char *path, char *conf, size_t n, const char *id)
{
	int r = vpsctl_read_file(path, conf, n);
	return r > 0 && (size_t)r < n - 1 && plain_config(conf, id);
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

static volatile sig_atomic_t lock_timeout;

static void on_alarm(int sig)
{
	(void)sig;
	lock_timeout = 1;
}

// lock_holder names the holder of fd's flock as store's lockHolder does, from /proc/locks:
// "pid N: COMM", or "unknown holder".
static void lock_holder(int fd, char *holder, size_t hn)
{
	static char locks[1 << 18];
	struct stat st;
	snprintf(holder, hn, "unknown holder");
	int n = fstat(fd, &st) < 0 ? -1 : vpsctl_read_file("/proc/locks", locks, sizeof(locks));
	for (char *save, *l = n > 0 ? strtok_r(locks, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
		// "1: FLOCK  ADVISORY  WRITE 4242 00:1f:123456 0 EOF"; a waiter's line has "->" second.
		char kind[16], dev[64];
		int pid;
		unsigned long long ino;
		if (sscanf(l, "%*s %15s %*s %*s %d %63s", kind, &pid, dev) != 3 || strcmp(kind, "FLOCK"))
			continue;
		char *c = strrchr(dev, ':');
		if (!c || sscanf(c + 1, "%llu", &ino) != 1 || ino != (unsigned long long)st.st_ino || pid <= 0)
			continue;
		char path[64], comm[64] = "";
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		int cn = vpsctl_read_file(path, comm, sizeof(comm));
		while (cn > 0 && isspace((unsigned char)comm[cn - 1]))
			comm[--cn] = 0;
		snprintf(holder, hn, "pid %d: %s", pid, comm);
		return;
	}
}

// take_lock takes path's flock as package store's lockFile does, waiting as long (3 s) but
// blocked in flock(2) rather than polling (a destroy right after a stop waits for the stop's
// remover, which lets go of the VPS's lock a few ms later: it wakes at that moment), and notes
// "pid N: vpsctl NOTE" in the file. The fd; -1 if it could not (the Go path tries and
// reports); -2 if the lock stayed held throughout, its holder then named in holder as Go
// names it (the holder's note, else the kernel's word).
static int take_lock(const char *path, const char *note, char *holder, size_t hn)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int r = flock(fd, LOCK_EX | LOCK_NB);
	if (r < 0 && errno == EWOULDBLOCK) {
		// No SA_RESTART: the alarm ends the flock with EINTR; it repeats in case one fires
		// between two calls.
		struct sigaction sa = { .sa_handler = on_alarm }, old;
		struct itimerval it = { .it_value = { 3, 0 }, .it_interval = { 0, 10000 } }, off = { 0 };
		lock_timeout = 0;
		sigaction(SIGALRM, &sa, &old);
		setitimer(ITIMER_REAL, &it, NULL);
		while ((r = flock(fd, LOCK_EX)) < 0 && errno == EINTR && !lock_timeout)
			;
		int e = errno;
		setitimer(ITIMER_REAL, &off, NULL);
		sigaction(SIGALRM, &old, NULL);
		errno = e;
	}
	if (r < 0) {
		if (errno != EINTR && errno != EWOULDBLOCK) {
			close(fd);
			return -1;
		}
		int n = vpsctl_read_file(path, holder, hn);
		while (n > 0 && isspace((unsigned char)holder[n - 1]))
			holder[--n] = 0;
		if (n <= 0)
			lock_holder(fd, holder, hn); // not a vpsctl, or one between lock and note
		close(fd);
		return -2;
	}
	struct stat held, now;
	if (fstat(fd, &held) < 0 || stat(path, &now) < 0 || held.st_ino != now.st_ino || held.st_dev != now.st_dev) {
		close(fd); // a destroy removed the file while we waited: Go's path takes it anew
		return -1;
	}
	char who[128];
	int n = snprintf(who, sizeof(who), "pid %d: vpsctl %s\n", (int)getpid(), note);
	if (ftruncate(fd, 0) < 0 || pwrite(fd, who, n, 0) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

// unlock lets go of a lock as store.Lock.Unlock does (its note emptied first).
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

// fork_remover forks the background remover (rmtree.c) with nsenter.RemoveTree's job layout:
// fd 3 the flock of dir (the staging directory of a destroy; "" and -1 after a plain stop), fd 4
// the VPS's lock (lockfd, -1: none; lock "-" keeps its file, a path removes it) and fd 5 the
// VPS's mount namespace (hold, -1: none). It closes the namespace, removes the groups a stop
// left (groups, spares: those vpsctl_fast_groups named; with_groups 0: none), lets go of the
// lock, makes the spare groups and deletes dir. This process's copies of hold and dirlock are
// closed at once (were hold's the last, its close would unmount the VPS's tree in the caller's
// time). 1 if the remover runs; 0 if not (then that close unmounted, and what it would have
// removed is left for the next command's sweep and the next start's repair).
static int fork_remover(const char *dir, int dirlock, int lockfd, const char *lock, int hold, int with_groups)
{
	pid_t pid = fork();
	if (pid != 0) {
		if (hold >= 0)
			close(hold);
		if (dirlock >= 0)
			close(dirlock);
		return pid > 0;
	}
	int null = open("/dev/null", O_RDWR);
	int fds[3] = { dirlock, lockfd, hold };
	for (int k = 0; k < 3; k++)
		if (fds[k] >= 0 && (fds[k] = fcntl(fds[k], F_DUPFD, 100)) < 0)
			_exit(1); // what it held goes with this process
	if (null < 0)
		_exit(1);
	for (int std = 0; std <= 2; std++)
		dup2(null, std);
	for (int k = 0; k < 3; k++)
		dup2(fds[k] >= 0 ? fds[k] : null, 3 + k);
	syscall(SYS_close_range, 6, ~0U, 0U);
	vpsctl_rmtree_job(dir, with_groups && groups[0] ? groups : NULL, lockfd >= 0 ? lock : NULL,
		with_groups && spares[0] ? spares : NULL, lockfd >= 0 ? 5 : 4);
}

// A command's VPS: its paths in the state root, its lock and, once locked, its config.
struct vps {
	const char *root, *id;
	char dir[4200], conf_path[4300], run_path[4300], stop_path[4300], lock_path[4300];
	char conf[65536];
	int lockfd;
};

// command_id parses `vpsctl [--root DIR] COMMAND ARGS` for the fast paths: the VPS ID, if
// ARGS are one plain ID and, in any order, the flag (any spelling in flags) at most once (the
// count in *nflag); NULL for anything else (the Go path's), as for a state root it will not
// handle, VPSCTL_SYNC_DESTROY, or VPSCTL_FAULT naming none of points.
static const char *command_id(int argc, char **argv, const char *command, const char *const *flags,
	int *nflag, const char *const *points, struct vps *v)
{
	int i;
	v->root = vpsctl_state_root(argc, argv, &i);
	if (i + 2 > argc || i + 3 < argc || strcmp(argv[i], command))
		return NULL;
	v->id = NULL;
	*nflag = 0;
	for (int k = i + 1; k < argc; k++) {
		int is_flag = 0;
		for (const char *const *f = flags; *f; f++)
			is_flag |= !strcmp(argv[k], *f);
		if (is_flag)
			++*nflag;
		else if (vpsctl_plain_id(argv[k]) && !v->id)
			v->id = argv[k];
		else
			return NULL;
	}
	const char *f = getenv("VPSCTL_FAULT");
	int known = !f;
	for (const char *const *p = points; f && *p; p++)
		known |= !strcmp(f, *p);
	if (*nflag > 1 || !v->id || v->root[0] != '/' || strlen(v->root) > 4000 || getenv("VPSCTL_SYNC_DESTROY") || !known)
		return NULL;
	snprintf(v->dir, sizeof(v->dir), "%s/vps/%s", v->root, v->id);
	snprintf(v->conf_path, sizeof(v->conf_path), "%s/vps.conf", v->dir);
	snprintf(v->run_path, sizeof(v->run_path), "%s/run.json", v->dir);
	snprintf(v->stop_path, sizeof(v->stop_path), "%s/stop-requested", v->dir);
	snprintf(v->lock_path, sizeof(v->lock_path), "%s/locks/%s.lock", v->root, v->id);
	return v->id;
}

// lock_vps takes VPS v's lock for command what (as store.LockVPS) and reads its config
// (read_config): 0; -1 if the Go path is to do the command, nothing held (a VPS that does not
// exist gets no lock file: Go says so). A lock another vpsctl held for the whole wait ends this
// process as Go's path would (exit 9).
static int lock_vps(struct vps *v, const char *what)
{
	if (access(v->conf_path, F_OK) < 0)
		return -1;
	point("cli-main");
	char holder[256];
	v->lockfd = take_lock(v->lock_path, what, holder, sizeof(holder));
	if (v->lockfd == -2) {
		fprintf(stderr, "vpsctl: VPS %s: locked by another vpsctl (%s)\n", v->id, holder);
		_exit(9);
	}
	if (v->lockfd < 0)
		return -1;
	if (!read_config(v->conf_path, v->conf, sizeof(v->conf), v->id)) {
		unlock(v->lockfd);
		return -1;
	}
	return 0;
}

// stop_locked stops running VPS v, whose lock is held, as runtime.stopLocked does with Kill
// for a caller that hands the rest to the remover: 0 once its init and monitor are gone and its
// run state and stop request removed, *hold then the VPS's mount namespace (-1: none) and
// groups and spares filled (vpsctl_fast_groups); -1 if the Go path is to do the stop (nothing
// of this process's left but the lock: a VPS not running in the plain way, or an init that
// would not die, which Go's path kills by its group). A monitor that does not finish ends this
// process as Go's path reports it (exit 3).
static int stop_locked(struct vps *v, int *hold)
{
	char run[4096], ns[256], val[1024];
	int initfd = -1, monfd = -1;
	*hold = -1;
	if (vpsctl_read_file(v->run_path, run, sizeof(run)) <= 0)
		return -1;
	if (vpsctl_conf_value(v->conf, "NAMESPACES", ns, sizeof(ns)) != 0 || !json_is(run, "phase", "running"))
		return -1;
	int pidns = 0, mntns = 0, netns = 0;
	for (char *save, *t = strtok_r(ns, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		pidns |= !strcmp(t, "pid");
		mntns |= !strcmp(t, "mnt");
		netns |= !strcmp(t, "net");
	}
	// runtime.teardownNet has nothing to do only for a VPS without addresses and interfaces.
	if (!pidns || (netns && (vpsctl_conf_value(v->conf, "IP_ADDRESS", val, sizeof(val)) < 0 || val[0] ||
				 vpsctl_conf_value(v->conf, "NETIF", val, sizeof(val)) < 0 || val[0])))
		return -1;
	if (vpsctl_fast_groups(v->id) < 0 || vpsctl_fast_frozen())
		return -1;
	initfd = live_pidfd(vpsctl_json_num(run, "init_pid"), vpsctl_json_num(run, "init_start"));
	monfd = live_pidfd(vpsctl_json_num(run, "monitor_pid"), vpsctl_json_num(run, "monitor_start"));
	char me[32], tmp[4300];
	snprintf(me, sizeof(me), "%d\n", (int)getpid());
	snprintf(tmp, sizeof(tmp), "%s/.stop-requested.tmpc%d", v->dir, (int)getpid());
	if (initfd < 0 || monfd < 0 || write_volatile(v->stop_path, tmp, me) < 0)
		goto fallback;

	// Committed: the monitor (reaper.c) leaves the clean-up to this process.
	point("stop-requested");
	point("stop-fast"); // a trace-only mark: the tests see which path stopped
	if (mntns) {
		// As runtime.holdMountNS: the init's death need not wait for its mounts' teardown.
		char p[64];
		snprintf(p, sizeof(p), "/proc/%lld/ns/mnt", vpsctl_json_num(run, "init_pid"));
		*hold = open(p, O_RDONLY | O_CLOEXEC);
		if (*hold >= 0 && syscall(SYS_pidfd_send_signal, initfd, 0, NULL, 0) < 0) {
			close(*hold);
			*hold = -1;
		}
	}
	// SIGKILL to a PID namespace's init kills all in it; the pidfd turns readable once all
	// are gone (see runtime.stopLocked).
	syscall(SYS_pidfd_send_signal, initfd, SIGKILL, NULL, 0);
	if (!wait_fd(initfd, 5000)) {
		if (*hold >= 0)
			close(*hold);
		*hold = -1;
		goto fallback; // the Go path kills the whole group (and writes its own request)
	}
	point("stop-killed");
	if (!wait_fd(monfd, 15000)) {
		unlink(v->stop_path);
		unlock(v->lockfd);
		fprintf(stderr, "vpsctl: VPS %s: monitor (PID %lld) did not finish cleaning up\n", v->id,
			vpsctl_json_num(run, "monitor_pid"));
		_exit(3);
	}
	point("stop-monitor-gone");
	close(initfd);
	close(monfd);
	unlink(v->run_path);
	unlink(v->stop_path);
	point("stop-cleared"); // groups left for the next start's repair; the namespace dies with us
	return 0;

fallback:
	if (initfd >= 0)
		close(initfd);
	if (monfd >= 0)
		close(monfd);
	return -1;
}

void vpsctl_faststop(int argc, char **argv)
{
	static const char *const flags[] = { "--kill", "-kill", NULL };
	static const char *const points[] = { "stop-requested", "stop-killed", "stop-cleared", NULL };
	static struct vps v;
	int nkill, hold;
	const char *id = command_id(argc, argv, "stop", flags, &nkill, points, &v);
	if (!id || nkill != 1 || lock_vps(&v, "stop") < 0)
		return;
	if (stop_locked(&v, &hold) < 0) {
		unlock(v.lockfd);
		return;
	}
	fork_remover("", -1, v.lockfd, "-", hold, 1);
	unlock(v.lockfd);
	printf("VPS %s stopped\n", id);
	fflush(stdout);
	point("cli-done");
	_exit(0);
}

// unescape undoes the mount table's octal escapes (\040 for a space) in place.
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
}

static int longer_first(const void *a, const void *b)
{
	return (int)strlen(*(char *const *)b) - (int)strlen(*(char *const *)a);
}

// unmount_below detaches every mount below dir, deepest first (store.UnmountBelow): a killed
// build or boot can leave one there, and deleting through it would reach into what is mounted.
static void unmount_below(const char *dir)
{
	static char mi[1 << 20];
	static char *below[4096];
	int n = vpsctl_read_file("/proc/self/mountinfo", mi, sizeof(mi)), nb = 0;
	size_t dl = strlen(dir);
	for (char *l = mi; n > 0 && *l && nb < 4096;) {
		char *end = strchr(l, '\n');
		if (end)
			*end = 0;
		char *f = l;
		for (int k = 0; k < 4 && f; k++) {
			f = strchr(f, ' ');
			if (f)
				f++;
		}
		if (f) {
			char *sp = strchr(f, ' ');
			if (sp)
				*sp = 0;
			unescape(f);
			if (!strncmp(f, dir, dl) && f[dl] == '/')
				below[nb++] = f;
		}
		l = end ? end + 1 : l + strlen(l);
	}
	qsort(below, nb, sizeof(below[0]), longer_first);
	for (int k = 0; k < nb; k++)
		umount2(below[k], MNT_DETACH);
}

// vpsctl_fastdestroy is the fast path of `vpsctl destroy [-f|--force] ID` (or delete) for a VPS
// that is stopped and clean (no run state, no stop request, no group left: anything a repair
// would have to do goes to Go's path), or running and --force given, which it stops first as
// `stop --kill` does (stop_locked). As runtime.Destroy and destroyLocked, in order: the VPS's
// lock, the stop, the global lock, the rename of the VPS's directory into tmp/ (the commit),
// mounts below it detached, the remover forked for its files (and the stop's groups and lock
// file), the name released, the lock file removed, "VPS ID destroyed". Its fault points are
// package fault's destroy-stopped and destroy-renamed, and stop_locked's.
void vpsctl_fastdestroy(int argc, char **argv)
{
	static const char *const flags[] = { "-f", "--force", "-force", NULL };
	static const char *const points[] = { "destroy-stopped", "destroy-renamed", "stop-requested", "stop-killed",
		"stop-cleared", NULL };
	static struct vps v;
	int force, hold = -1, stopped = 0;
	const char *id = command_id(argc, argv, "destroy", flags, &force, points, &v);
	if (!id)
		id = command_id(argc, argv, "delete", flags, &force, points, &v);
	if (!id || lock_vps(&v, "destroy") < 0)
		return;
	const char *dir = v.dir, *root = v.root, *lock_path = v.lock_path;
	int lockfd = v.lockfd;
	char gl_path[4200], holder[256], name[256];
	snprintf(gl_path, sizeof(gl_path), "%s/locks/.global", root);
	if (vpsctl_conf_value(v.conf, "NAME", name, sizeof(name)) < 0)
		goto fallback;
	if (force && access(v.run_path, F_OK) == 0) {
		if (stop_locked(&v, &hold) < 0)
			goto fallback; // not running in the plain way, or a stale run state: Go's
		stopped = 1;
	} else {
		if (access(v.run_path, F_OK) == 0 || access(v.stop_path, F_OK) == 0 || vpsctl_fast_groups(id) < 0)
			goto fallback;
		char list[sizeof(groups)];
		strcpy(list, groups);
		for (char *save, *g = strtok_r(list, "\n", &save); g; g = strtok_r(NULL, "\n", &save))
			if (access(g, F_OK) == 0)
				goto fallback; // a boot's leftovers: Go's path repairs first
		groups[0] = spares[0] = 0; // nothing for the remover to remove or make
	}
	point("destroy-stopped");
	char note[64];
	snprintf(note, sizeof(note), "destroy %s", id);
	int gl = take_lock(gl_path, note, holder, sizeof(holder));
	if (gl == -2) {
		if (stopped) // as destroyLocked: the stop's leftovers go all the same
			fork_remover("", -1, lockfd, "-", hold, 1);
		unlock(lockfd);
		fprintf(stderr, "vpsctl: state root: locked by another vpsctl (%s)\n", holder);
		_exit(9);
	}
	char stage[4200], to[4300];
	snprintf(stage, sizeof(stage), "%s/tmp/destroy-%d-XXXXXX", root, (int)getpid());
	if (gl < 0 || !mkdtemp(stage)) {
		if (gl >= 0)
			unlock(gl);
		goto fallback;
	}
	snprintf(to, sizeof(to), "%s/vps", stage);
	if (rename(dir, to) < 0) {
		rmdir(stage);
		unlock(gl);
		goto fallback;
	}
	// Committed: the VPS no longer exists for any command.
	point("destroy-renamed");
	point("destroy-fast"); // a trace-only mark: the tests see which path destroyed
	unmount_below(stage);
	// The remover deletes the files under the staging directory's flock (a sweep leaves a
	// locked one alone); without it, the sweep does, as the directory's name records this
	// process.
	int dl = open(stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dl >= 0 && flock(dl, LOCK_EX) < 0) {
		close(dl);
		dl = -1;
	}
	int handed = dl >= 0 && fork_remover(stage, dl, stopped ? lockfd : -1, lock_path, hold, stopped) && stopped;
	if (dl < 0 && hold >= 0)
		close(hold);
	if (name[0]) {
		// store.ReleaseName: the name's link, if it still names this VPS.
		char np[4400], target[32];
		snprintf(np, sizeof(np), "%s/names/%s", root, name);
		ssize_t n = readlink(np, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = 0;
			if (!strcmp(target, id))
				unlink(np);
		}
	}
	if (!handed)
		unlink(lock_path); // still holding it: whoever waits takes the path anew
	unlock(gl);
	unlock(lockfd);
	printf("VPS %s destroyed\n", id);
	fflush(stdout);
	point("cli-done");
	_exit(0);

fallback:
	// After a stop here, Go's path finds the VPS stopped; its groups go to the remover first.
	if (stopped)
		fork_remover("", -1, lockfd, "-", hold, 1);
	unlock(lockfd);
}
