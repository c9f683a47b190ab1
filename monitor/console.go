package monitor

import (
	"log"
	"net"
	"os"
	"sync"
	"time"

	"github.com/vpsctl/vpsctl/internal/safetext"
	"github.com/vpsctl/vpsctl/internal/sysfile"
)

// maxConsoleLog bounds console.log: a chatty guest must not fill the host's disk. The C reaper
// (prestart/reaper.c), which pumps the console of a running VPS, is told it (logmax).
const maxConsoleLog = 4 << 20

// consoleHub is the Go monitor's side of a VPS's console: it holds the console socket and the
// attached `vpsctl console` clients (which it hands to the C reaper and takes back, see
// reaper.go), and, in a monitor that stays in Go, reads the console pty, appends everything to
// console.log, copies it to every client and feeds their keystrokes to the pty. Each boot
// brings a new pty.
type consoleHub struct {
	mu      sync.Mutex
	clients map[net.Conn]bool
	master  *os.File // the current boot's pty master; nil between boots
	ln      net.Listener
	// accepting is closed when the accept loop of ln has ended
	accepting chan struct{}
}

func newConsoleHub() *consoleHub { return &consoleHub{clients: map[net.Conn]bool{}} }

// listen opens the console socket (mode 0600: only host root may attach).
func (h *consoleHub) listen(path string) error {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	h.serveListener(ln)
	return nil
}

// serveListener accepts `vpsctl console` connections on ln.
func (h *consoleHub) serveListener(ln net.Listener) {
	h.ln = ln
	h.accepting = make(chan struct{})
	go func() {
		defer close(h.accepting)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.addClient(c)
		}
	}()
}

// addClient attaches a `vpsctl console` connection: it gets the console's output, and its
// keystrokes go to the pty.
func (h *consoleHub) addClient(c net.Conn) {
	h.mu.Lock()
	h.clients[c] = true
	h.mu.Unlock()
	go h.input(c)
}

// input copies a client's keystrokes to the current pty.
func (h *consoleHub) input(c net.Conn) {
	buf := make([]byte, 1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			h.mu.Lock()
			m := h.master
			h.mu.Unlock()
			if m != nil {
				m.Write(buf[:n])
			}
		}
		if err != nil {
			h.mu.Lock()
			delete(h.clients, c)
			h.mu.Unlock()
			c.Close()
			return
		}
	}
}

// serve pumps one boot's console until the pty closes (EIO once no VPS process holds it).
// A read error while the VPS runs is not the end: systemd hangs up the console (vhangup) when it
// takes it over, and the master reads EIO until the next open of the slave.
func (h *consoleHub) serve(master *os.File, logPath string, done chan<- struct{}, stop <-chan struct{}) {
	defer close(done)
	h.mu.Lock()
	h.master = master
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.master = nil
		h.mu.Unlock()
	}()
	f, err := sysfile.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		log.Printf("console log: %v", err)
		f = nil
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := master.Read(buf)
		if n > 0 {
			if f != nil {
				// As the C reaper writes it: escaped, rotated when full.
				out := safetext.EscapeLog(buf[:n])
				if fi, e := f.Stat(); e == nil && fi.Size()+int64(len(out)) > maxConsoleLog {
					if nf, err := rotate(logPath, f); err == nil {
						f = nf
					}
				}
				f.Write(out)
			}
			h.mu.Lock()
			for c := range h.clients {
				// A client that cannot keep up is dropped rather than stalling the VPS.
				c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write(buf[:n]); err != nil {
					c.Close()
					delete(h.clients, c)
				}
			}
			h.mu.Unlock()
		}
		if err != nil {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

func (h *consoleHub) close() {
	if h.ln != nil {
		h.ln.Close()
	}
	h.mu.Lock()
	for c := range h.clients {
		c.Close()
	}
	h.mu.Unlock()
}

// rotate moves the full log path (open as f) to path.1, replacing an older one, and returns the
// new, empty log, having closed f: a VPS's logs are bounded to twice their cap.
func rotate(path string, f *os.File) (*os.File, error) {
	if err := os.Rename(path, path+".1"); err != nil {
		return nil, err
	}
	nf, err := sysfile.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	return nf, nil
}
