package main

import (
	"github.com/urfave/cli/v2"
)

func init() {
	extraCommandList = append(extraCommandList, serveCommand)
}

// defaultSocket is where `vpsctl serve` listens unless --socket says otherwise.
const defaultSocket = "/run/vpsctl/vpsctl.sock"

// `vpsctl serve`, the HTTP/JSON API, is one command of the CLI and a program of its own: the
// vpsctl executable links no HTTP server, TLS or X.509 code (net/http's initialisation and the
// binary's size cost every vpsctl command about 0.4 ms, a tenth of a `vpsctl create`), so its
// serve command executes vpsctl-api, which is this same CLI with the server: scripts/build.sh
// builds vpsctl with the tag noapi and vpsctl-api without it, side by side (a plain `go build`
// is the whole CLI in one program). The command's flags, help and checks are the same in
// both; only serveAction differs (serve_api.go, serve_exec.go).
func serveCommand() *cli.Command {
	return &cli.Command{
		Name: "serve", Usage: "serve the HTTP/JSON API (for control panels) on a unix socket and optionally TCP",
		Description: `Serves the API described by /v1/openapi.json (docs/openapi.json): VPSs, their actions,
exec, templates, operations, events and metrics. It uses the same library and locks as the
vpsctl command, so both can be used at once. The unix socket is mode 0660, owned by root
and --group. TCP needs mutual TLS (--tls-cert, --tls-key, --client-ca); plain HTTP over TCP
only on a loopback address with --insecure (tests). Runs until SIGTERM or SIGINT.

EXAMPLES:
   vpsctl serve &
   curl --unix-socket /run/vpsctl/vpsctl.sock localhost/v1/vps
   vpsctl serve --socket ./v.sock --listen 127.0.0.1:8443 --tls-cert s.pem --tls-key s.key --client-ca ca.pem`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Value: defaultSocket, Usage: "unix socket `PATH` (\"\": none)"},
			&cli.StringFlag{Name: "group", Value: "root", Usage: "`GROUP` owning the socket: its members may use the API"},
			&cli.StringFlag{Name: "listen", Usage: "also serve TCP on `ADDR:PORT` (mutual TLS)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "server certificate `FILE` (PEM)"},
			&cli.StringFlag{Name: "tls-key", Usage: "server key `FILE` (PEM)"},
			&cli.StringFlag{Name: "client-ca", Usage: "CA `FILE` (PEM) client certificates must chain to"},
			&cli.BoolFlag{Name: "insecure", Usage: "plain HTTP on --listen, loopback addresses only (tests)"},
		},
		Action: serveAction,
	}
}
