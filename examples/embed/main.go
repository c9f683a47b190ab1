// Command embed is vpsctl used as a library: a program of its own that imports package runtime
// and creates, starts, execs into, stops and destroys a VPS, printing each step.
//
//	go build ./examples/embed && sudo ./embed [-root DIR] [-id N] [-template NAME]
//
// Without -root it works in a state root of its own, made for the run and removed afterwards,
// with a busybox template built from /bin/busybox (Debian's busybox-static). Nothing in it
// knows vpsctl's processes: runtime starts the VPS's monitor by executing this very program,
// whose imported packages turn it into the monitor (and the joiner, the spawner, the remover)
// when vpsctl's stage variable says so, and leave it alone otherwise.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/lxcfs"
	"github.com/vpsctl/vpsctl/runtime"
	"github.com/vpsctl/vpsctl/template"
)

func main() {
	root := flag.String("root", "", "state root (default: a temporary one, removed at the end)")
	id := flag.Uint("id", 4242, "the VPS's ID")
	tpl := flag.String("template", "busybox", "template (built from /bin/busybox if missing)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *root, container.ID(*id), *tpl); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, root string, id container.ID, tpl string) (err error) {
	if root == "" {
		dir, err := os.MkdirTemp("/var/tmp", "vpsctl-embed-")
		if err != nil {
			return err
		}
		defer func() {
			// A boot starts the state root's own LXCFS where the host runs none; it serves
			// the root until stopped, so a root made for the run stops it before it goes.
			if _, lerr := lxcfs.Stop(dir); lerr != nil {
				err = errors.Join(err, lerr)
			}
			err = errors.Join(err, os.RemoveAll(dir))
		}()
		root = dir
	}
	rt, err := runtime.Open(root)
	if err != nil {
		return err
	}
	if _, err := template.Rootfs(rt.St, tpl); err != nil {
		fmt.Printf("building template %s from /bin/busybox\n", tpl)
		if err := template.BuildBusybox(rt.St, tpl, "/bin/busybox", false, os.Stdout); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, rt.RemoveTemplate(ctx, tpl)) }()
	}

	if err := rt.Create(ctx, runtime.CreateOptions{ID: id, Template: tpl, Hostname: "embedded"}); err != nil {
		return err
	}
	fmt.Printf("created VPS %d\n", id)
	// Whatever fails from here on, the VPS goes again.
	defer func() {
		if err != nil {
			rt.Destroy(context.Background(), id, true)
		}
	}()
	pid, err := rt.Start(ctx, id, runtime.StartOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("started VPS %d (init is host PID %d)\n", id, pid)

	fmt.Printf("exec in VPS %d: hostname; id\n", id)
	code, err := rt.Exec(ctx, id, runtime.ExecOptions{Args: []string{"sh", "-c", "hostname; id"},
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("exec: exit status %d", code)
	}

	if err := rt.Stop(ctx, id, runtime.StopOptions{Timeout: 20 * time.Second}); err != nil {
		return err
	}
	fmt.Printf("stopped VPS %d\n", id)
	if err := rt.Destroy(ctx, id, false); err != nil {
		return err
	}
	fmt.Printf("destroyed VPS %d\n", id)
	return nil
}
