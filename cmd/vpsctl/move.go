package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/runtime"
)

// Copying and moving VPSs: clone, backup (restore --from-backup is restore's), migrate.

func init() {
	extraCommandList = append(extraCommandList, cloneCommand, backupCommand, migrateCommand, migrateReceiveCommand, migrateAbortCommand)
}

func cloneCommand() *cli.Command {
	return &cli.Command{
		Name: "clone", Usage: "copy a VPS into a new, stopped one", ArgsUsage: "SRC DST",
		Description: `Makes VPS DST a copy of VPS SRC: its config (template, limits, namespaces) and its
files, with a UID range of its own (the files re-owned into it, ACLs and file
capabilities included), its own host name (--hostname, default vpsDST or --name) and
the addresses --ipadd gives (none otherwise: SRC keeps its own). A running SRC is frozen
while its files are copied and thawed after; it is otherwise untouched. DST is left
stopped. Files are copied as they are: SSH host keys and /etc/machine-id too.

EXAMPLES:
   vpsctl clone 601 602 --ipadd 198.18.0.62 && vpsctl start 602
   vpsctl clone web 603 --name web2 --hostname web2.example.com`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "the clone's `NAME`"},
			&cli.StringFlag{Name: "hostname", Usage: "the clone's host `NAME`"},
			&cli.StringSliceFlag{Name: "ipadd", Usage: "routed `ADDR[/PREFIX]` of the clone (repeatable)"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			out, err := outputOf(c)
			if err != nil {
				return err
			}
			if c.NArg() != 2 {
				return usageError("clone: usage: vpsctl clone SRC DST")
			}
			dst, err := container.ParseID(c.Args().Get(1))
			if err != nil {
				return err
			}
			return withVPS(c, func(rt *runtime.Runtime, src container.ID) error {
				progress := out.progress()
				res, err := rt.Clone(c.Context, src, dst, runtime.CloneOptions{Name: c.String("name"),
					Hostname: c.String("hostname"), IPs: c.StringSlice("ipadd"), Progress: progress})
				if err != nil {
					return err
				}
				return out.result(res, func() { fmt.Printf("VPS %d cloned to %d (stopped)\n", src, dst) })
			})
		},
	}
}

func backupCommand() *cli.Command {
	return &cli.Command{
		Name: "backup", Usage: "write a VPS (stopped or running) into one archive", ArgsUsage: "ID|NAME FILE",
		Description: `Writes VPS ID into archive FILE: its config, its files and, with --with-memory (a
running VPS), a checkpoint of its processes. A running VPS is frozen while its files are
copied (after the checkpoint, which leaves it running), so files and processes match;
it runs on after. The archive is a tar stream compressed with zstd (when the zstd
program is installed) or gzip, and ends with a manifest of checksums: restore
--from-backup refuses one that is truncated or changed. On a terminal the archive's
size and the rate are shown as it is written. FILE appears only once it is complete.

EXAMPLES:
   vpsctl backup 601 601.tar.zst --with-memory
   vpsctl destroy -f 601 && vpsctl restore 601 --from-backup 601.tar.zst
   vpsctl restore 611 --from-backup 601.tar.zst     # as another VPS`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "with-memory", Usage: "checkpoint a running VPS's processes into the archive too"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			out, err := outputOf(c)
			if err != nil {
				return err
			}
			if c.NArg() != 2 {
				return usageError("backup: usage: vpsctl backup ID FILE")
			}
			return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
				progress := out.progress()
				res, err := rt.Backup(c.Context, id, c.Args().Get(1), runtime.BackupOptions{WithMemory: c.Bool("with-memory"),
					Progress: progress, Meter: os.Stderr})
				if err != nil {
					return err
				}
				return out.result(res, func() {
					fmt.Printf("VPS %d backed up to %s (%.1f MiB, %s, %.2f s)\n", id, res.File, float64(res.Bytes)/(1<<20), res.Compression, res.Seconds)
				})
			})
		},
	}
}

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name: "migrate", Usage: "move a VPS to another host (or state root)", ArgsUsage: "ID|NAME DEST",
		Description: `Moves VPS ID to DEST, ssh://[user@]host[:port] (which runs vpsctl: --dest-vpsctl
names the program there, default vpsctl on its PATH) or local (this host, another
state root: --dest-root). --dest-root picks the state root there. ssh is the system's:
keys, agents and known hosts work as for any ssh command (--ssh-opt passes -o options).

A stopped VPS moves offline. A running one is copied while it runs, then checkpointed
(its TCP connections too), what changed since and its memory copied, and restored
there: processes, addresses and connections go on; the downtime (frozen here to running
there) is printed. DEST gets the VPS's template if it lacks it, the VPS's UID range if
that is free there (else a free one, files re-owned), and checks the addresses before
the VPS stops here. On success the VPS is gone here. On failure it is here (running
again if it ran), and the message says so; exit 216 means DEST was told to run it and
did not answer: the message says where its checkpoint is and what to check.

EXAMPLES:
   vpsctl migrate 601 ssh://root@hostb.example.com
   vpsctl migrate 601 ssh://root@127.0.0.1:2222 --dest-root /srv/hostb
   vpsctl migrate 601 local --dest-root /srv/other`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dest-root", Usage: "state root `DIR` at the destination"},
			&cli.StringFlag{Name: "dest-vpsctl", Usage: "vpsctl `PROGRAM` at the destination"},
			&cli.StringSliceFlag{Name: "ssh-opt", Usage: "ssh `OPTION` (as ssh -o; repeatable)"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			out, err := outputOf(c)
			if err != nil {
				return err
			}
			if c.NArg() != 2 {
				return usageError("migrate: usage: vpsctl migrate ID DEST")
			}
			dest, err := runtime.ParseDest(c.Args().Get(1))
			if err != nil {
				return err
			}
			if dest.Local && c.String("dest-root") == "" {
				return usageError("migrate: a local destination needs --dest-root")
			}
			return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
				progress := out.progress()
				res, err := rt.Migrate(c.Context, id, runtime.MigrateOptions{Dest: dest, DestRoot: c.String("dest-root"),
					DestVPSCTL: c.String("dest-vpsctl"), SSHOptions: c.StringSlice("ssh-opt"), Progress: progress, Meter: os.Stderr})
				if err != nil {
					return err
				}
				return out.result(res, func() {
					if res.Live {
						fmt.Printf("VPS %d migrated to %s: running there (init PID %d), gone here; downtime %.2f s (dump %.2f s, copy %.2f s, restore %.2f s)\n",
							id, dest, res.InitPID, res.Downtime, res.DumpSeconds, res.CopySeconds, res.RestoreSeconds)
					} else {
						fmt.Printf("VPS %d migrated to %s (stopped), gone here\n", id, dest)
					}
				})
			})
		},
	}
}

// migrateReceiveCommand is the destination's side of migrate, which runs it (hidden).
func migrateReceiveCommand() *cli.Command {
	return &cli.Command{
		Name: "migrate-receive", Hidden: true, Usage: "the destination's side of vpsctl migrate (speaks its protocol on stdin and stdout)",
		Action: func(c *cli.Context) error {
			rt, err := openRuntime(c)
			if err != nil {
				return err
			}
			return rt.MigrateReceive(c.Context, os.Stdin, os.Stdout)
		},
	}
}

// migrateAbortCommand removes an incomplete VPS quietly: what a migration's source runs at a
// destination that died before it undid its copy (hidden).
func migrateAbortCommand() *cli.Command {
	return &cli.Command{
		Name: "migrate-abort", Hidden: true, Usage: "remove a VPS whose migration here was cut off (vpsctl migrate runs it)", ArgsUsage: "ID",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError("migrate-abort: usage: vpsctl migrate-abort ID")
			}
			id, err := container.ParseID(c.Args().First())
			if err != nil {
				return err
			}
			rt, err := openRuntime(c)
			if err != nil {
				return err
			}
			return rt.AbortIncoming(c.Context, id)
		},
	}
}
