// Package proc identifies and waits for host processes: a (PID, start time) pair names one
// process for good (a recycled PID has another start time), pidfds wait without races, and a
// process's mount namespace can be held open past its death, and joined by one thread.
package proc

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// procStart returns the start time of pid in clock ticks since boot (/proc/PID/stat field 22),
// or 0 if pid does not exist. A recorded (pid, start) pair identifies one process for good:
// a recycled PID has another start time.
func Start(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	b, err := sysfile.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	return parseStatStart(b)
}

// parseStatStart extracts field 22 of /proc/PID/stat. The command name (field 2) may contain
// spaces and parentheses, so fields are counted after the last ')'.
func parseStatStart(b []byte) uint64 {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	// After ')': field 3 (state) is f[0], so field 22 is f[19].
	if len(f) < 20 {
		return 0
	}
	v, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// alive reports whether the process recorded as (pid, start) still runs (zombies count as dead).
// /proc/PID/stat shows the state of the thread-group leader only: a leader that is a zombie
// while other threads of its process still run is a live process. That is also what a
// multithreaded process looks like for an instant while a thread other than its leader execs
// (the kernel kills the others, the leader included, then gives the exec'ing thread the
// leader's PID): a Go monitor exec'ing into the C reaper must not look dead meanwhile.
func Alive(pid int, start uint64) bool {
	if pid <= 0 || start == 0 {
		return false
	}
	dir := "/proc/" + strconv.Itoa(pid)
	b, err := sysfile.ReadFile(dir + "/stat")
	if err != nil {
		return false
	}
	if parseStatStart(b) != start {
		return false
	}
	if !exited(b) || Threads(dir) > 1 {
		return true
	}
	// The exec may have ended between the two reads: the PID is then the exec'ing thread's,
	// alive, with the leader's start time (and a single thread).
	b, err = sysfile.ReadFile(dir + "/stat")
	return err == nil && parseStatStart(b) == start && !exited(b)
}

// exited reports whether /proc/PID/stat's b is a zombie's or a dead task's.
func exited(b []byte) bool {
	i := bytes.LastIndexByte(b, ')')
	return i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// threadsOf is the Threads: count of /proc/PID/status (dir is /proc/PID), 0 if unknown.
func Threads(dir string) int {
	b, err := sysfile.ReadFile(dir + "/status")
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(b, []byte("\nThreads:"))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	n, _ := strconv.Atoi(string(bytes.TrimSpace(line)))
	return n
}

// WaitPidfd waits, at most timeout and until ctx is done, for the process behind pidfd to exit,
// and reports whether it did. ctx wakes the wait through an eventfd polled beside the pidfd.
func WaitPidfd(ctx context.Context, pidfd int, timeout time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if ctx.Done() != nil {
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err == nil {
			defer unix.Close(efd)
			stop := context.AfterFunc(ctx, func() { unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0}) })
			defer stop()
			fds = append(fds, unix.PollFd{Fd: int32(efd), Events: unix.POLLIN})
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left < 0 {
			left = 0
		}
		n, err := unix.Poll(fds, int(left.Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0 && fds[0].Revents != 0
	}
}

// HoldMountNS opens the mount namespace of the process pidfd refers to (PID pid), or returns
// -1. The /proc path is checked against the pidfd afterwards: if the process was still alive
// then, the PID was still its own when the namespace was opened.
func HoldMountNS(pidfd, pid int) int {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	if unix.PidfdSendSignal(pidfd, 0, nil, 0) != nil {
		unix.Close(fd)
		return -1
	}
	return fd
}

// ReleaseMountNS closes fd (if >= 0) on a thread of its own: the close of a namespace's last
// reference unmounts everything in it. The channel is closed when that is done.
func ReleaseMountNS(fd int) <-chan struct{} {
	done := make(chan struct{})
	if fd < 0 {
		close(done)
		return done
	}
	go func() {
		unix.Close(fd)
		close(done)
	}()
	return done
}

// InMountNS runs f on a thread of its own that has joined the mount namespace nsfd (an open
// /proc/PID/ns/mnt): paths in f are that namespace's, from its root. The thread never returns
// to the Go scheduler (it leaves the process's file system context): it exits with f, unless
// it is the main thread, which Go keeps, parked, in that namespace. So the process's own mount
// namespace is /proc/thread-self/ns/mnt (any other thread's), never /proc/self/ns/mnt (the
// main thread's).
func InMountNS(nsfd int, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- os.NewSyscallError("unshare", err)
			return
		}
		if err := unix.Setns(nsfd, unix.CLONE_NEWNS); err != nil {
			done <- os.NewSyscallError("setns", err)
			return
		}
		done <- f()
	}()
	return <-done
}
