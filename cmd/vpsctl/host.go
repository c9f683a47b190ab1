package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/hostconf"
	"github.com/vpsctl/vpsctl/metrics"
)

// Running a host (docs/OPERATIONS.md): the host configuration, the events log, metrics.

func init() {
	extraCommandList = append(extraCommandList, configCommand, eventsCommand, metricsCommand)
}

func configCommand() *cli.Command {
	return &cli.Command{
		Name: "config", Usage: "the host configuration (" + hostconf.DefaultPath + ")",
		Subcommands: []*cli.Command{{
			Name: "show", Usage: "print every effective setting and where it came from",
			Description: `One KEY="value" line per setting, as the file spells it, and its source: default, the
file and line, env VPSCTL_ROOT or VPSCTL_CLUSTER, flag --root. --plan shows the limits a create with that plan
and no limit flags gets. The file is ` + hostconf.DefaultPath + ` ($` + hostconf.PathEnv + ` names another).

EXAMPLES:
   vpsctl config show
   vpsctl config show --plan small --format json`,
			Flags: []cli.Flag{&cli.StringFlag{Name: "plan", Usage: "show the limits of plan `NAME`"}, formatFlag()},
			Action: func(c *cli.Context) error {
				asJSON, err := checkFormat(c)
				if err != nil {
					return err
				}
				if c.NArg() > 0 {
					return usageError("config show: no arguments")
				}
				settings := hostCfg.Settings()
				if c.IsSet("plan") {
					p, err := hostCfg.Plan(c.String("plan"))
					if err != nil {
						return err
					}
					limits := map[string]hostconf.Setting{}
					for _, s := range hostCfg.LimitSettings(p) {
						limits[s.Key] = s
					}
					for i, s := range settings {
						if l, ok := limits[s.Key]; ok {
							settings[i] = l
						}
					}
				}
				if asJSON {
					return printJSON(os.Stdout, settings)
				}
				return hostconf.Show(os.Stdout, settings)
			},
		}},
	}
}

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name: "events", Usage: "what happened to the VPSs (STATE/events.log)",
		Description: `One line per event: created, started, stopped, rebooted, oom-kill, failcnt, set, ...
(docs/OPERATIONS.md lists them and who logs each). --since T: a duration back from now (10m,
2h, 7d) or a time (2026-01-02, 2026-01-02T15:04:05Z). --follow waits for new events until
interrupted. --format json prints the lines as logged.

EXAMPLES:
   vpsctl events --since 1h
   vpsctl events --follow --format json`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "since", Usage: "only events from `T` on"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "wait for new events"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			asJSON, err := checkFormat(c)
			if err != nil {
				return err
			}
			if c.NArg() > 0 {
				return usageError("events: no arguments")
			}
			var since time.Time
			if c.IsSet("since") {
				if since, err = eventlog.ParseSince(c.String("since"), time.Now()); err != nil {
					return err
				}
			}
			w := bufio.NewWriter(os.Stdout)
			print := func(ln eventlog.Line) error {
				if asJSON {
					w.Write(ln.Raw)
					w.WriteByte('\n')
				} else {
					var e eventlog.Event
					if json.Unmarshal(ln.Raw, &e) != nil {
						return nil // a record of a kind this vpsctl cannot read
					}
					w.WriteString(e.Text() + "\n")
				}
				if c.Bool("follow") {
					return w.Flush() // a reader follows line by line
				}
				return nil
			}
			log := eventlog.Events(hostCfg.Root, hostCfg.EventsLogMax, hostCfg.LogKeep)
			if !c.Bool("follow") {
				if err := log.Read(since, print); err != nil {
					return err
				}
				return w.Flush()
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := log.Follow(ctx, since, 0, print); !errors.Is(err, context.Canceled) {
				return err
			}
			return w.Flush()
		},
	}
}

func metricsCommand() *cli.Command {
	return &cli.Command{
		Name: "metrics", Usage: "state and usage of every VPS in Prometheus's text format",
		Description: `For node_exporter's textfile collector (contrib/systemd/vpsctl-metrics.timer writes it every
15 s). docs/OPERATIONS.md lists the metrics; promtool check metrics accepts the output.

EXAMPLE:
   vpsctl metrics > /var/lib/prometheus/node-exporter/vpsctl.prom.tmp &&
     mv /var/lib/prometheus/node-exporter/vpsctl.prom.tmp /var/lib/prometheus/node-exporter/vpsctl.prom`,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("metrics: no arguments")
			}
			rt, err := openRuntime(c)
			if err != nil {
				return err
			}
			samples, err := rt.Metrics()
			if err != nil {
				return err
			}
			return metrics.Write(os.Stdout, samples)
		},
	}
}
