package runtime

// The parent/child protocols of a start. Two hidden modes of the vpsctl binary, chosen by the
// _VPSCTL_MODE environment variable in main before the CLI parses anything (see IsChild):
//
//	vpsctl start (CLI)                monitor (_VPSCTL_MODE=monitor)       init child (_VPSCTL_MODE=init)
//	spawn: setsid, CLONE_NEWNS,
//	fd 3 = write end of "ready" pipe
//	                                  cgroup, console pty
//	                                  clone: new namespaces, uid/gid maps,
//	                                  fd 3 = SEQPACKET socket ─────────>  blocks on the socket
//	                                  v1: put child in the cgroup
//	                                  rootfs: idmapped template + overlay,
//	                                  cloned into a detached mount fd
//	                                  network: veth into the child's netns
//	                                  initMsg + rootfs fd (SCM_RIGHTS) ──>  unshare cgroup ns, mount the root,
//	                                                                       /proc /sys /dev /run, pivot_root,
//	                                                                       hostname, capabilities, exec init
//	                                  <── childError (only on failure); EOF when exec succeeds
//	<── readyMsg (JSON) ──────────────  init PID or the error
//	exits; the monitor stays and waits for init
//
// Errors cross both pipes as typed structs, never as text to be matched.

const modeEnv = "_VPSCTL_MODE"

// initMsg is what the init child needs to build the VPS around itself.
type initMsg struct {
	ID         uint32   `json:"id"`
	Hostname   string   `json:"hostname"`
	Domainname string   `json:"domainname"`
	Namespaces []string `json:"namespaces"`
	Console    string   `json:"console"`  // host path of the console pty slave (/dev/pts/N)
	CapDrop    []int    `json:"cap_drop"` // capabilities to drop from the bounding set
	Init       []string `json:"init"`     // argv of the VPS's init
	Env        []string `json:"env"`
}

// childError is a failure of the init child before it could exec the VPS's init.
type childError struct {
	Stage string `json:"stage"`
	Errno int    `json:"errno"`
	Msg   string `json:"msg"`
}

// readyMsg is the monitor's answer to the CLI that spawned it.
type readyMsg struct {
	InitPID int    `json:"init_pid,omitempty"`
	Kind    string `json:"kind,omitempty"` // sentinel name for errors callers branch on
	Error   string `json:"error,omitempty"`
	// Warnings: host settings that keep the VPS from working fully (e.g. forwarding off).
	Warnings []string `json:"warnings,omitempty"`
}
