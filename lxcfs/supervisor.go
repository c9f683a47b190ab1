package lxcfs

import (
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/prestart"
	"golang.org/x/sys/unix"
)

// A process vpsctl started as the supervisor is that program whatever else the binary is.
func init() {
	if os.Getenv(prestart.StageEnv) == stageName {
		os.Unsetenv(prestart.StageEnv)
		os.Exit(supervise())
	}
}

// supervise keeps LXCFS (os.Args: [vpsctl-lxcfs LXCFS ROOT]) mounted at ROOT/lxcfs: it takes
// the lock (another supervisor of the root: exit), runs LXCFS in the foreground and, when it
// dies, detaches its dead mount and starts it again, waiting longer after each quick death (a
// fifth of a second, doubling to a minute). SIGTERM stops LXCFS and detaches the mount.
func supervise() int {
	log.SetFlags(log.LstdFlags)
	log.SetPrefix("lxcfs supervisor: ")
	if len(os.Args) != 3 {
		log.Printf("bad arguments %q", os.Args)
		return 2
	}
	bin, root := os.Args[1], os.Args[2]
	sysfile.WriteFile("/proc/self/comm", []byte("vpsctl-lxcfs"), os.O_WRONLY, 0)
	lk, err := sysfile.Open(lockPath(root), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		log.Print(err)
		return 1
	}
	if err := unix.Flock(lk, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return 0 // another supervisor of this root runs
	}
	// Out of its starter's group (a login session's scope would take it along at logout),
	// beside the monitors; LXCFS, its child, is born there.
	if err := cgroup.JoinSelf(container.ServiceGroup); err != nil {
		log.Printf("staying in the starter's cgroup: %v", err)
	}
	unix.Ftruncate(lk, 0)
	unix.Pwrite(lk, []byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	dir := ownMount(root)
	// A killed instance's mount (its supervisor killed too) answers ENOTCONN, which MkdirAll
	// takes for "not a directory": detach it first.
	unix.Unmount(dir, unix.MNT_DETACH)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Print(err)
		return 1
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	wait := restartWait
	for {
		os.Remove(boundPath(root))
		unix.Unmount(dir, unix.MNT_DETACH) // a dead instance's, if any
		// -l: load averages per VPS; --enable-cfs: CPU views from the CFS quota (--cpus,
		// --cpulimit); --enable-pidfd: no PID reuse in its per-process lookups.
		cmd := exec.Command(bin, "-f", "-l", "--enable-cfs", "--enable-pidfd", "-p", filepath.Join(root, "lxcfs.pid"), dir)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		started := time.Now()
		if err := cmd.Start(); err != nil {
			log.Printf("start %s: %v", bin, err)
			return 1
		}
		log.Printf("lxcfs (PID %d) serving %s", cmd.Process.Pid, dir)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Once it serves, the running VPSs' views are this instance's (a VPS that booted
		// while none ran, or whose views died with the last one, sees its own numbers again).
		live := time.NewTicker(10 * time.Millisecond)
		for i := 0; i < 500 && !Live(dir); i++ {
			<-live.C
		}
		live.Stop()
		if Live(dir) {
			refresh(root, dir)
			sysfile.WriteFile(boundPath(root), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		}
		select {
		case <-term:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			os.Remove(boundPath(root))
			refresh(root, "")
			unix.Unmount(dir, unix.MNT_DETACH)
			log.Printf("stopped")
			return 0
		case err := <-done:
			os.Remove(boundPath(root))
			log.Printf("lxcfs exited (%v); starting it again in %v", err, wait)
			refresh(root, "") // the host's numbers rather than errors until it is back
		}
		if time.Since(started) > time.Minute {
			wait = restartWait
		}
		select {
		case <-term:
			unix.Unmount(dir, unix.MNT_DETACH)
			return 0
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// refresh is Refresh, logged.
func refresh(root, dir string) {
	n, err := Refresh(root, dir)
	what := "bound to " + dir
	if dir == "" {
		what = "detached"
	}
	if err != nil {
		log.Printf("views of %d running VPSs %s; %v", n, what, err)
		return
	}
	log.Printf("views of %d running VPSs %s", n, what)
}

// restartWait is the supervisor's first wait before starting a dead LXCFS again (VPSs see the
// host's numbers meanwhile); it doubles while LXCFS keeps dying young.
const restartWait = 200 * time.Millisecond
