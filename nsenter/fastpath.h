// Shared by the C fast paths (fastexec.c, fastlife.c): readers of the store's files and of the
// host's groups that run before the Go runtime. They read what Go wrote (package store) and
// give up (a negative or zero result) on anything they do not expect, for the Go path to do
// the work.
#ifndef VPSCTL_FASTPATH_H
#define VPSCTL_FASTPATH_H
#include <stddef.h>

// vpsctl_read_file reads at most n-1 bytes of path into buf, NUL-terminated: their count, or -1.
int vpsctl_read_file(const char *path, char *buf, size_t n);

// vpsctl_json_num finds "key": NUMBER in a flat JSON object written by Go's encoding/json: the
// number, or -1.
long long vpsctl_json_num(const char *js, const char *key);

// vpsctl_conf_value copies the value of KEY="..." from vps.conf into out: 0, 1 if the key is
// missing (out empty), -1 if the value has an escape (not expected in the keys read).
int vpsctl_conf_value(const char *conf, const char *key, char *out, size_t n);

// vpsctl_proc_start returns process pid's start time (/proc/PID/stat field 22), its state in
// *state; 0 if there is no such process.
unsigned long long vpsctl_proc_start(int pid, char *state);

// vpsctl_plain_id: s is a VPS ID as container.ParseID takes it (1..4294967295, no leading zero),
// in its one spelling.
int vpsctl_plain_id(const char *s);

// vpsctl_fast_groups names VPS id's cgroup directories as package cgroup does
// (cgroup.New("vpsctl/ID")), for the calls below and the remover (fastlife.c): 0, or -1 if it
// cannot tell (the Go path then does the command).
int vpsctl_fast_groups(const char *id);

// vpsctl_fast_frozen: the VPS vpsctl_fast_groups named is frozen (suspended).
int vpsctl_fast_frozen(void);

// vpsctl_fast_join moves this process into the VPS's groups that exist: how many.
int vpsctl_fast_join(void);

// vpsctl_trace prints package fault's trace line for mark name ("vpsctl trace: PID NAME
// UNIX-MICROSECONDS") on standard error.
void vpsctl_trace(const char *name);

#endif
