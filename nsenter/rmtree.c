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
#define _GNU_SOURCE
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
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

void vpsctl_rmtree(const char *path) __attribute__((noreturn));
void vpsctl_rmtree(const char *path)
{
	setsid();
	prctl(PR_SET_NAME, "vpsctl-reclaim", 0, 0, 0);
	setpriority(PRIO_PROCESS, 0, 19);
	syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << 13);
	// Only absolute paths inside a tmp/ staging directory: a stray environment variable must
	// not turn vpsctl into rm -rf.
	if (path[0] != '/' || !strstr(path, "/tmp/destroy-"))
		_exit(2);
	// What the destroy handed over to close first (fds 4 and up: a VPS's mount namespace,
	// whose last close unmounts its tree, overlay included) goes before its files.
	syscall(SYS_close_range, 4U, ~0U, 0U);
	_exit(nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) == 0 ? 0 : 1);
}
