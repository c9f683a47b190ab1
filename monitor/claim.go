package monitor

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
)

// The claim protocol (cmd/vpsctl/frontdoor.c, spare_claim): a claim is a message (prestart.Msg)
// with keys hostname and arg (repeated), and the caller's stdin, stdout and stderr as
// SCM_RIGHTS; each answer is two native int32s, a kind and a code.
const (
	ClaimStarted  = 1 // the command runs as the VPS's PID 1
	ClaimExited   = 2 // with the status in code
	ClaimFallback = 3 // not served: nothing ran; the caller runs the command itself
)

// ErrUnclaimed: a spare boot's keeper stops before a claim came.
var ErrUnclaimed = errors.New("spare not claimed: the keeper stops")

// Claim is one `vpsctl run` served by a spare VPS (package spare): its command, host name and
// stdio, and the connection its answers go to.
type Claim struct {
	Args     []string
	Hostname string
	Stdio    []*os.File
	Conn     *net.UnixConn
	// Term gets a signal when the caller forwards one or goes away: the VPS's init is killed.
	Term chan os.Signal
	once sync.Once
	// Ended, if set, runs at close: the command has exited (or never ran).
	Ended func()
}

// Reply answers the claim's caller: kind (ClaimStarted, ClaimExited, ClaimFallback) and code.
func (cl *Claim) Reply(kind, code int) {
	var b [8]byte
	binary.NativeEndian.PutUint32(b[0:], uint32(kind))
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(code)))
	cl.Conn.Write(b[:])
}

// CloseStdio closes this process's copies of the caller's stdio.
func (cl *Claim) CloseStdio() {
	for _, f := range cl.Stdio {
		f.Close()
	}
	cl.Stdio = nil
}

// Close ends the claim (once): its stdio and connection closed, Ended run.
func (cl *Claim) Close() {
	cl.once.Do(func() {
		cl.CloseStdio()
		cl.Conn.Close()
		if cl.Ended != nil {
			cl.Ended()
		}
	})
}

// Watch turns anything the caller sends after its claim, or its going away, into a
// termination of the claim's VPS.
func (cl *Claim) Watch() {
	var b [64]byte
	cl.Conn.Read(b[:])
	select {
	case cl.Term <- syscall.SIGKILL:
	default:
	}
}
