/*
 * probe: installs vpsctl's seccomp filter with the installer of the generated header, exactly
 * as the init child and the joiner are to, then makes the system calls it is told to and
 * prints what each returned. Built and run by install_test.go.
 *
 *   probe MODE OP...
 *   MODE  plain        make the calls without a filter (the baseline)
 *         filter       install, then make the calls
 *         filter-exec  install, then execve(2) itself as "after" with the same calls
 *         after        print the Seccomp lines of /proc/self/status, then make the calls,
 *                      then make them again in a forked child
 *         nocap        setresuid(1): no capabilities left; try to install (must fail),
 *                      set no_new_privs, try again (must work)
 *   OP    ABI:NR:A0:...:A5 with ABI 64 (syscall(2)), 32 (int $0x80) or x32 (NR | 0x40000000);
 *         an argument is a number, or E for a pointer to an empty string
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vpsctl_seccomp.h" // in seccomp.HeaderDir (-I)

static char empty[1];

static long arg(const char *s)
{
	if (strcmp(s, "E") == 0)
		return (long)(uintptr_t)empty;
	return (long)strtoull(s, NULL, 0);
}

static void call(const char *op)
{
	char buf[256], *f[8] = {0}, *save = NULL;
	long a[6] = {0}, ret;
	int n = 0, err = 0;

	snprintf(buf, sizeof(buf), "%s", op);
	for (char *t = strtok_r(buf, ":", &save); t && n < 8; t = strtok_r(NULL, ":", &save))
		f[n++] = t;
	if (n < 2) {
		printf("op=%s bad\n", op);
		return;
	}
	for (int i = 2; i < n; i++)
		a[i - 2] = arg(f[i]);
	long nr = strtol(f[1], NULL, 0);
	if (strcmp(f[0], "32") == 0) {
		/* The i386 ABI from a 64-bit process: seccomp sees AUDIT_ARCH_I386. */
		int eax = (int)nr;
		__asm__ volatile("push %%rbp\n\tmov %[a5], %%ebp\n\tint $0x80\n\tpop %%rbp"
				 : "+a"(eax)
				 : "b"((int)a[0]), "c"((int)a[1]), "d"((int)a[2]), "S"((int)a[3]),
				   "D"((int)a[4]), [a5] "r"((int)a[5])
				 : "memory", "cc", "r8", "r9", "r10", "r11");
		ret = eax;
		if (ret < 0 && ret > -4096) {
			err = (int)-ret;
			ret = -1;
		}
	} else {
		if (strcmp(f[0], "x32") == 0)
			nr |= 0x40000000;
		errno = 0;
		ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		err = ret == -1 ? errno : 0;
	}
	printf("op=%s ret=%ld errno=%d\n", op, ret, err);
}

static void calls(int argc, char **argv)
{
	for (int i = 2; i < argc; i++)
		call(argv[i]);
	fflush(stdout);
}

static void status(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	if (!f) {
		perror("status");
		exit(2);
	}
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "Seccomp", 7) == 0 || strncmp(line, "NoNewPrivs", 10) == 0)
			printf("status %s", line);
	fclose(f);
}

static void install(void)
{
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	int r = vpsctl_seccomp_install_default();
	int e = errno;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("install=%d errno=%d ns=%ld\n", r, r ? e : 0,
	       (long)((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec)));
	fflush(stdout);
	if (r)
		exit(3);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *mode = argv[1];
	if (strcmp(mode, "plain") == 0) {
		calls(argc, argv);
	} else if (strcmp(mode, "filter") == 0) {
		install();
		calls(argc, argv);
	} else if (strcmp(mode, "filter-exec") == 0) {
		install();
		argv[1] = "after";
		execv("/proc/self/exe", argv);
		perror("execv");
		return 4;
	} else if (strcmp(mode, "after") == 0) {
		status();
		calls(argc, argv);
		pid_t pid = fork();
		if (pid == 0) {
			printf("child\n");
			calls(argc, argv);
			_exit(0);
		}
		int st;
		waitpid(pid, &st, 0);
	} else if (strcmp(mode, "nocap") == 0) {
		if (setresuid(1, 1, 1)) {
			perror("setresuid");
			return 5;
		}
		int r = vpsctl_seccomp_install_default();
		printf("install-nocap=%d errno=%d\n", r, r ? errno : 0);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
			perror("prctl");
			return 6;
		}
		r = vpsctl_seccomp_install_default();
		printf("install-nnp=%d errno=%d\n", r, r ? errno : 0);
		status();
		calls(argc, argv);
	} else {
		return 2;
	}
	return 0;
}
