// The one message format every C program of vpsctl reads (see msg.go for the Go side): a list
// of NUL-terminated "key=value" strings ended by an empty string. Go writes every message; C
// parses it with msg_parse and refuses a key it does not know (runc's nsexec does the same
// with its netlink attributes): a message from a different vpsctl never half-works.
#ifndef VPSCTL_MSG_H
#define VPSCTL_MSG_H
#include <stddef.h>
#include <stdint.h>

#define MSG_MAXKV 4096

struct msg_kv {
	const char *key; // NUL-terminated: msg_parse overwrites the '='
	const char *val;
};

struct msg {
	struct msg_kv kv[MSG_MAXKV];
	int n;
};

// msg_parse splits buf[0..n) in place into m: 0, or -1 with errno EPROTO for a string without
// '=', too many keys or no terminating empty string.
int msg_parse(char *buf, size_t n, struct msg *m);

// msg_read_fd reads one whole message from a stream fd (a pipe or a file) into buf, up to its
// terminating empty string or EOF, and parses it: its length, or -1 with errno set.
long msg_read_fd(int fd, char *buf, size_t n, struct msg *m);

// msg_recv receives one message (SOCK_SEQPACKET: one recvmsg) into buf with up to maxfds file
// descriptors (close-on-exec) and parses it: its length, 0 at EOF, or -1 with errno set.
long msg_recv(int sock, char *buf, size_t n, struct msg *m, int *fds, int maxfds, int *nfds);

// msg_int and msg_u64 convert a value that must be a whole decimal (msg_u64: hex) number:
// 0, or -1 with errno EPROTO.
int msg_int(const char *val, int *out);
int msg_u64(const char *val, uint64_t *out);

// msg_bad is the end of every program for a key it does not know: errno EPROTO, -1.
int msg_bad(const struct msg_kv *kv);

#endif
