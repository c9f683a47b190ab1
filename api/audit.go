package api

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/vpsctl/vpsctl/eventlog"
	"golang.org/x/sys/unix"
)

// A request that changes something (every POST, PATCH and DELETE but exec, which the CLI does
// not audit either) writes one audit line when its work ends, as a vpsctl command does: when
// its operation finishes, or when it is refused before one starts. The line names the caller
// as the kernel knows it on the unix socket (SO_PEERCRED: UID, its name, PID) and by its
// address and client certificate's subject on TCP, and the request as "API METHOD PATH".

// peerKey is the context key of a connection's peer (ConnContext).
type peerKey struct{}

// peer is who is at the other end of a connection.
type peer struct {
	uid, pid int // unix socket: SO_PEERCRED; TCP: -1, 0
}

// ConnContext is the http.Server's ConnContext of an API server: it notes the credentials of
// a unix socket's peer for the audit log.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	p := peer{uid: -1}
	if uc, ok := c.(*net.UnixConn); ok {
		if raw, err := uc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) {
				if cr, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
					p = peer{uid: int(cr.Uid), pid: int(cr.Pid)}
				}
			})
		}
	}
	return context.WithValue(ctx, peerKey{}, p)
}

// auditing is a changing request's audit line, written once: by the operation the request
// started when it finishes, else by the handler's end.
type auditing struct {
	rec  eventlog.Record
	byOp bool // an operation started: it writes the line when it finishes
	done atomic.Bool
}

type auditKey struct{}

// beginAudit returns r with its audit line prepared, if r is a request the audit log records.
func (s *Server) beginAudit(r *http.Request, path string) *http.Request {
	if s.audit == nil || r.Method == http.MethodGet || path == "/v1/vps/{ref}/exec" {
		return r
	}
	rec := eventlog.Record{UID: -1, Cmd: "API " + r.Method + " " + r.URL.RequestURI()}
	if p, ok := r.Context().Value(peerKey{}).(peer); ok && p.uid >= 0 {
		rec.UID, rec.PID, rec.User = p.uid, p.pid, eventlog.UserName(p.uid)
	} else {
		rec.Peer = r.RemoteAddr
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			rec.Peer += " " + r.TLS.PeerCertificates[0].Subject.String()
		}
	}
	return r.WithContext(context.WithValue(r.Context(), auditKey{}, &auditing{rec: rec}))
}

// auditOf is r's audit line, nil if r writes none.
func auditOf(r *http.Request) *auditing {
	a, _ := r.Context().Value(auditKey{}).(*auditing)
	return a
}

// handOver makes the operation r starts the writer of r's audit line.
func handOver(r *http.Request) {
	if a := auditOf(r); a != nil {
		a.byOp = true
	}
}

// endRequest writes r's audit line, if no operation took it over, with the exit code of the
// handler's error err.
func (s *Server) endRequest(r *http.Request, err error) {
	if a := auditOf(r); a != nil && !a.byOp {
		exit := 0
		if err != nil {
			exit = s.errorOf(err).ExitCode
		}
		s.endAudit(r, exit)
	}
}

// endAudit writes r's audit line with exit code exit unless it was written already.
func (s *Server) endAudit(r *http.Request, exit int) {
	a := auditOf(r)
	if a == nil || a.done.Swap(true) {
		return
	}
	a.rec.Time, a.rec.Exit = time.Now(), exit
	if err := s.audit.AppendRecord(a.rec); err != nil {
		s.log.Printf("audit log: %v", err)
	}
}
