package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/runtime"
)

func init() {
	extraCommandList = append(extraCommandList, checkpointCommand, restoreCommand)
}

func checkpointCommand() *cli.Command {
	return &cli.Command{
		Name: "checkpoint", Aliases: []string{"chkpnt"}, Usage: "dump a running VPS to disk with CRIU (and stop it)", ArgsUsage: "ID|NAME",
		Description: `Dumps every process of the VPS, its namespaces, cgroup limits and console into DIR
(default STATE/vps/ID/checkpoint), then stops it unless --leave-running. Addresses and
routes come back from the VPS's config on restore; established TCP connections with
--tcp-established. --check reports, without dumping, the CRIU version found and
everything that would block a dump of this VPS (nested namespaces with the process and
unit holding them, files CRIU cannot dump, connected TCP sockets without
--tcp-established), and exits 213 if there is anything. A checkpoint refuses such a VPS
with the same list and code; when CRIU itself fails, its first error lines are printed
and its log kept at the path printed. CRIU >= 4.2 is needed: scripts/install-criu.sh.

EXAMPLES:
   vpsctl checkpoint --check 101
   vpsctl checkpoint 101 && vpsctl restore 101
   vpsctl checkpoint --tcp-established 101 && vpsctl restore 101
   vpsctl checkpoint --leave-running --dir /backup/101 101`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "check", Usage: "pre-flight only: report blockers, dump nothing"},
			&cli.StringFlag{Name: "dir", Usage: "image directory"},
			&cli.BoolFlag{Name: "leave-running", Usage: "keep the VPS running after the dump"},
			&cli.BoolFlag{Name: "tcp-established", Usage: "dump established TCP connections (restore brings them back)"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			out, err := outputOf(c)
			if err != nil {
				return err
			}
			return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
				if c.Bool("check") {
					rep, err := rt.CheckpointCheck(id, c.Bool("tcp-established"))
					if err != nil {
						return err
					}
					if out.json {
						err = printJSON(os.Stdout, rep)
					} else {
						printCheck(rep)
					}
					if err == nil && !rep.Running {
						return fmt.Errorf("VPS %d: %w", id, runtime.ErrNotRunning) // as checkpoint's own answer
					}
					if err == nil && len(rep.Blockers) > 0 {
						return cli.Exit(fmt.Sprintf("VPS %d: %v: %d blocker(s) listed", id, runtime.ErrCheckpointBlocked, len(rep.Blockers)), exitBlocked)
					}
					return err
				}
				progress := out.progress()
				res, err := rt.Checkpoint(c.Context, id, runtime.CheckpointOptions{Dir: c.String("dir"),
					LeaveRunning: c.Bool("leave-running"), TCPEstablished: c.Bool("tcp-established"), Progress: progress})
				if err != nil {
					return err
				}
				return out.result(res, func() {
					state := "stopped"
					if res.LeftRunning {
						state = "still running"
					}
					fmt.Printf("VPS %d checkpointed to %s (%s)\n", id, res.Dir, state)
				})
			})
		},
	}
}

func printCheck(r *runtime.CheckpointReport) {
	fmt.Printf("criu: %s (version %s)\n", dash(r.CRIU), dash(r.Version))
	fmt.Printf("hardware breakpoints: %v%s\n", r.BreakpointsWork, map[bool]string{false: " (vpsctl works around it: CRIU_FAULT=130)", true: ""}[r.BreakpointsWork])
	fmt.Printf("soft-dirty tracking (pre-copy migration): %v\n", r.SoftDirty)
	if len(r.Blockers) == 0 {
		fmt.Println("blockers: none")
	} else {
		fmt.Println("blockers:\n  - " + strings.Join(r.Blockers, "\n  - "))
	}
	for _, n := range r.Notes {
		fmt.Println("note: " + n)
	}
}

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name: "restore", Usage: "bring a checkpointed VPS back", ArgsUsage: "ID|NAME",
		Description: `Restores the VPS from DIR (default STATE/vps/ID/checkpoint): same ID, VPS PIDs, hostname,
UID map, limits, addresses and (if dumped) TCP connections. The VPS must exist and be stopped.

With --from-backup FILE (an archive of vpsctl backup) the VPS ID must not exist: the
archive is checked whole first (a truncated or changed one is refused, exit 214, before
anything is made), then VPS ID (the archive's or another) is recreated with the
archive's UID range if it is free here, else a free one (files re-owned), its addresses
checked, and it is restored with its processes (a backup --with-memory; TCP connections
come back closed) or started if it was running when backed up.

EXAMPLES:
   vpsctl restore 101
   vpsctl restore 101 --dir /backup/101 --format json
   vpsctl restore 101 --from-backup 101.tar.zst`,
		Flags: []cli.Flag{&cli.StringFlag{Name: "dir", Usage: "image directory"},
			&cli.StringFlag{Name: "from-backup", Usage: "recreate the VPS from backup archive `FILE`"}, formatFlag()},
		Action: func(c *cli.Context) error {
			out, err := outputOf(c)
			if err != nil {
				return err
			}
			if f := c.String("from-backup"); f != "" {
				return restoreBackup(c, f, out)
			}
			return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
				progress := out.progress()
				res, err := rt.Restore(c.Context, id, runtime.RestoreOptions{Dir: c.String("dir"), Progress: progress})
				if err != nil {
					return err
				}
				return out.result(res, func() { fmt.Printf("VPS %d restored (init PID %d)\n", id, res.InitPID) })
			})
		},
	}
}

// restoreBackup is `restore ID --from-backup FILE`: ID need not (and must not) exist.
func restoreBackup(c *cli.Context, file string, out output) error {
	if c.NArg() != 1 || c.String("dir") != "" {
		return usageError("restore: usage: vpsctl restore ID --from-backup FILE")
	}
	id, err := container.ParseID(c.Args().First())
	if err != nil {
		return err
	}
	rt, err := openRuntime(c)
	if err != nil {
		return err
	}
	res, err := rt.RestoreBackup(c.Context, id, file, out.progress(), os.Stderr)
	if err != nil {
		return err
	}
	return out.result(res, func() {
		state := "stopped"
		if res.Running {
			state = fmt.Sprintf("running, init PID %d", res.InitPID)
		}
		fmt.Printf("VPS %d restored from %s (%s)\n", id, file, state)
	})
}
