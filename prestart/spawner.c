// vpsctl's spawner: a small process forked before the Go runtime starts, for the commands that
// boot a VPS (`vpsctl start`'s forked child, `vpsctl run`) or end one (`stop`, `destroy`), which
// it serves two ways:
//
//   - It clones the VPS's init child. Go cannot clone a child into a new user namespace with
//     vfork (the child must wait for its ID maps), so it copies the whole Go process, and the
//     child then execs vpsctl again to reach initchild.c: about a millisecond. Cloned from this
//     process, which has almost no memory and is already the C code, the child runs initchild.c
//     straight away. CLONE_PARENT makes it a child of the Go process, which waits for it, reaps
//     it and is its parent for a parent-death signal, as if Go had cloned it. For a command
//     that boots on a host without a cgroup2 tree, it clones one in advance (preclone), while
//     the command's Go runtime starts; elsewhere the child is cloned into its cgroup2 group.
//   - It becomes the background remover (rmtree.c) of a destroyed VPS's files, or of a stopped
//     VPS's mounts and groups, instead of a new process exec'd for it, so the command returns
//     without waiting for an exec.
//
//   Go ──SOCK_SEQPACKET── spawner        requests are messages (msg.h), replies struct spawn_reply
//       clone:   op=clone flags maphost mapsize pdeathsig cgroup cwd, fds [mount ns, cwd,
//                stdin, stdout, stderr, init socket, cgroup?]
//                ◀── pid (or -errno), discarded  spawner: the child cloned in advance if the
//                                           flags are its own and no cgroup2 group is given (ID
//                                           maps, fds and path handed over), else setns(mount
//                                           ns), clone3(CLONE_PARENT|ns|CLONE_INTO_CGROUP), ID
//                                           maps, go-ahead; the
//                                           child: stdio, setsid, become the VPS's root,
//                                           initchild.c. discarded: the child cloned in
//                                           advance and killed (other flags), for Go to reap
//       reclaim: op=reclaim and the remover's keys, fds [dir lock, VPS lock?, held...]
//                ◀── 0                      spawner: remover.c, then exits
//
// The spawner keeps nothing of the command's: its stdio is /dev/null, every other inherited fd
// is closed, it is in a session of its own. It exits when the Go side closes its end (EOF):
// after a reclaim, or when the command exits, or when a monitor closes it (CloseSpawner) once
// its VPS's init is cloned. A Go process that has none (a program importing the library) starts
// one with _VPSCTL_STAGE=spawner:FD (spawner.go).
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "prestart.h"


enum { MAXFDS = 64 };

// A clone request, from its message.
struct spawn_req {
	int pdeathsig;     // signal the child gets when its parent thread dies (0: none)
	uint64_t flags;    // CLONE_NEW* flags
	unsigned map_host; // the user namespace maps 0..map_size-1 to map_host.. (size 0: no maps)
	unsigned map_size;
	int cgroup;        // the last fd is a cgroup2 directory to clone into
	const char *cwd;   // the boot's working directory by path ("": none)
};

// spawn_reply is the answer to each request (spawner.go reads it).
struct spawn_reply {
	int32_t pid;       // the child, if one was cloned (Go reaps it if err is set)
	int32_t err;       // errno
	int32_t discarded; // a pre-cloned child not used (see preclone), for Go to reap; 0: none
	int32_t pad;
};

// The pre-cloned init child (see preclone): its pid (-1: none) and the socket it waits on.
static struct {
	int pid, sock;
} pre = { -1, -1 };

// PRECLONE_FLAGS are a VPS's namespaces as vpsctl makes them by default (the cgroup namespace
// is the child's own to unshare later): a boot asking for others gets a child cloned anew.
#define PRECLONE_FLAGS (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC)

int vpsctl_spawner_fd = -1;
int vpsctl_spawner_pid = -1;
// vpsctl_spawner_persistent: the spawner serves a spare keeper (package spare), which boots
// VPS after VPS, or a Go program that started it itself: it clones one in advance again after each clone, and forks a remover for each
// reclaim instead of becoming one, so that it outlives them all.
int vpsctl_spawner_persistent = 0;

static char payload[1 << 16];
static struct msg reqmsg;

// recv_fds reads one message into iov and the fds it carries (at most MAXFDS); 0 at EOF.
static ssize_t recv_fds(int sock, struct iovec *iov, int niov, int *fds, int *nfds)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(MAXFDS * sizeof(int))];
	} u;
	struct msghdr mh = { 0 };
	mh.msg_iov = iov;
	mh.msg_iovlen = niov;
	mh.msg_control = u.b;
	mh.msg_controllen = sizeof(u.b);
	ssize_t r;
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	*nfds = 0;
	if (r <= 0)
		return r;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			int n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds + *nfds, CMSG_DATA(cm), n * sizeof(int));
			*nfds += n;
		}
	return r;
}

// parse_clone fills req from a clone request's message: 0, or -1 with errno EPROTO.
static int parse_clone(const struct msg *m, struct spawn_req *req)
{
	memset(req, 0, sizeof(*req));
	req->cwd = "";
	for (int i = 0; i < m->n; i++) {
		const struct msg_kv *kv = &m->kv[i];
		int bad = 0;
		uint64_t v = 0;
		if (!strcmp(kv->key, "op"))
			continue;
		else if (!strcmp(kv->key, "flags"))
			bad = msg_u64(kv->val, &req->flags);
		else if (!strcmp(kv->key, "maphost"))
			bad = msg_u64(kv->val, &v) || v > 0xffffffffULL, req->map_host = (unsigned)v;
		else if (!strcmp(kv->key, "mapsize"))
			bad = msg_u64(kv->val, &v) || v > 0xffffffffULL, req->map_size = (unsigned)v;
		else if (!strcmp(kv->key, "pdeathsig"))
			bad = msg_int(kv->val, &req->pdeathsig);
		else if (!strcmp(kv->key, "cgroup"))
			bad = msg_int(kv->val, &req->cgroup);
		else if (!strcmp(kv->key, "cwd"))
			req->cwd = kv->val;
		else
			bad = msg_bad(kv);
		if (bad)
			return -1;
	}
	return 0;
}

static void reply(int sock, int pid, int err, int discarded)
{
	struct spawn_reply rep = { pid, err, discarded, 0 };
	ssize_t r;
	do
		r = send(sock, &rep, sizeof(rep), MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

// place moves fds[0..n-1] to 0..n-1 (through fds above them all, so none is overwritten before
// it moved) and closes every other fd from first on.
static int place(int *fds, int n, unsigned first)
{
	int tmp[MAXFDS];
	for (int i = 0; i < n; i++)
		if ((tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 100)) < 0)
			return -1;
	for (int i = 0; i < n; i++)
		if (dup2(tmp[i], i) < 0) // dup2 clears close-on-exec on i
			return -1;
	return (int)syscall(SYS_close_range, first, ~0U, 0U);
}

// become_init is the end of a cloned child's set-up, once it is mapped: it takes its stdio and
// socket (want: stdin, stdout, stderr, init socket), and becomes initchild.c as the VPS's root,
// as Go's clone would have made it before the exec.
static void become_init(int *want, int mapped, int pdeathsig) __attribute__((noreturn));
static void become_init(int *want, int mapped, int pdeathsig)
{
	prctl(PR_SET_NAME, "vpsctl-init", 0, 0, 0);
	if (place(want, 4, 4) < 0)
		vpsctl_init_child_fail(want[3], "spawner: place stdio");
	if (setsid() < 0)
		vpsctl_init_child_fail(3, "setsid");
	if (mapped && (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
		vpsctl_init_child_fail(3, "become the VPS's root");
	// After the credential change, which clears it.
	if (pdeathsig && prctl(PR_SET_PDEATHSIG, pdeathsig, 0, 0, 0) < 0)
		vpsctl_init_child_fail(3, "parent death signal");
	vpsctl_init_child(3);
}

// init_child is the child do_clone clones: it waits for its ID maps, then becomes the init.
static void init_child(int go, int *fds, const struct spawn_req *req) __attribute__((noreturn));
static void init_child(int go, int *fds, const struct spawn_req *req)
{
	char c;
	ssize_t r;
	do
		r = read(go, &c, 1);
	while (r < 0 && errno == EINTR);
	if (r != 1)
		_exit(127); // the spawner failed to map us, and says so to Go
	int want[4] = { fds[2], fds[3], fds[4], fds[5] }; // stdin, stdout, stderr, init socket
	become_init(want, req->map_size != 0, req->pdeathsig);
}

// The hand-over to a pre-cloned child (use_preclone): what init_child has from the request.
struct preclone_msg {
	int32_t pdeathsig;
	int32_t mapped;
	char cwd[4096]; // the boot's working directory (where the root is attached), by path
};

// preclone_child waits, with nothing of the spawner's but its hand-over socket (fd 3), until
// the spawner has mapped it and sends it its stdio, socket and working directory; at EOF (not
// used) it exits.
static void preclone_child(int sock) __attribute__((noreturn));
static void preclone_child(int sock)
{
	if (dup2(sock, 3) < 0)
		_exit(1);
	syscall(SYS_close_range, 4U, ~0U, 0U);
	struct preclone_msg m;
	int fds[MAXFDS], nfds;
	struct iovec iov = { &m, sizeof(m) };
	if (recv_fds(3, &iov, 1, fds, &nfds) != (ssize_t)sizeof(m))
		_exit(0); // not used (EOF)
	if (nfds != 4)
		_exit(1);
	m.cwd[sizeof(m.cwd) - 1] = 0;
	// Still host root's IDs (the credentials change in become_init), so the state directory
	// (root's, 0700) is ours to walk: by path, into our own copy of the mount table.
	if (chdir(m.cwd) < 0)
		vpsctl_init_child_fail(fds[3], "spawner: working directory");
	become_init(fds, m.mapped, m.pdeathsig);
}

// preclone clones a VPS's init child in advance, with PRECLONE_FLAGS, while the Go runtime of
// the command starts: the namespaces (the network namespace is the slow one) are made by the
// time the boot asks for its child, which then only needs its ID maps, its group and its fds
// (use_preclone). Its mount namespace is a copy of the host's, not of the boot's: the boot
// hands its root over as a detached mount, and the child makes its mounts private before
// anything is mounted in it. It is our parent's child (CLONE_PARENT), as do_clone's are.
static void preclone(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	struct vpsctl_clone_args args = { 0 };
	args.flags = PRECLONE_FLAGS | CLONE_PARENT;
	int child = (int)syscall(SYS_clone3, &args, sizeof(args));
	if (child == 0) {
		close(sv[0]);
		preclone_child(sv[1]);
	}
	close(sv[1]);
	if (child < 0) {
		close(sv[0]);
		return;
	}
	pre.pid = child, pre.sock = sv[0];
}

// discard_preclone lets the pre-cloned child go (it exits at EOF) and returns its pid, for Go to
// reap (it is Go's child), or 0.
static int discard_preclone(void)
{
	if (pre.pid < 0)
		return 0;
	int pid = pre.pid;
	kill(pid, SIGKILL);
	close(pre.sock);
	pre.pid = pre.sock = -1;
	return pid;
}

static int write_map(int pid, const char *file, const struct spawn_req *req)
{
	char path[64], map[64];
	snprintf(map, sizeof(map), "0 %u %u\n", req->map_host, req->map_size);
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	return write_file(path, map) < 0 ? errno : 0;
}

#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif

// reachable_without_caps reports whether path can be walked into with this process's IDs but
// without the capabilities that override file permissions: what the child cloned in advance has
// (host root's IDs, no capability over the host's files), which enters the boot's directory by
// path. A state root below a directory only another user can search fails this (the child would
// be refused); the boot then gets a child cloned on request, which is handed the directory as
// an fd. The kernel's own check, with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH out of the
// effective set for its duration.
static int reachable_without_caps(const char *path)
{
	struct {
		uint32_t version;
		int pid;
	} h = { 0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0 };
	struct {
		uint32_t effective, permitted, inheritable;
	} saved[2], d[2];
	if (syscall(SYS_capget, &h, saved) < 0)
		return 0;
	memcpy(d, saved, sizeof(d));
	d[0].effective &= ~((1u << 1) | (1u << 2)); // CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
	if (syscall(SYS_capset, &h, d) < 0)
		return 0;
	int ok = syscall(SYS_faccessat2, AT_FDCWD, path, X_OK, AT_EACCESS) == 0;
	syscall(SYS_capset, &h, saved);
	return ok;
}

// use_preclone makes the pre-cloned child the boot's init child (a boot with no cgroup2 group):
// maps it and hands it its fds and working directory. 0 or an errno, as do_clone.
static int use_preclone(int *fds, int nfds, const struct spawn_req *req, const char *cwd, int *pid)
{
	if (nfds != 6 || strlen(cwd) >= sizeof(((struct preclone_msg *)0)->cwd))
		return EINVAL;
	int child = pre.pid, sock = pre.sock, e = 0;
	pre.pid = pre.sock = -1;
	*pid = child;
	if (req->map_size && ((e = write_map(child, "gid_map", req)) || (e = write_map(child, "uid_map", req))))
		goto out;
	struct preclone_msg m = { req->pdeathsig, req->map_size != 0, { 0 } };
	snprintf(m.cwd, sizeof(m.cwd), "%s", cwd);
	int give[4] = { fds[2], fds[3], fds[4], fds[5] };
	char cbuf[CMSG_SPACE(sizeof(give))];
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET, cm->cmsg_type = SCM_RIGHTS, cm->cmsg_len = CMSG_LEN(sizeof(give));
	memcpy(CMSG_DATA(cm), give, sizeof(give));
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(m))
		e = errno ? errno : EPROTO;
out:
	if (e)
		kill(child, SIGKILL);
	close(sock);
	return e;
}

// do_clone clones the init child as req says, into the mount namespace and working directory
// it was handed (a boot's), and returns 0 or an errno; *pid is the child, if there is one (a
// child that was not mapped is killed, and left for Go to reap).
static int do_clone(int *fds, int nfds, const struct spawn_req *req, int selfns, int *pid)
{
	// fds: mount ns, cwd, stdin, stdout, stderr, init socket, [cgroup]
	if (nfds != 6 + (req->cgroup ? 1 : 0))
		return EINVAL;
	if (setns(fds[0], CLONE_NEWNS) < 0)
		return errno;
	int e = 0, go[2] = { -1, -1 };
	if (fchdir(fds[1]) < 0 || pipe2(go, O_CLOEXEC) < 0) {
		e = errno;
		goto back;
	}
	struct vpsctl_clone_args args = { 0 };
	args.flags = req->flags | CLONE_PARENT;
	if (req->cgroup) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)fds[6];
	}
	// exit_signal 0: with CLONE_PARENT the child signals our parent as we would (SIGCHLD).
	int child = (int)syscall(SYS_clone3, &args, sizeof(args));
	if (child == 0) {
		close(go[1]);
		init_child(go[0], fds, req);
	}
	if (child < 0) {
		e = errno;
		goto back;
	}
	*pid = child;
	if (req->map_size && (e = write_map(child, "gid_map", req)) == 0)
		e = write_map(child, "uid_map", req);
	if (e == 0 && write(go[1], "", 1) != 1)
		e = errno;
	if (e)
		kill(child, SIGKILL);
back:
	if (go[0] >= 0)
		close(go[0]);
	if (go[1] >= 0)
		close(go[1]);
	setns(selfns, CLONE_NEWNS);
	return e;
}

void vpsctl_spawner_main(int sock, int boots)
{
	prctl(PR_SET_NAME, "vpsctl-spawner", 0, 0, 0);
	setsid();
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 || dup2(sock, 3) < 0)
		_exit(1);
	sock = 3;
	syscall(SYS_close_range, 4U, ~0U, 0U);
	if (boots)
		preclone();
	if (vpsctl_spawner_persistent)
		signal(SIGCHLD, SIG_IGN); // our removers reap themselves (the init children are our parent's)
	int selfns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	for (;;) {
		int fds[MAXFDS], nfds;
		long r = msg_recv(sock, payload, sizeof(payload), &reqmsg, fds, MAXFDS, &nfds);
		if (r == 0) {
			discard_preclone(); // a zombie of our parent's, which is exiting
			_exit(0);
		}
		const char *op = r < 0 || reqmsg.n == 0 || strcmp(reqmsg.kv[0].key, "op") ? "" : reqmsg.kv[0].val;
		struct spawn_req req;
		if (!strcmp(op, "clone") && parse_clone(&reqmsg, &req) == 0) {
			// cwd: the boot's working directory, by path (for a pre-cloned child).
			int pid = 0, err, discarded = 0;
			// A boot into a cgroup2 group clones its child anew, into the group: a child cloned
			// in advance would have to be moved there, and a move by PID waits for an RCU grace
			// period after a quiet spell (cgroup.Manager.TaskFiles), longer than the clone. A
			// persistent spawner then clones none in advance any more.
			if (req.cgroup)
				boots = 0;
			if (pre.pid > 0 && !req.cgroup && req.flags == PRECLONE_FLAGS && req.cwd[0] == '/' &&
			    reachable_without_caps(req.cwd)) {
				err = use_preclone(fds, nfds, &req, req.cwd, &pid);
			} else {
				discarded = discard_preclone();
				err = do_clone(fds, nfds, &req, selfns, &pid);
			}
			reply(sock, pid, err, discarded);
			if (vpsctl_spawner_persistent && boots && pre.pid < 0)
				preclone(); // the next boot's namespaces, while this one goes on
		} else if (!strcmp(op, "reclaim") && nfds >= 1 && nfds + 3 <= MAXFDS) {
			// fds: dir lock, VPS lock (if any), held files: placed from 3 on, in that order,
			// as the message's fd keys name them.
			int all[MAXFDS];
			all[0] = 0, all[1] = 1, all[2] = 2;
			memcpy(all + 3, fds, nfds * sizeof(int));
			reply(sock, 0, 0, 0);
			// Wait for Go to close its end, which it does after its copies of the held files:
			// whoever closes a mount namespace last unmounts it (and an overlay's last unmount
			// syncs its file system), which must be this process, not the command.
			// (A persistent spawner's Go side writes a byte instead: it keeps its end.)
			char c;
			while (read(sock, &c, 1) < 0 && errno == EINTR)
				;
			if (vpsctl_spawner_persistent) {
				pid_t rm = fork();
				if (rm != 0) {
					// The parent, or a failed fork: the files then stay, as they would if the
					// remover were killed (closing the held files here unmounts, and lets go
					// of the locks); the staging directory is swept once the process whose PID
					// it names is gone.
					for (int i = 0; i < nfds; i++)
						close(fds[i]);
					continue;
				}
				close(pre.sock);
			}
			if (place(all, nfds + 3, nfds + 3) < 0)
				_exit(1);
			vpsctl_remover(&reqmsg);
		} else {
			reply(sock, 0, r < 0 ? errno : EINVAL, 0);
		}
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
	}
}

int vpsctl_spawner_start(int boots, int persistent)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	vpsctl_spawner_persistent = persistent;
	pid_t pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		vpsctl_spawner_main(sv[1], boots);
	}
	close(sv[1]);
	vpsctl_spawner_fd = sv[0];
	vpsctl_spawner_pid = pid;
	return 0;
}
