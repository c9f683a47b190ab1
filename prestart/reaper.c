// The monitor's resting state: while a VPS runs, its monitor is this C loop, not a Go program.
// The Go monitor boots the VPS, then execve()s the same binary with _VPSCTL_STAGE=reaper:FD; the
// process keeps its PID and its children (the VPS's init), and this code runs before any Go
// runtime starts, so a running VPS costs the host tens of KiB of private memory here (38 KiB
// measured with 1000 running: docs/BENCHMARKS.md) instead of a Go runtime's megabytes.
//
// The loop:
//   - reaps children; the VPS's init's exit ends it (any other child is reaped and forgotten);
//   - serves the console: the pty master's output goes to console.log (bounded, as the Go side
//     does) and to every `vpsctl console` attached to console.sock; their keystrokes go to
//     the pty;
//   - SIGTERM is a stop request: it writes the stop file naming itself and sends the init its
//     poweroff signal.
// When init has exited and its console is drained:
//   - if a `vpsctl stop` (alive, not us) asked for it, that command cleans up: exit at once;
//   - otherwise execve() the Go monitor again with the wait status ("--after"), handing over
//     the console socket and its clients: it tears the boot down and boots again on a reboot.
//
// Its message (msg.h), from monitor/reaper.go: id (the VPS's, for the log), pid (the init, our
// child), sig (its poweroff signal), master (the console pty's master fd), log (console.log's
// fd), logpath (its path, for rotation), logmax (console.log's cap in bytes), listen (console.sock's fd), client (an attached
// console's fd, repeated), stopfile (the stop request's path), hostns (the host's mount
// namespace, -1 for none, handed back as it is). Inherited fds that are not
// named there are closed on the exec back to Go.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "prestart.h"

#define MAXCLIENTS 32

static int master = -1, logfd = -1, listenfd = -1;
static long long logmax = 4 << 20;
static const char *logpath = "";
static int hostns = -1; // the host's mount namespace, handed back to the Go monitor
static int clients[MAXCLIENTS], nclients;
static char cbuf[32 << 10];

static void logmsg(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// logmsg writes a line to monitor.log (our stderr) in the Go monitor's format.
static void logmsg(const char *id, const char *fmt, ...)
{
	char line[512], ts[64];
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	localtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y/%m/%d %H:%M:%S", &tm);
	va_list ap;
	va_start(ap, fmt);
	int n = snprintf(line, sizeof(line), "monitor %s: %s.%06ld ", id, ts, (long)tv.tv_usec);
	if (n > 0 && n < (int)sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(2, line, n);
}

static void drop_client(int i)
{
	close(clients[i]);
	clients[i] = clients[--nclients];
}

// The console log holds what the VPS wrote, as text an operator can page through: C0 controls
// (but newline and tab), DEL, C1 controls (UTF-8 U+0080-U+009F, which a terminal may take as
// CSI) and bytes that are not UTF-8 are written as \xNN or \u00NN, a backslash as \\ (what
// internal/safetext.EscapeLog does in Go). A multi-byte sequence cut by the end of a read waits
// in carry for the next.
static unsigned char carry[4];
static size_t ncarry;
#define CHUNK (32 << 10) // the most a console read brings (cbuf)
static char ebuf[4 * (CHUNK + sizeof(carry))];

static size_t utf8_len(unsigned char c)
{
	return c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
}

static size_t escape_console(const unsigned char *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i = 0;
	unsigned char in[sizeof(carry) + CHUNK];
	memcpy(in, carry, ncarry);
	memcpy(in + ncarry, b, n);
	n += ncarry;
	ncarry = 0;
	while (i < n) {
		unsigned char c = in[i];
		size_t l = utf8_len(c);
		if (c == '\\') {
			out[o++] = '\\', out[o++] = '\\', i++;
		} else if (c < 0x80 && (c >= 0x20 || c == '\n' || c == '\t') && c != 0x7f) {
			out[o++] = (char)c, i++;
		} else if (l && i + l > n) {
			memcpy(carry, in + i, n - i), ncarry = n - i; // the rest comes with the next read
			break;
		} else if (l) {
			size_t k = 1;
			while (k < l && (in[i + k] & 0xc0) == 0x80)
				k++;
			if (k < l) { // not UTF-8 after all
				out[o++] = '\\', out[o++] = 'x', out[o++] = hex[c >> 4], out[o++] = hex[c & 15], i++;
			} else if (c == 0xc2 && in[i + 1] < 0xa0) { // a C1 control
				memcpy(out + o, "\\u00", 4), o += 4;
				out[o++] = hex[in[i + 1] >> 4], out[o++] = hex[in[i + 1] & 15], i += 2;
			} else {
				memcpy(out + o, in + i, l), o += l, i += l;
			}
		} else {
			out[o++] = '\\', out[o++] = 'x', out[o++] = hex[c >> 4], out[o++] = hex[c & 15], i++;
		}
	}
	return o;
}

// console_out copies what the VPS wrote on its console to the log (escaped; a full log is
// rotated to PATH.1, so a chatty guest cannot fill the host's disk) and to the attached clients
// (as it is: they are terminals the operator attached on purpose).
static void console_out(const char *b, size_t n)
{
	if (logfd >= 0) {
		size_t e = escape_console((const unsigned char *)b, n, ebuf);
		struct stat st;
		if (fstat(logfd, &st) == 0 && st.st_size + (off_t)e > logmax) {
			char old[4200];
			snprintf(old, sizeof(old), "%s.1", logpath);
			int fd = logpath[0] == '/' && rename(logpath, old) == 0 ?
					open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
			if (fd >= 0) {
				dup2(fd, logfd);
				close(fd);
			} else {
				(void)!ftruncate(logfd, 0);
			}
		}
		(void)!write(logfd, ebuf, e);
	}
	for (int i = 0; i < nclients;) {
		// A client that cannot keep up (SO_SNDTIMEO) is dropped rather than stalling the VPS.
		if (send(clients[i], b, n, MSG_NOSIGNAL) != (ssize_t)n)
			drop_client(i);
		else
			i++;
	}
}

static void add_client(void)
{
	int c = accept4(listenfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	if (nclients == MAXCLIENTS) {
		close(c);
		return;
	}
	struct timeval tmo = { 1, 0 };
	setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo));
	clients[nclients++] = c;
}

static int stop_file_pid(const char *path)
{
	char b[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t r = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (r <= 0)
		return 0;
	b[r] = 0;
	return atoi(b);
}

// request_stop is SIGTERM: the same as `vpsctl stop` without the wait.
static void request_stop(const char *stopf, int initpid, int sig)
{
	char tmp[4200], b[32];
	snprintf(tmp, sizeof(tmp), "%s.tmp-%d", stopf, getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		int n = snprintf(b, sizeof(b), "%d\n", getpid());
		int ok = write(fd, b, n) == n && fsync(fd) == 0;
		close(fd);
		if (!ok || rename(tmp, stopf) < 0)
			unlink(tmp);
	}
	kill(initpid, sig);
}

// reap collects every exited child; the init's exit sets *exited and its wait status.
static void reap(int initpid, int *exited, int *status)
{
	int st;
	pid_t w;
	while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
		if (w == initpid) {
			*exited = 1;
			*status = st;
		}
	}
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void describe(int st, char *out, size_t n)
{
	if (WIFSIGNALED(st))
		snprintf(out, n, "killed by %s", strsignal(WTERMSIG(st)));
	else
		snprintf(out, n, "exit status %d", WEXITSTATUS(st));
}

void vpsctl_reaper(struct msg *m)
{
	// exec of /proc/self/exe named us "exe": ps and top show what we are.
	prctl(PR_SET_NAME, "vpsctl-monitor", 0, 0, 0);
	int initpid = -1, sig = SIGTERM, bad = 0;
	const char *id = "?", *stopf = "";
	for (int i = 0; i < m->n && !bad; i++) {
		const struct msg_kv *kv = &m->kv[i];
		int fd;
		if (!strcmp(kv->key, "id"))
			id = kv->val;
		else if (!strcmp(kv->key, "pid"))
			bad = msg_int(kv->val, &initpid);
		else if (!strcmp(kv->key, "sig"))
			bad = msg_int(kv->val, &sig);
		else if (!strcmp(kv->key, "master"))
			bad = msg_int(kv->val, &master);
		else if (!strcmp(kv->key, "log"))
			bad = msg_int(kv->val, &logfd);
		else if (!strcmp(kv->key, "logmax")) {
			int mx;
			if (!(bad = msg_int(kv->val, &mx)))
				logmax = mx;
		} else if (!strcmp(kv->key, "hostns"))
			bad = msg_int(kv->val, &hostns);
		else if (!strcmp(kv->key, "logpath"))
			logpath = kv->val;
		else if (!strcmp(kv->key, "listen"))
			bad = msg_int(kv->val, &listenfd);
		else if (!strcmp(kv->key, "client")) {
			if (!(bad = msg_int(kv->val, &fd)) && fd > 2 && nclients < MAXCLIENTS)
				clients[nclients++] = fd;
		} else if (!strcmp(kv->key, "stopfile"))
			stopf = kv->val;
		else
			bad = msg_bad(kv);
	}
	if (bad || !stopf[0]) {
		logmsg(id, "reaper: bad message: %s", strerror(errno ? errno : EPROTO));
		_exit(3);
	}
	// The init must be our own child, not yet reaped: only then can its PID not have been
	// reused, and only then may we signal it (SIGTERM below) and wait for it.
	siginfo_t si0;
	if (initpid <= 0 || waitid(P_PID, initpid, &si0, WEXITED | WNOHANG | WNOWAIT) < 0) {
		logmsg(id, "reaper: init %d is not a child of ours (%s)", initpid, strerror(errno));
		_exit(3);
	}
	// The re-exec of the Go monitor inherits only what it is handed explicitly (see below).
	vpsctl_cloexec_from(3);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		logmsg(id, "reaper: signalfd: %s", strerror(errno));
		_exit(3);
	}
	if (master >= 0)
		fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);

	int status = 0, exited = 0;
	long long hung = 0; // when the pty master last read EIO (a console without openers)
	int backoff = 50;   // ms to wait before looking at a hung-up master again
	// The init may have exited before SIGCHLD was blocked (during the exec that brought us
	// here): the signal is then lost, so look once before waiting for it.
	reap(initpid, &exited, &status);
	while (!exited) {
		struct pollfd p[3 + MAXCLIENTS];
		int np = 0, mi = -1, li = -1;
		p[np++] = (struct pollfd){ sfd, POLLIN, 0 };
		// After EIO (systemd hangs the console up, vhangup, until the next open of the
		// slave) the master reports POLLHUP at once: look again after a while (50 ms, backing
		// off to a second while nobody opens the console), not in a spin.
		if (master >= 0 && (!hung || now_ms() - hung >= backoff)) {
			mi = np;
			p[np++] = (struct pollfd){ master, POLLIN, 0 };
		}
		if (listenfd >= 0) {
			li = np;
			p[np++] = (struct pollfd){ listenfd, POLLIN, 0 };
		}
		int ci = np;
		for (int i = 0; i < nclients; i++)
			p[np++] = (struct pollfd){ clients[i], POLLIN, 0 };
		int r = poll(p, np, hung ? backoff : -1);
		if (r < 0 && errno != EINTR) {
			// We cannot watch the VPS any more. The next vpsctl command repairs.
			logmsg(id, "reaper: poll: %s", strerror(errno));
			_exit(3);
		}
		if (r <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGTERM)
					request_stop(stopf, initpid, sig);
			}
			reap(initpid, &exited, &status);
		}
		if (mi >= 0 && p[mi].revents) {
			ssize_t n = read(master, cbuf, sizeof(cbuf));
			if (n > 0 || (n < 0 && errno == EAGAIN)) {
				hung = 0;
				backoff = 50;
				if (n > 0)
					console_out(cbuf, n);
			} else {
				if (hung && backoff < 1000)
					backoff *= 2;
				hung = now_ms();
			}
		}
		if (li >= 0 && (p[li].revents & POLLIN))
			add_client();
		// Clients: keystrokes to the pty; a closed connection is dropped.
		for (int i = nclients - 1; i >= 0; i--) {
			if (ci + i >= np || !p[ci + i].revents)
				continue;
			ssize_t n = read(clients[i], cbuf, 1024);
			if (n > 0) {
				if (master >= 0)
					(void)!write(master, cbuf, n);
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				drop_client(i);
			}
		}
	}
	// The console's last lines (often why init died) are still in the pty: read them until EIO,
	// which comes once no VPS process holds the console (they all died with their init), and
	// wait for more (bounded) only while one still does.
	for (long long until = now_ms() + 2000; master >= 0 && now_ms() < until;) {
		ssize_t n = read(master, cbuf, sizeof(cbuf));
		if (n > 0) {
			console_out(cbuf, n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || errno != EAGAIN)
			break;
		struct pollfd pm = { master, POLLIN, 0 };
		poll(&pm, 1, 100);
	}
	char how[64];
	describe(status, how, sizeof(how));
	int stopper = stop_file_pid(stopf);
	if (stopper > 0 && stopper != getpid() && kill(stopper, 0) == 0) {
		// `vpsctl stop` is waiting for us and cleans up itself (one Go runtime fewer).
		logmsg(id, "init exited (%s); stopped by vpsctl stop (PID %d)", how, stopper);
		_exit(0);
	}
	logmsg(id, "init exited (%s)", how);
	if (master >= 0)
		close(master);
	// Back to the Go monitor for the teardown (and the next boot after a reboot); the console
	// socket and its clients go with it.
	char st[32], fds[600];
	snprintf(st, sizeof(st), "%d", status);
	int n = snprintf(fds, sizeof(fds), "%d", listenfd);
	if (listenfd >= 0)
		fcntl(listenfd, F_SETFD, 0);
	for (int i = 0; i < nclients && n < (int)sizeof(fds) - 12; i++) {
		fcntl(clients[i], F_SETFD, 0);
		n += snprintf(fds + n, sizeof(fds) - n, ",%d", clients[i]);
	}
	char ns[16];
	snprintf(ns, sizeof(ns), "%d", hostns);
	if (hostns >= 0)
		fcntl(hostns, F_SETFD, 0);
	char *args[] = { "vpsctl-monitor", (char *)id, "--after", st, fds, ns, NULL };
	setenv(VPSCTL_STAGE_ENV, "monitor", 1);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	execv("/proc/self/exe", args);
	logmsg(id, "reaper: exec the monitor: %s (the next vpsctl command cleans up)", strerror(errno));
	_exit(3);
}
