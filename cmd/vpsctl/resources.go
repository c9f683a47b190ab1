package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/runtime"
)

func init() {
	extraCommandList = append(extraCommandList, statsCommand, suspendCommand, resumeCommand)
}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name: "stats", Usage: "resource usage and beancounters of a running VPS", ArgsUsage: "ID|NAME",
		Description: "Beancounters as OpenVZ's /proc/user_beancounters: resource held maxheld barrier limit failcnt.\nnumproc: processes and threads; physpages, swappages: 4 KiB pages; cpu: held in ns, limit in % of one CPU,\nfailcnt = periods throttled. failcnt counts refusals (forks refused, memory limit hits).\n\nEXAMPLE:\n   vpsctl stats 101 --format json",
		Flags:       []cli.Flag{formatFlag()},
		Action: func(c *cli.Context) error {
			asJSON, err := checkFormat(c)
			if err != nil {
				return err
			}
			return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
				st, err := rt.Stats(id)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(os.Stdout, st)
				}
				memMax := "unlimited"
				if st.MemoryMax != runtime.Unlimited {
					memMax = fmt.Sprintf("%d KiB", st.MemoryMax/1024)
				}
				fmt.Printf("VPS %d: cpu %.3fs, memory %d KiB (max %s), swap %d KiB, %d processes\n", id,
					float64(st.CPUUsageNs)/1e9, st.MemoryBytes>>10, memMax, st.SwapBytes>>10, st.Processes)
				if d := st.Disk; d != nil {
					fmt.Printf("disk: %d KiB used of %d KiB (soft %d KiB), %d KiB free\n", d.UsedBytes>>10, d.SizeBytes>>10, d.SoftBytes>>10, d.AvailBytes>>10)
				}
				w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
				fmt.Fprintln(w, "resource\theld\tmaxheld\tbarrier\tlimit\tfailcnt\t")
				for _, name := range st.Order {
					b := st.Beancounters[name]
					fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%d\t\n", name, b.Held, b.MaxHeld, b.Barrier, b.Limit, b.Failcnt)
				}
				return w.Flush()
			})
		},
	}
}

func suspendCommand() *cli.Command {
	return &cli.Command{
		Name: "suspend", Usage: "freeze every process of a VPS (or, --to-disk, checkpoint and stop it)", ArgsUsage: "ID|NAME",
		Description: "Freezes the VPS's cgroup and waits until every process is frozen. status then says\n\"VPS ID exist running suspended\". vpsctl resume thaws it.\n--to-disk: checkpoint the VPS with CRIU and stop it (vzctl chkpnt); vpsctl resume restores it.\n\nEXAMPLES:\n   vpsctl suspend 101 && vpsctl resume 101\n   vpsctl suspend --to-disk 101 && vpsctl resume 101",
		Flags:       []cli.Flag{&cli.BoolFlag{Name: "to-disk", Usage: "checkpoint to disk and stop (resume restores)"}},
		Action: func(c *cli.Context) error {
			return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
				if c.Bool("to-disk") {
					if err := rt.SuspendToDisk(c.Context, id, os.Stdout); err != nil {
						return err
					}
					fmt.Printf("VPS %d suspended to disk\n", id)
					return nil
				}
				if err := rt.Suspend(c.Context, id); err != nil {
					return err
				}
				fmt.Printf("VPS %d suspended\n", id)
				return nil
			})
		},
	}
}

func resumeCommand() *cli.Command {
	return &cli.Command{
		Name: "resume", Usage: "thaw a suspended VPS", ArgsUsage: "ID|NAME",
		Description: `Thaws a VPS suspend froze, or restores one suspend --to-disk checkpointed and stopped.

EXAMPLE:
   vpsctl suspend 101 && vpsctl resume 101`,
		Action: func(c *cli.Context) error {
			return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
				if err := rt.Resume(c.Context, id); err != nil {
					return err
				}
				fmt.Printf("VPS %d resumed\n", id)
				return nil
			})
		},
	}
}

func init() {
	extraCommandList = append(extraCommandList, consoleCommand)
}

func consoleCommand() *cli.Command {
	return &cli.Command{
		Name: "console", Usage: "attach to a VPS's console (detach with Ctrl-])", ArgsUsage: "ID|NAME",
		Description: "Shows the VPS's console (boot messages, its getty) and sends your keystrokes to it.\nDetach with Ctrl-] ; the VPS keeps running. Everything the console prints is also in\nSTATE/vps/ID/console.log.\n\nEXAMPLE:\n   vpsctl console 101",
		Action: func(c *cli.Context) error {
			return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
				return rt.Console(id, os.Stdin, os.Stdout)
			})
		},
	}
}
