package monitor

import (
	"encoding/binary"

	"fmt"
	"strings"
	"syscall"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/prestart"
)

// The parent/child protocols of a start. The monitor is Go: `vpsctl start`'s child, forked by
// the CLI's front door before the Go runtime starts (StartHere), or a process spawned with the
// monitor's stage (prestart.StageEnv). The init child is C run before any Go runtime
// (prestart/initchild.c), cloned by the monitor's spawner (prestart/spawner.c), so a boot starts
// no second Go runtime:
//
//	vpsctl start (front door, C)      monitor (Go)                          init child (C)
//	fork: the child gets a session,
//	a mount namespace, a spawner
//	                                  console pty; the group's cgroup2 part
//	                                  (v2: the whole group)
//	                                  clone (the spawner): new namespaces,
//	                                  ID maps, CLONE_INTO_CGROUP,
//	                                  fd 3 = SEQPACKET socket ─────────>  blocks on the socket
//	                                  v1: the groups are made (meanwhile)
//	                                  rootfs: idmapped template + overlay,
//	                                  cloned into a detached mount fd
//	                                  initMsg + rootfs fd (SCM_RIGHTS) ──>  mount the root, /proc /sys /dev /run
//	                                  network: veth into the child's netns
//	                                  goAhead + v1 tasks fds ──────────>  write 0 to each (joins its groups),
//	                                                                       unshare cgroup ns, its cgroup view,
//	                                                                       pivot_root, hostname,
//	                                                                       capabilities, exec init
//	                                  <── initError (only on failure); EOF when exec succeeds
//	<── exit code ──────────────────  init PID or the error (Report)
//	exits; the monitor stays and waits for init
//
// Errors cross both pipes as typed structs, never as text to be matched.

const modeEnv = prestart.StageEnv

// initMsg is what the init child (nsenter/initchild.c) needs to build the VPS around itself. It
// crosses as NUL-terminated "key=value" strings ending with an empty one (see encode).
type initMsg struct {
	NSFlags    int // CLONE_NEW* flags of the VPS's namespaces
	Hostname   string
	Domainname string
	Console    string   // host path of the console pty slave (/dev/pts/N)
	CapDrop    uint64   // capabilities to drop from the bounding set
	Init       []string // argv of the VPS's init
	Env        []string
	Trace      bool // the init child prints trace marks (see internal/fault) to its stderr
	// Park: a spare VPS's (package spare): the child pivots into the root, reports initParked
	// and waits for a claimMsg before it goes on.
	Park bool
	// RunSize and ShmSize are the size= of its /run and /dev/shm tmpfs (bytes, or N%).
	RunSize, ShmSize string
	// Mounts are where the child attaches the detached mounts sent after the root's (see
	// guestMounts), in order, relative to the VPS's root.
	Mounts []string
	// Cgroups are the host's cgroup file systems, which the child mounts again in the VPS's
	// cgroup namespace: each crosses as "TYPE MOUNTPOINT OPTIONS".
	Cgroups []cgroup.FS
}

// goAhead is the monitor's go-ahead after the config, once the VPS's groups are made and its
// network is set up: the v1 groups' tasks files (cgroup.TaskFiles, opened here, as many as
// tasks= says) go with it as SCM_RIGHTS, and the init child moves itself into them (a move of
// its own thread takes no global lock), unshares its cgroup namespace and goes on.
func goAhead(tasks int) ([]byte, error) {
	return (&prestart.Msg{}).AddInt("tasks", tasks).Bytes()
}

// initParked is a parked init child's report: its root is built, it waits for its claim.
const initParked = "P"

// claimMsg is the second message to a parked init child: a claim's host name, domain name,
// argv and environment (the same keys as initMsg's), with its stdio as SCM_RIGHTS.
func claimMsg(hostname, domainname string, argv, env []string) ([]byte, error) {
	m := &prestart.Msg{}
	m.Add("hostname", hostname).Add("domainname", domainname).AddAll("arg", argv).AddAll("env", env)
	return m.Bytes()
}

func (m *initMsg) encode() ([]byte, error) {
	msg := &prestart.Msg{}
	msg.AddInt("ns", m.NSFlags).Add("hostname", m.Hostname).Add("domainname", m.Domainname)
	msg.Add("console", m.Console).AddHex("capdrop", m.CapDrop)
	if m.RunSize != "" {
		msg.Add("runsize", m.RunSize)
	}
	if m.ShmSize != "" {
		msg.Add("shmsize", m.ShmSize)
	}
	msg.AddAll("mount", m.Mounts)
	for _, fs := range m.Cgroups {
		if strings.ContainsAny(fs.Type+fs.Mount+fs.Options, " \n") {
			return nil, fmt.Errorf("cgroup file system %s on %q: a space in its name or options", fs.Type, fs.Mount)
		}
		msg.Add("cgroupfs", fs.Type+" "+fs.Mount+" "+fs.Options)
	}
	if m.Trace {
		msg.Add("trace", "1")
	}
	if m.Park {
		msg.Add("park", "1")
	}
	return msg.AddAll("arg", m.Init).AddAll("env", m.Env).Bytes()
}

// initError is a failure of the init child before it could exec the VPS's init: struct
// init_error of initchild.c, an errno and the step that failed.
type initError struct {
	Errno syscall.Errno
	Stage string
}

const initErrorSize = 256

func parseInitError(b []byte) (*initError, bool) {
	if len(b) != initErrorSize {
		return nil, false
	}
	stage, _, _ := strings.Cut(string(b[4:]), "\x00")
	return &initError{Errno: syscall.Errno(binary.NativeEndian.Uint32(b)), Stage: stage}, true
}

func (e *initError) Error() string {
	if e.Errno == 0 {
		return e.Stage
	}
	return e.Stage + ": " + e.Errno.Error()
}

func (e *initError) Unwrap() error { return e.Errno }

// Report is the monitor's answer to the CLI that spawned it.
type Report struct {
	InitPID int    `json:"init_pid,omitempty"`
	Kind    string `json:"kind,omitempty"` // sentinel name for errors callers branch on
	Error   string `json:"error,omitempty"`
	// Warnings: host settings that keep the VPS from working fully (e.g. forwarding off).
	Warnings []string `json:"warnings,omitempty"`
}

// Failure is the report's error for VPS id (nil if the boot succeeded), wrapping the sentinel
// it names so that callers and exit codes can branch on it.
func (m Report) Failure(id container.ID) error {
	return m.FailureOf(fmt.Sprintf("VPS %d", id))
}

// FailureOf is Failure with its subject named by the caller.
func (m Report) FailureOf(subject string) error {
	if m.Error == "" {
		return nil
	}
	if s, ok := startSentinels[m.Kind]; ok {
		msg := subject + ": " + m.Error
		if !strings.Contains(m.Error, s.Error()) {
			msg += ": " + s.Error() // said once, as %w would
		}
		return &reportedError{msg: msg, sentinel: s}
	}
	return fmt.Errorf("%s: %s", subject, m.Error)
}

// reportedError is an error that crossed a report as text, with the sentinel it wrapped.
type reportedError struct {
	msg      string
	sentinel error
}

func (e *reportedError) Error() string { return e.msg }
func (e *reportedError) Unwrap() error { return e.sentinel }

// ErrorReport is the report of err, its sentinel named for the reader's failure().
func ErrorReport(err error) Report { return Report{Kind: sentinelName(err), Error: err.Error()} }
