// The message parser (msg.h): the one place C reads what Go tells it.
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "msg.h"

int msg_parse(char *buf, size_t n, struct msg *m)
{
	m->n = 0;
	char *p = buf, *end = buf + n;
	while (p < end && *p) {
		char *z = memchr(p, 0, end - p);
		char *eq = z ? memchr(p, '=', z - p) : NULL;
		if (!eq || m->n == MSG_MAXKV) {
			errno = EPROTO;
			return -1;
		}
		*eq = 0;
		m->kv[m->n++] = (struct msg_kv){ p, eq + 1 };
		p = z + 1;
	}
	if (p >= end) { // no empty string at the end: cut short
		errno = EPROTO;
		return -1;
	}
	return 0;
}

long msg_read_fd(int fd, char *buf, size_t n, struct msg *m)
{
	size_t got = 0;
	for (;;) {
		if (got == n) {
			errno = EMSGSIZE;
			return -1;
		}
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
		// Ended: an empty string, i.e. a NUL right after a NUL (or a message of just one NUL).
		if ((got == 1 && buf[0] == 0) || (got >= 2 && buf[got - 1] == 0 && buf[got - 2] == 0))
			break;
	}
	return msg_parse(buf, got, m) < 0 ? -1 : (long)got;
}

long msg_recv(int sock, char *buf, size_t n, struct msg *m, int *fds, int maxfds, int *nfds)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(64 * sizeof(int))];
	} u;
	struct iovec iov = { buf, n };
	struct msghdr mh = { 0 };
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.b;
	mh.msg_controllen = sizeof(u.b);
	ssize_t r;
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	*nfds = 0;
	if (r <= 0)
		return r;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(cm);
		for (int i = 0; i < k; i++) {
			if (*nfds < maxfds)
				fds[(*nfds)++] = in[i];
			else
				close(in[i]);
		}
	}
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || msg_parse(buf, (size_t)r, m) < 0) {
		for (int i = 0; i < *nfds; i++)
			close(fds[i]);
		*nfds = 0;
		errno = EPROTO;
		return -1;
	}
	return r;
}

int msg_int(const char *val, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(val, &end, 10);
	if (!*val || *end || errno || v < -2147483647L - 1 || v > 2147483647L) {
		errno = EPROTO;
		return -1;
	}
	*out = (int)v;
	return 0;
}

int msg_u64(const char *val, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(val, &end, 16);
	if (!*val || *end || errno) {
		errno = EPROTO;
		return -1;
	}
	*out = v;
	return 0;
}

int msg_bad(const struct msg_kv *kv)
{
	(void)kv;
	errno = EPROTO;
	return -1;
}
