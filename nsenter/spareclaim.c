// The claim of a spare VPS by `vpsctl run --rm --template T [--hostname H] -- CMD...`, before the
// Go runtime starts: if a keeper of T runs (`vpsctl spare start T`, runtime/spare.go), one of its
// booted VPSs runs CMD on our stdio and we exit with CMD's status, having started no Go runtime
// and booted nothing. For anything else (another form of the command line, no keeper, a claim
// the keeper does not serve) vpsctl_spare_claim returns before anything has run and the Go CLI
// does the whole run, with full error reporting. The protocol is drawn in runtime/spare.go.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "exitas.h"

// Keep in step with runtime/spare.go.
enum { CLAIM_MAGIC = 0x52505356, CLAIM_VERSION = 1 };
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

static char msgbuf[1 << 16];

void vpsctl_spare_claim(int argc, char **argv)
{
	if (getenv("VPSCTL_NO_SPARES") || getenv("VPSCTL_FAULT"))
		return;
	int i;
	const char *root = vpsctl_state_root(argc, argv, &i);
	if (root[0] != '/' || i >= argc || strcmp(argv[i], "run"))
		return;
	const char *tpl = NULL, *host = "";
	int rm = 0;
	for (i++; i < argc && strcmp(argv[i], "--"); i++) {
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
	if (!rm || !tpl || !plain_name(tpl) || i + 1 >= argc)
		return;

	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/spare/%s.sock", root, tpl) >= sizeof(sa.sun_path))
		return;
	uint32_t hdr[2] = { CLAIM_MAGIC, CLAIM_VERSION };
	size_t n = sizeof(hdr);
	memcpy(msgbuf, hdr, n);
	size_t hl = strlen(host) + 1;
	if (n + hl > sizeof(msgbuf))
		return;
	memcpy(msgbuf + n, host, hl);
	n += hl;
	for (int k = i + 1; k < argc; k++) {
		size_t l = strlen(argv[k]) + 1;
		if (n + l > sizeof(msgbuf))
			return;
		memcpy(msgbuf + n, argv[k], l);
		n += l;
	}
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
	struct iovec iov = { msgbuf, n };
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
		// The command ran, and its keeper went away before its status came: the status
		// is lost, and running the command again is not ours to decide.
		fprintf(stderr, "vpsctl: run: the spare keeper of template %s went away while the command ran\n", tpl);
		_exit(3);
	}
	for (int k = 0; k < 3; k++)
		sigaction(sigs[k], &old[k], NULL);
	close(s);
	claim_sock = -1;
}
