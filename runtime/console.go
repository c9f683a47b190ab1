package runtime

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/vpsctl/vpsctl/container"
	"golang.org/x/term"
)

// ConsoleEscape is the byte that detaches `vpsctl console`: Ctrl-] (as in telnet).
const ConsoleEscape = 0x1d

// Console attaches the terminal to VPS id's console (its getty or boot messages) until the user
// types Ctrl-] or the VPS stops.
func (r *Runtime) Console(id container.ID, in *os.File, out io.Writer) error {
	if _, err := r.running(id, true); err != nil {
		return err
	}
	c, err := net.Dial("unix", r.St.Path(id, "console.sock"))
	if err != nil {
		return fmt.Errorf("VPS %d: console: %w", id, err)
	}
	defer c.Close()
	if term.IsTerminal(int(in.Fd())) {
		st, err := term.MakeRaw(int(in.Fd()))
		if err == nil {
			defer term.Restore(int(in.Fd()), st)
		}
	}
	fmt.Fprintf(out, "Connected to the console of VPS %d. Detach with Ctrl-] (press Enter for a login prompt).\r\n", id)
	done := make(chan error, 2)
	go func() {
		_, err := io.Copy(out, c)
		done <- err
	}()
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := in.Read(buf)
			for i := 0; i < n; i++ {
				if buf[i] == ConsoleEscape {
					c.Write(buf[:i])
					done <- errDetached
					return
				}
			}
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					done <- werr
					return
				}
			}
			if err != nil {
				done <- nil // end of input: stay attached until the console closes
				return
			}
		}
	}()
	err = <-done
	if errors.Is(err, errDetached) {
		fmt.Fprintf(out, "\r\nDetached from VPS %d.\r\n", id)
		return nil
	}
	if err == nil {
		// stdin ended: keep showing output until the VPS's console closes.
		if e := <-done; e != nil && !errors.Is(e, errDetached) {
			return nil
		}
	}
	return nil
}

var errDetached = errors.New("detached")
