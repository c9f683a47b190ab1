package main

// #cgo CFLAGS: -Wall -O2 -I${SRCDIR}/../../prestart
// extern int vpsctl_start_fd;
// extern int vpsctl_exit_fd;
// extern int vpsctl_host_mntns;
import "C"

import "golang.org/x/sys/unix"

// startFD is the pipe to the parent that `vpsctl start` forked before the Go runtime started
// (frontdoor.c), or -1: this process is then that start's child and carries on as the VPS's
// monitor once it has written its exit code there.
func startFD() int { return int(C.vpsctl_start_fd) }

// hostMountNS is the caller's mount namespace, which a forked start opened before its child
// unshared its own (-1: none).
func hostMountNS() int { return int(C.vpsctl_host_mntns) }

// releaseCaller ends the command for its caller with exit code code, if the front door forked a
// parent that waits for it (frontdoor.c): stdin, stdout and stderr are let go first (a caller
// reading them sees their end now; nothing may be printed after this), then the code goes to
// the parent, which exits with it. The rest of this process's exit happens off the caller's
// clock. Without such a parent it does nothing.
func releaseCaller(code int) {
	fd := int(C.vpsctl_exit_fd)
	if fd < 0 {
		return
	}
	C.vpsctl_exit_fd = -1
	if null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		for std := 0; std <= 2; std++ {
			unix.Dup2(null, std)
		}
		unix.Close(null)
	}
	unix.Write(fd, []byte{byte(code)})
	unix.Close(fd)
}
