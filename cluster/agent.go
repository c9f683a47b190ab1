package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"time"

	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/uid"
	"golang.org/x/sys/unix"
)

// ErrAgentRuns: the state root has its agent already (one started by a command while the
// service manager's was restarting, say): nothing to do.
var ErrAgentRuns = errors.New("another agent runs")

// Serve runs the agent of settings s, registering version as the host's vpsctl version: it takes the state root's agent lock, listens on its
// socket, tells ready ("ok", or why not) once it does, registers the node and answers
// requests until it is stopped (SIGTERM, SIGINT, an OpStop request, or a request from a
// command whose settings differ). It then gives its lease up.
func Serve(s registry.Settings, version string, ready *os.File) error {
	fail := func(err error) error {
		if ready != nil {
			fmt.Fprintf(ready, "%v\n", err)
			ready.Close()
		}
		return err
	}
	if err := os.MkdirAll(registry.Dir(s.Root), 0o700); err != nil {
		return fail(err)
	}
	lock, err := os.OpenFile(registry.LockPath(s.Root), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fail(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(fmt.Errorf("%w for %s (PID %d)", ErrAgentRuns, s.Root, registry.AgentPID(s.Root)))
	}
	lock.Truncate(0)
	lock.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	g, err := Open(s)
	if err != nil {
		return fail(err)
	}
	defer g.Close()
	g.Version = version
	sock := registry.SocketPath(s.Root)
	os.Remove(sock) // a dead agent's: this one holds the lock
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fail(err)
	}
	os.Chmod(sock, 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &agent{g: g, digest: s.Digest(), stop: cancel}
	if ready != nil {
		fmt.Fprintln(ready, "ok")
		ready.Close()
	}
	log.Printf("agent %d: node %s, root %s, etcd %v", os.Getpid(), s.Node, s.Root, s.Endpoints)
	go g.Register(ctx)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGTERM, unix.SIGINT)
	go func() {
		select {
		case <-sig:
		case <-ctx.Done():
		}
		cancel()
		l.Close()
	}()
	// Changes (and Prepare, which reports them) are carried out one at a time in the order
	// their connections arrived: a command killed right after sending its claim has its claim
	// done before the next command's Prepare looks for what to settle. Reads go alongside.
	changes := make(chan pendingReq, 64)
	go func() {
		for pr := range changes {
			a.answer(ctx, pr.conn, pr.req)
		}
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			break
		}
		a.wg.Add(1)
		req, ok := a.read(conn)
		switch {
		case !ok:
			conn.Close()
			a.wg.Done()
		case ordered[req.Op]:
			changes <- pendingReq{conn, req}
		default:
			go a.answer(ctx, conn, req)
		}
	}
	// Stopping: the requests under way finish (each is bounded), then the lease goes.
	os.Remove(sock)
	a.wg.Wait()
	close(changes)
	g.Leave(context.Background())
	log.Printf("agent %d: stopped", os.Getpid())
	return nil
}

type agent struct {
	g      *Registry
	digest string
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// ordered are the ops carried out in arrival order (see Serve).
var ordered = map[string]bool{registry.OpPrepare: true, registry.OpCreate: true, registry.OpClaim: true, registry.OpSettle: true,
	registry.OpMark: true, registry.OpMove: true, registry.OpStop: true}

type pendingReq struct {
	conn net.Conn
	req  registry.Request
}

// read reads a request: a command writes it as soon as it has connected.
func (a *agent) read(conn net.Conn) (registry.Request, bool) {
	var req registry.Request
	conn.SetReadDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	return req, err == nil && json.Unmarshal(line, &req) == nil
}

// answer carries req out and answers on conn.
func (a *agent) answer(ctx context.Context, conn net.Conn, req registry.Request) {
	defer a.wg.Done()
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2*a.g.s.Timeout + time.Second))
	resp := a.do(context.WithoutCancel(ctx), req)
	if resp.Kind != "" && resp.Kind != registry.KindConflict && resp.Kind != registry.KindUIDRace {
		log.Printf("%s (PID %d): %s", req.Op, req.PID, resp.Error)
	}
	b, _ := json.Marshal(resp)
	conn.Write(append(b, '\n')) // the command may have gone (a settling it does not wait for)
}

func (a *agent) do(ctx context.Context, req registry.Request) *registry.Response {
	if req.Settings != a.digest {
		a.stop()
		return &registry.Response{Kind: registry.KindStale, Error: "the cluster agent runs other settings; it exits"}
	}
	if req.Op != registry.OpStop && req.Op != registry.OpHosts && req.Op != registry.OpInventory && req.Op != registry.OpLookup {
		if err := a.g.Registered(); errors.Is(err, ErrNodeTaken) {
			return failure(err)
		}
	}
	resp := &registry.Response{}
	var err error
	switch req.Op {
	case registry.OpPrepare:
		resp.Pending, resp.UIDs, err = a.g.Prepare(ctx)
	case registry.OpCreate:
		if req.Claim == nil {
			return &registry.Response{Kind: registry.KindBad, Error: "create: no claim"}
		}
		var cl registry.Claim
		cl, resp.Pending, err = a.g.Create(ctx, req.PID, req.Claim.Normalize(), req.Template, req.Alloc)
		resp.Claim = &cl
	case registry.OpClaim:
		if req.Claim == nil {
			return &registry.Response{Kind: registry.KindBad, Error: "claim: no claim"}
		}
		err = a.g.Claim(ctx, req.PID, req.Claim.Normalize(), req.Old, req.Template)
		if errors.Is(err, registry.ErrUIDRace) {
			_, resp.UIDs, _ = a.g.Prepare(ctx)
		}
	case registry.OpSettle:
		err = a.g.Settle(ctx, req.ID, req.Claim)
	case registry.OpMark:
		var ok bool
		ok, err = a.g.Mark(ctx, req.PID, req.ID)
		if !ok && err == nil {
			resp.Kind, resp.Error = registry.KindNotFound, fmt.Sprintf("VPS %d is not this host's in the registry", req.ID)
		}
	case registry.OpInventory:
		resp.Records, resp.Hosts, resp.Pending, err = a.g.Inventory(ctx)
	case registry.OpHosts:
		resp.Hosts, err = a.g.Hosts(ctx)
	case registry.OpLookup:
		resp.Record, err = a.g.Lookup(ctx, req.ID, req.Name)
	case registry.OpMove:
		uids := ""
		if req.Claim != nil {
			uids = req.Claim.UIDs
		}
		err = a.g.Move(ctx, req.ID, req.To, uids)
	case registry.OpStop:
		a.stop()
	default:
		return &registry.Response{Kind: registry.KindBad, Error: fmt.Sprintf("unknown request %q", req.Op)}
	}
	if err != nil {
		f := failure(err)
		f.UIDs, f.Pending = resp.UIDs, resp.Pending
		return f
	}
	return resp
}

// failure is err as a Response.
func failure(err error) *registry.Response {
	var ce *registry.ConflictError
	switch {
	case errors.As(err, &ce):
		return &registry.Response{Kind: registry.KindConflict, Error: err.Error(), Conflict: &ce.Conflict}
	case errors.Is(err, registry.ErrUIDRace):
		return &registry.Response{Kind: registry.KindUIDRace, Error: err.Error()}
	case errors.Is(err, uid.ErrPoolFull):
		return &registry.Response{Kind: registry.KindPoolFull, Error: err.Error()}
	case errors.Is(err, registry.ErrPending):
		return &registry.Response{Kind: registry.KindPending, Error: err.Error()}
	case errors.Is(err, registry.ErrNotFound):
		return &registry.Response{Kind: registry.KindNotFound, Error: err.Error()}
	case errors.Is(err, registry.ErrUnavailable), errors.Is(err, ErrNodeTaken):
		return &registry.Response{Kind: registry.KindUnavailable, Error: err.Error()}
	}
	return &registry.Response{Kind: registry.KindBad, Error: err.Error()}
}
