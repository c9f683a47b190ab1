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
// After a `run --rm` or a `stop` it has more to do first: the VPS's mount namespace to close
// (held), its cgroup directories to remove (group), while it holds the VPS's lock (lock), and
// then, for a VPS destroyed, that lock's file (lockpath), as destroy does. After a stop there is
// no directory to remove (dir empty). The command returns as soon as its VPS's processes are
// gone; a command on the VPS (or a new VPS of the same ID) waits on the lock until the rest is.
// Every process of the VPS died with its PID namespace's init; a group still busy is one an
// exiting `vpsctl exec` joiner is leaving, and is tried again (bounded). A group left behind
// after all (the remover killed) is removed by the next start of that ID (repair). Once the lock
// is let go of, it makes the spare groups asked for (spare) that are missing: empty v1 groups a
// next boot renames into place (docs/ARCHITECTURE.md, Cgroups).
//
// Its message (msg.h), from remover.go: dir (the directory to delete, "" for none), dirlock (fd
// of its flock), lock (fd of the VPS's lock, if any), lockpath (that lock's file to remove
// first, if any), held (fds to close first, repeated), group and spare (cgroup directories,
// repeated). The fds are already in place: an exec'd remover inherits them, the spawner's is
// handed them in that order from fd 3 on.
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

#include "prestart.h"

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

// cgroup_dir: dir is named plainly (a group is only ever rmdir'ed, which no non-empty
// directory allows, and a spare only made).
static int cgroup_dir(const char *dir)
{
	return dir[0] == '/' && !strstr(dir, "/../");
}

// remove_group removes a cgroup directory and its subgroups (a VPS may make its own), deepest
// first: rmdir is all a cgroup file system allows, and it refuses a group with tasks.
static void remove_group(const char *dir)
{
	if (!cgroup_dir(dir))
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

void vpsctl_remover(struct msg *m)
{
	setsid();
	prctl(PR_SET_NAME, "vpsctl-reclaim", 0, 0, 0);
	const char *dir = "", *lockpath = "";
	int lock = -1, bad = 0, fd;
	for (int i = 0; i < m->n && !bad; i++) {
		const struct msg_kv *kv = &m->kv[i];
		if (!strcmp(kv->key, "dir"))
			dir = kv->val;
		else if (!strcmp(kv->key, "lockpath"))
			lockpath = kv->val;
		else if (!strcmp(kv->key, "lock"))
			bad = msg_int(kv->val, &lock);
		else if (!strcmp(kv->key, "dirlock") || !strcmp(kv->key, "held"))
			bad = msg_int(kv->val, &fd); // kept (dirlock) or closed below (held)
		else if (strcmp(kv->key, "group") && strcmp(kv->key, "spare") && strcmp(kv->key, "op"))
			bad = msg_bad(kv); // op: a spawner's request (op=reclaim) is the same message
	}
	if (bad || (dir[0] && dir[0] != '/'))
		_exit(2);
	// All that a next boot of the VPS must find gone first, at normal priority, while the lock
	// is held: a command may wait on it. A boot's overlay cannot be mounted again while the old
	// one is still mounted in the old mount namespace.
	for (int i = 0; i < m->n; i++)
		if (!strcmp(m->kv[i].key, "held") && msg_int(m->kv[i].val, &fd) == 0)
			close(fd);
	for (int i = 0; i < m->n; i++)
		if (!strcmp(m->kv[i].key, "group"))
			remove_group(m->kv[i].val);
	if (lock >= 0) {
		if (lockpath[0] == '/')
			unlink(lockpath); // still holding it: whoever waits takes the path anew
		close(lock);
	}
	for (int i = 0; i < m->n; i++)
		if (!strcmp(m->kv[i].key, "spare") && cgroup_dir(m->kv[i].val))
			mkdir(m->kv[i].val, 0755); // EEXIST: that slot is full
	if (!dir[0])
		_exit(0);
	setpriority(PRIO_PROCESS, 0, 19);
	syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << 13);
	_exit(nftw(dir, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) == 0 ? 0 : 1);
}
