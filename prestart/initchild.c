// The VPS's init child: the process the monitor clones into the VPS's new namespaces. It builds
// the VPS's root around itself and execs the VPS's init, all before the Go runtime would start
// (a constructor), so a boot pays for no second Go runtime.
//
// The spawner (spawner.c) clones it and hands it its socket (a SOCK_SEQPACKET end from the
// monitor) as fd 3. The protocol is drawn in monitor/protocol.go:
//
//   monitor -> child: the config (a message, msg.h) and the detached mount of the VPS's root as SCM_RIGHTS; the child
//                     attaches it and builds /proc, /sys, /dev and /run in it
//   monitor -> child: the go-ahead (a message: tasks=N) once the VPS's groups are made and its
//                     network is set up, with the N v1 groups' "tasks" files (cgroup.TaskFiles,
//                     opened by the monitor) as SCM_RIGHTS; the child writes 0 to each (it moves
//                     itself into the groups), unshares its cgroup namespace, mounts its cgroup
//                     view, pivots
//   child -> monitor: struct init_error, only on failure; EOF (the socket is close-on-exec)
//                     once the VPS's init runs
//
// Keys: ns (CLONE_NEW* flags of the VPS), hostname, domainname, console (host path of the console
// pty slave, also our stdio), capdrop (hex mask of capabilities to drop from the bounding set),
// arg (repeated: the init's argv), env (repeated: its environment), trace (1: print trace marks
// on stderr, as VPSCTL_TRACE makes vpsctl's Go code do), park (1: a spare VPS, runtime/spare.go).
//
// A spare's child (park=1) builds the root and pivots into it as any, then sends "P" and waits
// for a second message: the claim's hostname, domainname, arg and env keys, with its stdin,
// stdout and stderr as SCM_RIGHTS; then it goes on as any. At EOF instead (the spare was not
// claimed) it exits.
//
// The child runs as root of the VPS's user namespace (the monitor wrote its ID maps), as PID 1 of
// its PID namespace, cloned into the VPS's cgroup2 group if the host has a cgroup2 tree, and
// moves itself into the v1 hierarchies' groups at the go-ahead.
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "prestart.h"
#include "vpsctl_seccomp.h"

#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

// init_error crosses to the monitor on failure: the errno and the step (for the message only;
// nothing matches on it). monitor/protocol.go (initError) reads it.
struct init_error {
	int32_t err;
	char stage[252];
};

static int isock = -1;
static int tracing; // the config's trace=1: marks on stderr, as internal/fault prints them

static void mark(const char *name)
{
	if (tracing)
		vpsctl_trace(name);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	struct init_error e;
	memset(&e, 0, sizeof(e));
	e.err = errno;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.stage, sizeof(e.stage), fmt, ap);
	va_end(ap);
	ssize_t r;
	do {
		r = send(isock, &e, sizeof(e), MSG_NOSIGNAL);
	} while (r < 0 && errno == EINTR);
	_exit(1);
}

#define NOSUIDDEVEXEC (MS_NOSUID | MS_NODEV | MS_NOEXEC)

// mkdir_p creates dir and its parents (relative to the current directory), like os.MkdirAll.
static int mkdir_p(const char *dir, mode_t mode)
{
	char p[4096];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof(p))
		return errno = EINVAL, -1;
	memcpy(p, dir, n + 1);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -1;
	struct stat st;
	if (stat(p, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode))
		return errno = ENOTDIR, -1;
	return 0;
}

static void mk(const char *src, const char *dst, const char *fstype, unsigned long flags, const char *data)
{
	if (mkdir_p(dst, 0755) < 0)
		die("mkdir /%s", dst);
	if (mount(src, dst, fstype, flags, data) < 0)
		die("mount %s on /%s", fstype, dst);
}

// bind_file bind-mounts the file src onto dst, creating dst.
static void bind_file(const char *src, const char *dst)
{
	int fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		die("create /%s", dst);
	close(fd);
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		die("bind %s on /%s", src, dst);
}

// The host's cgroup file systems, from the config's cgroupfs= keys (Go's cgroup.Filesystems):
// "TYPE MOUNTPOINT OPTIONS", split in place by parse_config.
struct hier {
	const char *dir;    // mount point on the host, e.g. /sys/fs/cgroup/cpu,cpuacct
	const char *fstype; // cgroup or cgroup2
	const char *opts;   // superblock options minus rw/ro (the controllers, name=...); may be ""
};
#define MAXHIERS 64
static struct hier hs[MAXHIERS];
static int nh;

// parse_cgroupfs splits one cgroupfs= value (writable: the message buffer) into hs.
static int parse_cgroupfs(char *val)
{
	char *dir = strchr(val, ' ');
	char *opts = dir ? strchr(dir + 1, ' ') : NULL;
	if (!opts || nh >= MAXHIERS || strncmp(dir + 1, "/sys/fs/cgroup", 14))
		return errno = EPROTO, -1;
	*dir++ = 0;
	*opts++ = 0;
	hs[nh++] = (struct hier){ .dir = dir, .fstype = val, .opts = opts };
	return 0;
}

// guest_cgroups gives the VPS a cgroup view it can manage (an init such as systemd does): the
// host's hierarchies mounted again inside the VPS's cgroup namespace, so that their root is the
// VPS's own group. Runs below the new root (the current directory).
static void guest_cgroups(void)
{
	if (nh == 0)
		return;
	if (nh == 1 && !strcmp(hs[0].fstype, "cgroup2") && !strcmp(hs[0].dir, "/sys/fs/cgroup")) {
		// Pure v2: one tree.
		if (mount("cgroup", "sys/fs/cgroup", "cgroup2", NOSUIDDEVEXEC, NULL) < 0)
			die("mount cgroup2 on /sys/fs/cgroup");
		return;
	}
	if (mount("tmpfs", "sys/fs/cgroup", "tmpfs", NOSUIDDEVEXEC, "mode=755,size=64k") < 0)
		die("mount /sys/fs/cgroup");
	for (int i = 0; i < nh; i++) {
		const char *rel = hs[i].dir + 1;
		// In the tmpfs just mounted: one mkdir, unless the mount point is nested deeper.
		if (mkdir(rel, 0755) < 0 && mkdir_p(rel, 0755) < 0)
			die("mkdir /%s", rel);
		if (mount("cgroup", rel, hs[i].fstype, NOSUIDDEVEXEC, hs[i].opts[0] ? hs[i].opts : NULL) < 0)
			die("mount %s (%s) on /%s", hs[i].fstype, hs[i].opts, rel);
		// Co-mounted controllers (cpu,cpuacct) are reachable by either name, as on the host.
		const char *base = strrchr(rel, '/') + 1;
		if (!strcmp(hs[i].fstype, "cgroup") && strchr(base, ',')) {
			char names[256], link[512];
			snprintf(names, sizeof(names), "%s", base);
			char *s2 = NULL;
			for (char *c = strtok_r(names, ",", &s2); c; c = strtok_r(NULL, ",", &s2)) {
				snprintf(link, sizeof(link), "sys/fs/cgroup/%s", c);
				(void)symlink(base, link);
			}
		}
	}
}

// Masked paths hide host information from the VPS (bound to /dev/null, or an empty read-only
// tmpfs for directories): kernel memory, the host's keys, timers and scheduler state. Listed in
// docs/SECURITY.md; the escape battery (tests/escape_test.go) reads /proc/kcore and
// /proc/keys through them from inside a VPS.
static const char *masked[] = { "proc/kcore", "proc/keys", "proc/timer_list", "proc/sched_debug",
	"proc/latency_stats", "proc/acpi", "proc/scsi", "sys/firmware", "sys/kernel/security", NULL };
// Read-only paths stay visible but cannot be written (host-wide kernel knobs).
static const char *readonly[] = { "proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus", "proc/fs", NULL };

// special builds the VPS's /proc, /sys, /dev and /run below the current directory (the new
// root), all but its cgroup view (guest_cgroups, once we are in the VPS's groups). console is
// the host path of the pty slave the monitor made (also our stdio); runsize and shmsize the
// size= of /run and /dev/shm (the monitor's, from the VPS's memory limit).
static void special(int own_net, const char *console, const char *runsize, const char *shmsize)
{
	mk("proc", "proc", "proc", NOSUIDDEVEXEC, NULL);
	if (own_net) {
		mk("sysfs", "sys", "sysfs", NOSUIDDEVEXEC | MS_RDONLY, NULL);
	} else {
		// sysfs can only be mounted by the owner of the network namespace; without one of its
		// own the VPS gets a read-only view of the host's.
		mk("/sys", "sys", NULL, MS_BIND | MS_REC, NULL);
		if (mount(NULL, "sys", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | NOSUIDDEVEXEC, NULL) < 0)
			die("remount /sys read-only");
	}
	// nodev: the host's nodes the VPS may use are bind mounts of their own on top.
	mk("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=755,size=64k");
	static const char *devs[] = { "null", "zero", "full", "random", "urandom", "tty", NULL };
	char src[64], dst[64];
	for (int i = 0; devs[i]; i++) {
		snprintf(src, sizeof(src), "/dev/%s", devs[i]);
		snprintf(dst, sizeof(dst), "dev/%s", devs[i]);
		bind_file(src, dst);
	}
	// By path, not through /proc/self/fd: that would name the monitor's mount of the host's
	// devpts, which is not in our mount namespace (EINVAL).
	bind_file(console, "dev/console");
	mk("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5");
	char opts[64];
	snprintf(opts, sizeof(opts), "mode=1777,size=%s", shmsize);
	mk("shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts);
	static const char *links[][2] = { { "ptmx", "pts/ptmx" }, { "fd", "/proc/self/fd" },
		{ "stdin", "/proc/self/fd/0" }, { "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" } };
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		snprintf(dst, sizeof(dst), "dev/%s", links[i][0]);
		if (symlink(links[i][1], dst) < 0)
			die("symlink /%s", dst);
	}
	snprintf(opts, sizeof(opts), "mode=755,size=%s", runsize);
	mk("tmpfs", "run", "tmpfs", MS_NOSUID | MS_NODEV, opts);
	if (mkdir("run/lock", 01777) < 0 && errno != EEXIST)
		die("mkdir /run/lock");
	chmod("run/lock", 01777);
	struct stat st;
	if (lstat("tmp", &st) < 0) {
		if (mkdir("tmp", 01777) < 0)
			die("mkdir /tmp");
		chmod("tmp", 01777);
	} else if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		die("/tmp");
	}
	for (int i = 0; masked[i]; i++) {
		if (lstat(masked[i], &st) < 0)
			continue;
		int r = S_ISDIR(st.st_mode) ? mount("tmpfs", masked[i], "tmpfs", MS_RDONLY | NOSUIDDEVEXEC, "size=0")
					    : mount("/dev/null", masked[i], NULL, MS_BIND, NULL);
		if (r < 0)
			die("mask /%s", masked[i]);
	}
	for (int i = 0; readonly[i]; i++) {
		if (lstat(readonly[i], &st) < 0)
			continue;
		if (mount(readonly[i], readonly[i], NULL, MS_BIND | MS_REC, NULL) < 0)
			die("bind /%s", readonly[i]);
		if (mount(NULL, readonly[i], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | NOSUIDDEVEXEC, NULL) < 0)
			die("read-only /%s", readonly[i]);
	}
}

// loopback_up brings up the loopback interface of the VPS's own network namespace, as a
// booting kernel's init scripts would expect and a one-shot command may need; the monitor
// configures the VPS's other interfaces, if it has any (network.Setup).
static void loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		die("loopback interface");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		die("set loopback up");
	close(s);
}

#define MAXARGS 1024
static char cfgbuf[1 << 16], claimbuf[1 << 16], gobuf[256];
static struct msg cfgmsg, claimmsg, gomsg;
static char *iargv[MAXARGS + 1], *ienvp[MAXARGS + 1];

// recv_config reads one message and the fds it carries into fds (at most max), their count in
// *got; 0 at EOF.
static long recv_config(char *buf, size_t n, struct msg *m, int *fds, int max, int *got)
{
	long r = msg_recv(isock, buf, n, m, fds, max, got);
	if (r < 0)
		die("receive config");
	return r;
}

// The config, from the first message (and a spare's claim).
static int cfg_ns, cfg_park, cfg_na, cfg_ne;
static uint64_t cfg_capdrop;
static const char *cfg_hostname = "", *cfg_domainname = "", *cfg_console = "/dev/null";
static const char *cfg_runsize = "20%", *cfg_shmsize = "50%";
// Extra mounts, each a detached mount the monitor made (a bind of a host directory, idmapped; a
// LXCFS file; a device node) and sent after the root's fd, attached at the relative path its
// mount= key names, in order.
#define MAXMOUNTS 200
static const char *cfg_mounts[MAXMOUNTS];
static int cfg_nmounts;

static void parse_config(const struct msg *m)
{
	for (int i = 0; i < m->n; i++) {
		const struct msg_kv *kv = &m->kv[i];
		int bad = 0;
		if (!strcmp(kv->key, "ns"))
			bad = msg_int(kv->val, &cfg_ns);
		else if (!strcmp(kv->key, "hostname"))
			cfg_hostname = kv->val;
		else if (!strcmp(kv->key, "domainname"))
			cfg_domainname = kv->val;
		else if (!strcmp(kv->key, "console"))
			cfg_console = kv->val;
		else if (!strcmp(kv->key, "cgroupfs"))
			bad = parse_cgroupfs((char *)kv->val);
		else if (!strcmp(kv->key, "mount") && cfg_nmounts < MAXMOUNTS)
			cfg_mounts[cfg_nmounts++] = kv->val;
		else if (!strcmp(kv->key, "runsize"))
			cfg_runsize = kv->val;
		else if (!strcmp(kv->key, "shmsize"))
			cfg_shmsize = kv->val;
		else if (!strcmp(kv->key, "capdrop"))
			bad = msg_u64(kv->val, &cfg_capdrop);
		else if (!strcmp(kv->key, "trace"))
			tracing = !strcmp(kv->val, "1");
		else if (!strcmp(kv->key, "park"))
			cfg_park = !strcmp(kv->val, "1");
		else if (!strcmp(kv->key, "arg") && cfg_na < MAXARGS)
			iargv[cfg_na++] = (char *)kv->val;
		else if (!strcmp(kv->key, "env") && cfg_ne < MAXARGS)
			ienvp[cfg_ne++] = (char *)kv->val;
		else
			bad = msg_bad(kv);
		if (bad)
			die("config key %s", kv->key);
	}
	iargv[cfg_na] = NULL;
	ienvp[cfg_ne] = NULL;
}

// park_for_claim is a spare's wait (see the top): the claim's keys replace the config's.
static void park_for_claim(void)
{
	ssize_t r;
	do
		r = send(isock, "P", 1, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r != 1)
		die("report parked");
	int stdio[3], got = 0;
	long n = recv_config(claimbuf, sizeof(claimbuf), &claimmsg, stdio, 3, &got);
	if (n > 0 && got != 3) {
		errno = EBADF;
		die("receive claim: no stdio");
	}
	if (n == 0)
		_exit(0); // not claimed: the keeper tears the spare down
	for (int i = 0; i < 3; i++) {
		if (dup2(stdio[i], i) < 0) // dup2 clears close-on-exec on 0, 1, 2
			die("claim: stdio");
		close(stdio[i]);
	}
	cfg_na = cfg_ne = 0;
	parse_config(&claimmsg);
}

// vpsctl_init_child_fail reports a failure of the set-up before vpsctl_init_child (the
// spawner's clone, spawner.c) the way the init child reports its own, with errno.
void vpsctl_init_child_fail(int sock, const char *what)
{
	isock = sock;
	die("%s", what);
}

// mount_extra attaches mount fd at path rel (relative to the VPS's root, our working directory):
// a directory for a directory (made with its parents if missing), an empty file for anything
// else, then move_mount. The mount is the monitor's: it was made read-only or idmapped there.
static void mount_extra(int fd, const char *rel)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		die("extra mount %s: fstat", rel);
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", rel);
	char *slash = strrchr(dir, '/');
	if (S_ISDIR(st.st_mode)) {
		if (mkdir_p(rel, 0755) < 0)
			die("extra mount %s: mkdir", rel);
	} else if (lstat(rel, &st) < 0) { // a file there already (in /proc, a read-only /sys) is used as it is
		if (slash) {
			*slash = 0;
			if (mkdir_p(dir, 0755) < 0)
				die("extra mount %s: mkdir", rel);
		}
		int f = open(rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (f < 0)
			die("extra mount %s: create", rel);
		close(f);
	}
	if (syscall(SYS_move_mount, fd, "", AT_FDCWD, rel, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		die("extra mount %s: move_mount", rel);
	close(fd);
}

// join_groups waits for the monitor's go-ahead and moves us into the v1 groups whose tasks files
// it carries: "0" moves the writing thread, which is all of us until the exec, and takes no
// global lock (a write of a PID to cgroup.procs waits for an RCU grace period after a quiet
// spell: milliseconds). The kernel checks the credentials the files were opened with, the
// monitor's, not ours.
static void join_groups(void)
{
	int fds[64], nfds = 0, want = -1;
	long n = msg_recv(isock, gobuf, sizeof(gobuf), &gomsg, fds, 64, &nfds);
	if (n <= 0) {
		errno = n < 0 ? errno : EPIPE;
		die("wait for the monitor");
	}
	for (int i = 0; i < gomsg.n; i++) {
		const struct msg_kv *kv = &gomsg.kv[i];
		if (!strcmp(kv->key, "tasks") ? msg_int(kv->val, &want) : msg_bad(kv))
			die("go-ahead key %s", kv->key);
	}
	if (want != nfds) {
		errno = EBADF;
		die("go-ahead: %d tasks files for %d", nfds, want);
	}
	for (int i = 0; i < nfds; i++) {
		ssize_t w;
		do
			w = write(fds[i], "0", 1);
		while (w < 0 && errno == EINTR);
		if (w != 1)
			die("join cgroup");
		close(fds[i]);
	}
}

void vpsctl_init_child(int sock)
{
	isock = sock;
	static int fds[1 + MAXMOUNTS];
	int nfds = 0;
	if (recv_config(cfgbuf, sizeof(cfgbuf), &cfgmsg, fds, 1 + MAXMOUNTS, &nfds) == 0) {
		errno = EPIPE;
		die("receive config: monitor went away");
	}
	parse_config(&cfgmsg);
	if (nfds != 1 + cfg_nmounts) {
		errno = EBADF;
		die("receive config: %d mount fds for %d mounts and the root", nfds, cfg_nmounts);
	}
	int rootfd = fds[0];
	int ns = cfg_ns;
	if (cfg_na == 0 && !cfg_park) {
		errno = EINVAL;
		die("exec init: no init");
	}
	// Nothing we mount may propagate back to the monitor's (or the host's) namespace.
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die("make mounts private");
	// Our working directory is the VPS's mount point, inherited from the monitor and translated
	// into our mount namespace by clone. We attach the root there by fd, with no path lookup:
	// as the VPS's root we may not traverse the host's state directory.
	if (syscall(SYS_move_mount, rootfd, "", AT_FDCWD, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		die("attach root filesystem: move_mount");
	if (fchdir(rootfd) < 0)
		die("chdir root");
	close(rootfd);
	mark("init-child-config");
	if (ns & CLONE_NEWNET)
		loopback_up();
	special(ns & CLONE_NEWNET, cfg_console, cfg_runsize, cfg_shmsize);
	mark("init-child-mounted");
	// The monitor's go-ahead: the VPS's groups are made (on v1 after the clone, while we
	// mounted) and its network is set up.
	join_groups();
	if (ns & CLONE_NEWCGROUP) {
		// Now that the monitor has put us in the VPS's group, that group becomes the root of
		// the VPS's cgroup view (the seed's container_clone: a VPS sees only its own subtree).
		if (unshare(CLONE_NEWCGROUP) < 0)
			die("unshare cgroup namespace");
		guest_cgroups();
	}
	mark("init-child-cgroups");
	// pivot_root(".", ".") stacks the old root on top of the new one; unmounting it leaves the
	// VPS with no path back to the host's tree (unlike chroot).
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		die("pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		die("detach old root");
	mark("init-child-pivoted");
	if (chdir("/") < 0)
		die("chdir /");
	// After the pivot: the paths are the VPS's own, resolved inside it (a tenant's symlink
	// leads nowhere but into the VPS).
	for (int i = 0; i < cfg_nmounts; i++)
		mount_extra(fds[1 + i], cfg_mounts[i]);
	if (cfg_park) {
		park_for_claim();
		mark("init-child-claimed");
		if (cfg_na == 0) {
			errno = EINVAL;
			die("exec init: no init");
		}
	}
	if (ns & CLONE_NEWUTS) {
		if (sethostname(cfg_hostname, strlen(cfg_hostname)) < 0)
			die("sethostname");
		if (setdomainname(cfg_domainname, strlen(cfg_domainname)) < 0)
			die("setdomainname");
	}
	for (int c = 0; c < 64; c++)
		if (((cfg_capdrop >> c) & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			die("drop capabilities");
	// No host fd other than the console may reach the VPS (CVE-2024-21626); our socket is
	// close-on-exec, so a failed exec can still be reported.
	vpsctl_cloexec_from(3);
	const char *path = iargv[0];
	char found[4096];
	if (!strchr(path, '/')) {
		// A one-shot command named without a path: look it up in the VPS's PATH.
		static const char *dirs[] = { "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin", NULL };
		for (int i = 0; dirs[i]; i++) {
			snprintf(found, sizeof(found), "%s/%s", dirs[i], path);
			if (access(found, X_OK) == 0) {
				path = found;
				break;
			}
		}
	}
	// The syscall filter (internal/seccomp) last: as the VPS's root in its user namespace we
	// may install it without no_new_privs, which would break setuid programs in the guest.
	if (vpsctl_seccomp_install_default() < 0)
		die("install the seccomp filter");
	mark("init-child-exec");
	vpsctl_guest_slack();
	execve(path, iargv, ienvp);
	die("exec %s", iargv[0]);
}
