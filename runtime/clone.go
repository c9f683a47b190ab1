package runtime

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/fstree"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/store"
)

// CloneOptions describe a clone.
type CloneOptions struct {
	Name     string   // the clone's name ("" none)
	Hostname string   // "" = vpsID, or the name
	IPs      []string // the clone's routed addresses (the source's stay the source's)
	Progress io.Writer
}

// CloneResult is what a clone made.
type CloneResult struct {
	ID      container.ID `json:"id"`
	From    container.ID `json:"from"`
	IDMap   string       `json:"idmap,omitempty"`
	Bytes   int64        `json:"bytes"`
	Seconds float64      `json:"seconds"`
}

// Clone makes VPS dst, stopped, a copy of VPS src: its config (limits, template, namespaces,
// interfaces without their MAC addresses and host names) and its private area, with a UID range
// of its own (the files shifted into it), its own host name and the addresses opts gives (none
// by default: the source's are the source's). A running source is frozen while its files are
// copied, so the copy is consistent, and thawed after; the source is otherwise untouched.
func (r *Runtime) Clone(ctx context.Context, src, dst container.ID, o CloneOptions) (*CloneResult, error) {
	if src == dst {
		return nil, fmt.Errorf("VPS %d: a clone needs another ID: %w", dst, store.ErrExist)
	}
	slk, err := r.St.LockVPS(ctx, src, "clone")
	if err != nil {
		return nil, err
	}
	defer slk.Unlock()
	if err := r.checkComplete(src); err != nil {
		return nil, err
	}
	s, err := r.Status(src)
	if err != nil {
		return nil, err
	}
	if s.State == "deleted" {
		return nil, fmt.Errorf("VPS %d: %w", src, store.ErrNotExist)
	}
	c, err := r.St.LoadConfig(src)
	if err != nil {
		return nil, err
	}
	c.ID, c.Name, c.Hostname = dst, o.Name, o.Hostname
	if c.Hostname == "" {
		c.Hostname = "vps" + itoa(dst)
		if o.Name != "" {
			c.Hostname = o.Name
		}
	}
	c.IPs = nil
	for i, n := range c.NetIfs {
		if ni, err := network.ParseNetIf(n); err == nil {
			ni.MAC, ni.HostName = nil, "" // derived from the new ID
			c.NetIfs[i] = ni.String()
		}
	}
	if err := (NetOptions{IPAdd: o.IPs}).validate(c); err != nil {
		return nil, err
	}
	// The source's files first: one that cannot be read (its image attached elsewhere) is
	// refused before anything is claimed.
	from, done, err := r.privateTree(s)
	if err != nil {
		return nil, err
	}
	defer done()
	in, err := r.claimIncoming(ctx, c, false, fmt.Sprintf("clone of %d", src), "")
	if err != nil {
		return nil, err
	}
	defer in.abandon()
	progress := progressOr(o.Progress)
	fmt.Fprintf(progress, "cloning VPS %d to %d (UID range %s)\n", src, dst, c.IDMap)
	t0 := time.Now()
	if s.State == "running" && !s.Suspended {
		cg, err := cgroup.New(spec.CgroupPath(src))
		if err != nil {
			return nil, err
		}
		if err := cg.Freeze(FreezeTimeout); err != nil {
			return nil, fmt.Errorf("VPS %d: freeze: %w", src, err)
		}
		defer cg.Thaw()
	}
	n, err := copyPrivate(from, in)
	if err != nil {
		return nil, fmt.Errorf("clone %d to %d: %w", src, dst, err)
	}
	if err := in.intoImage(ctx); err != nil {
		return nil, fmt.Errorf("clone %d to %d: %w", src, dst, err)
	}
	if err := in.complete(); err != nil {
		return nil, err
	}
	res := &CloneResult{ID: dst, From: src, IDMap: c.IDMap, Bytes: n, Seconds: time.Since(t0).Seconds()}
	fmt.Fprintf(progress, "copied %.1f MiB in %.2f s\n", float64(n)/(1<<20), res.Seconds)
	return res, nil
}

// copyPrivate copies a VPS's private area, the tree at from (see privateTree), into incoming
// VPS in (through a tar stream, the way a backup or a migration carries it) and returns the
// bytes the stream held.
func copyPrivate(from string, in *incoming) (int64, error) {
	pr, pw := io.Pipe()
	cw := &countWriter{w: pw}
	written := make(chan struct{})
	go func() {
		defer close(written)
		tw := tar.NewWriter(cw)
		err := fstree.Write(tw, from, fstree.WriteOptions{Prefix: "private"})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	err := in.extract(tar.NewReader(pr))
	pr.CloseWithError(err) // a writer still writing stops
	<-written
	return cw.n.Load(), err
}

// countReader counts what passes through it (read by a progress meter meanwhile).
type countReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// countWriter counts what passes through it (read by a progress meter meanwhile).
type countWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}
