// vpsctl's background remover: deletes a destroyed VPS's directory after `destroy` has
// returned. The directory was renamed out of the state root's vps/ first, so the VPS no longer
// exists for any command; what is left is reclaiming its files, which on a journaling
// filesystem costs a few hundred microseconds per unlink. Runs before the Go runtime starts
// (the process only unlinks), at low CPU and I/O priority, in a session of its own.
//
// It never crosses into another filesystem (FTW_MOUNT: the caller unmounted everything below
// the directory, and this is the second guard) and never follows a symlink (FTW_PHYS). It
// inherits, as fd 3, the directory's flock from the destroy that started it and keeps it until
// it exits: the directory's name records that destroy's process, which is soon gone, and the
// sweep every command runs leaves a locked directory alone. If the remover is killed, the lock
// goes with it and the next command's sweep removes what is left.
//
// After a `run --rm` or a `stop` it has more to do first (_VPSCTL_RMTREE_GROUPS,
// _VPSCTL_RMTREE_LOCK): the VPS's mount namespace to close, its cgroup directories (one per line)
// to remove, while it holds the VPS's lock (fd 4, inherited too), and then, for a VPS destroyed,
// that lock's file, as destroy does. After a stop there is no directory to remove
// (_VPSCTL_RMTREE empty). The command returns as soon as its VPS's processes are gone; a command
// on the VPS (or a new VPS of the same ID) waits on the lock until the rest is. Every process of the VPS died with its PID namespace's init; a group still busy is
// one an exiting `vpsctl exec` joiner is leaving, and is tried again (bounded). A group left
// behind after all (the remover killed) is removed by the next start of that ID (repair). Once
// the lock is let go of, it makes the spare groups asked for (_VPSCTL_RMTREE_SPARES) that are
// missing: empty v1 groups a next boot renames into place (docs/ARCHITECTURE.md, Cgroups).
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define IOPRIO_CLASS_IDLE 3
#define IOPRIO_WHO_PROCESS 1

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	// Errors (an entry gone already: a sweep racing this one) leave the rest to continue.
	if (type == FTW_DP || type == FTW_D || type == FTW_DNR)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static int rmdir_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	return 0;
}

// remove_group removes a cgroup directory and its subgroups (a VPS may make its own), deepest
// first: rmdir is all a cgroup file system allows, and it refuses a group with tasks.
static void remove_group(const char *dir)
{
	// Only a vpsctl group below a cgroup mount: never anything else, whatever the environment.
	if (dir[0] != '/' || !strstr(dir, "/vpsctl/") || strstr(dir, "/../"))
		return;
	struct timespec pause = { 0, 5 * 1000 * 1000 };
	for (int try = 0; try < 400; try++) { // 2 s at most
		if (rmdir(dir) == 0 || errno == ENOENT)
			return;
		nftw(dir, rmdir_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
		if (rmdir(dir) == 0 || errno == ENOENT)
			return;
		nanosleep(&pause, NULL);
	}
}

// make_spares makes spare groups (cgroup directories, one per line) where none is: empty groups
// a next boot renames into place instead of making its own (cgroup/fs1.go, spareSlots).
static void make_spares(char *spares)
{
	for (char *g = strtok(spares, "\n"); g; g = strtok(NULL, "\n"))
		// Only a vpsctl spare below a cgroup mount, whatever the environment.
		if (g[0] == '/' && strstr(g, "/vpsctl/.spare-") && !strstr(g, "/../"))
			mkdir(g, 0755); // EEXIST: that slot is full
}

void vpsctl_rmtree_job(const char *path, char *groups, const char *lock, char *spares, unsigned held) __attribute__((noreturn));
void vpsctl_rmtree(const char *path) __attribute__((noreturn));

// vpsctl_rmtree is the remover exec'd by Go (nsenter.RemoveTree), its job in the environment.
void vpsctl_rmtree(const char *path)
{
	static char buf[1 << 16], sbuf[1 << 16];
	const char *groups = getenv("_VPSCTL_RMTREE_GROUPS");
	const char *lock = getenv("_VPSCTL_RMTREE_LOCK");
	const char *spares = getenv("_VPSCTL_RMTREE_SPARES");
	if (groups)
		strncpy(buf, groups, sizeof(buf) - 1);
	if (spares)
		strncpy(sbuf, spares, sizeof(sbuf) - 1);
	vpsctl_rmtree_job(path, groups ? buf : NULL, lock, spares ? sbuf : NULL, lock ? 5 : 4);
}

// vpsctl_rmtree_job closes the held files (fds held and up: a VPS's mount namespace, whose last
// close unmounts its tree, overlay included), removes groups (cgroup directories, one per line;
// NULL: none), then lets go of the VPS's lock (fd 4; lock NULL: none; "-": keep its file, else
// remove it first), makes the spare groups missing (NULL: none; after the lock, for nothing
// waits on them), and last removes path ("": none, after a stop) under its lock (fd 3).
void vpsctl_rmtree_job(const char *path, char *groups, const char *lock, char *spares, unsigned held)
{
	setsid();
	prctl(PR_SET_NAME, "vpsctl-reclaim", 0, 0, 0);
	// Only absolute paths inside a tmp/ staging directory: a stray environment variable must
	// not turn vpsctl into rm -rf.
	if (path[0] && (path[0] != '/' || !strstr(path, "/tmp/destroy-")))
		_exit(2);
	// All that a next boot of the VPS must find gone first, at normal priority, while the lock
	// is held: a command may wait on it. A boot's overlay cannot be mounted again while the old
	// one is still mounted in the old mount namespace.
	syscall(SYS_close_range, held, ~0U, 0U);
	if (groups)
		for (char *g = strtok(groups, "\n"); g; g = strtok(NULL, "\n"))
			remove_group(g);
	if (lock) {
		if (lock[0] == '/' && strstr(lock, "/locks/"))
			unlink(lock); // still holding it: whoever waits takes the path anew
		close(4);
	}
	if (spares)
		make_spares(spares);
	if (!path[0])
		_exit(0);
	setpriority(PRIO_PROCESS, 0, 19);
	syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << 13);
	_exit(nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) == 0 ? 0 : 1);
}
