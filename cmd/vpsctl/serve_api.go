//go:build !noapi

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/api"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/runtime"
)

// serveAction serves the API (vpsctl-api's serve).
func serveAction(c *cli.Context) error {
	if c.NArg() != 0 {
		return usageError("serve: takes no arguments")
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	if path := c.String("socket"); path != "" {
		ln, err := listenUnix(path, c.String("group"))
		if err != nil {
			return err
		}
		lns = append(lns, ln)
	}
	if addr := c.String("listen"); addr != "" {
		ln, err := listenTCP(c, addr)
		if err != nil {
			return err
		}
		lns = append(lns, ln)
	} else if c.IsSet("tls-cert") || c.IsSet("tls-key") || c.IsSet("client-ca") || c.Bool("insecure") {
		return usageError("serve: --tls-cert, --tls-key, --client-ca and --insecure go with --listen")
	}
	if len(lns) == 0 {
		return usageError("serve: nothing to listen on (--socket \"\" and no --listen)")
	}
	rt, err := openRuntime(c)
	if err != nil {
		return err
	}
	return serve(rt, lns)
}

// serve runs the API on lns until SIGTERM or SIGINT, then lets the requests being answered
// finish (boundedly). Operations still running are cut by the cancelled context; the library
// undoes what they left half-done at the VPS's next command, as after a killed vpsctl.
func serve(rt *runtime.Runtime, lns []net.Listener) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	b := readBuildInfo()
	srv := &http.Server{
		Handler: api.New(ctx, rt, api.Options{Classify: classify, Version: map[string]string{"version": b.Version,
			"commit": b.Commit, "go": b.Go, "libc": b.Libc, "platform": b.Platform},
			AuditLog: eventlog.Audit(rt.St.Root, hostCfg.AuditLogMax, hostCfg.LogKeep)}).Handler(),
		ConnContext:       api.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(os.Stderr, "vpsctl serve: ", 0),
	}
	errs := make(chan error, len(lns))
	for _, ln := range lns {
		fmt.Fprintf(os.Stderr, "vpsctl serve: listening on %s\n", ln.Addr())
		go func() { errs <- srv.Serve(ln) }()
	}
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	return nil
}

// listenUnix listens on a unix socket at path, mode 0660, owned by root and group. A socket
// file left by a server that is gone is replaced; one a live server answers on is not.
func listenUnix(path, group string) (net.Listener, error) {
	g, err := user.LookupGroup(group)
	if err != nil {
		return nil, fmt.Errorf("--group %q: %v: %w", group, err, runtime.ErrBadValue)
	}
	gid, _ := strconv.Atoi(g.Gid)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("--socket %s: exists and is not a socket: %w", path, runtime.ErrBadValue)
		}
		if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
			conn.Close()
			return nil, fmt.Errorf("--socket %s: another server answers on it: %w", path, runtime.ErrRunning)
		}
		os.Remove(path)
	}
	// The socket is made under a umask that leaves it to root until it has its group and mode.
	old := syscall.Umask(0o077)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chown(path, 0, gid); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// listenTCP listens on addr with mutual TLS, or with --insecure plain HTTP on a loopback
// address: the API can do anything root can to the VPSs, so it is never open unauthenticated
// beyond the host.
func listenTCP(c *cli.Context, addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: want ADDR:PORT: %w", addr, runtime.ErrBadValue)
	}
	if c.Bool("insecure") {
		ip := net.ParseIP(host)
		if host == "localhost" {
			ip = net.IPv4(127, 0, 0, 1)
		}
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("--listen %s --insecure: plain HTTP only on a loopback address: %w", addr, runtime.ErrBadValue)
		}
		if c.IsSet("tls-cert") || c.IsSet("tls-key") || c.IsSet("client-ca") {
			return nil, usageError("serve: --insecure is plain HTTP: no --tls-cert, --tls-key or --client-ca")
		}
		return net.Listen("tcp", addr)
	}
	if c.String("tls-cert") == "" || c.String("tls-key") == "" || c.String("client-ca") == "" {
		return nil, usageError("serve: --listen needs --tls-cert, --tls-key and --client-ca (or --insecure on loopback)")
	}
	cert, err := tls.LoadX509KeyPair(c.String("tls-cert"), c.String("tls-key"))
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %v: %w", err, runtime.ErrBadValue)
	}
	pem, err := os.ReadFile(c.String("client-ca"))
	if err != nil {
		return nil, fmt.Errorf("--client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--client-ca %s: no PEM certificate: %w", c.String("client-ca"), runtime.ErrBadValue)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}), nil
}
