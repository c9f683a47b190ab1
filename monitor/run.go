package monitor

import (
	"os"
	"runtime"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

// RunHere boots VPS id once, in this process, with argv as its PID 1 on stdio (stdin, stdout,
// stderr), waits for it and returns its status: a run's boot (package runtime) needs no monitor
// process, as the command waits for the VPS anyway. The boot runs on an OS thread of its own that unshares its file-system context
// and mount namespace first, so the VPS's mounts are made where the host never sees them, and
// that is never reused (the goroutine ends locked, and Go then ends the thread). Every mount,
// chdir and the clone of the init happen on that thread; the rest of the command is untouched.
// spare, if set, makes the boot a spare VPS's (see monitor.spare): argv and stdio then come
// with the claim. keep, if set, marks a VPS destroyed next (run --rm): its overlay is mounted
// volatile, and keep gets its groups and mount namespace once its init has exited (see
// Leftovers), for the destroy's remover.
func RunHere(st *store.Store, id container.ID, argv []string, stdio []*os.File, keep func(Leftovers), spare func() *Claim) (int, error) {
	type result struct {
		code int
		msg  Report
	}
	// The process's mount namespace (its leader's), the host's, before the boot's thread
	// unshares one of its own.
	hostNS, err := sysfile.Open("/proc/thread-self/ns/mnt", os.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(hostNS)
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var res result
		defer func() { done <- res }()
		if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
			res.msg = Report{Error: "run: own mount namespace: " + os.NewSyscallError("unshare", err).Error()}
			return
		}
		m := &monitor{st: st, id: id, oneshot: argv, stdio: stdio, keep: keep, volatile: keep != nil,
			reportFn: func(msg Report) { res.msg = msg }, spare: spare, hostNS: hostNS, thread: true}
		res.code = m.runOnce()
	}()
	res := <-done
	if res.msg.Error != "" {
		return 0, res.msg.Failure(id)
	}
	return res.code, nil
}
