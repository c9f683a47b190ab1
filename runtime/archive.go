package runtime

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/internal/timerslack"
	"golang.org/x/term"
)

// A backup archive is one tar stream, compressed with zstd (when the zstd program is there)
// or gzip:
//
//	vpsctl-backup.json   BackupHeader: what VPS, how taken
//	vps.conf             its config
//	private/...          its files (the overlay's upper layer), owners as host IDs
//	checkpoint/...       with --with-memory: its CRIU images
//	MANIFEST             the digest of every entry before it, header fields and content
//
// The manifest comes last, so a truncated archive has none; an entry changed after the
// backup (its content, owner, mode, name, ...) no longer matches its digest. A restore reads
// the whole archive and checks both before it creates anything, then reads it again to
// extract it, checking again.

const (
	backupHeaderName = "vpsctl-backup.json"
	manifestName     = "MANIFEST"
	backupFormat     = 1
)

// ErrBadArchive: not a vpsctl backup, truncated, or changed since it was written.
var ErrBadArchive = errors.New("bad backup archive")

// BackupHeader is the first entry of a backup archive.
type BackupHeader struct {
	Format     int       `json:"format"`
	ID         uint32    `json:"id"`
	Name       string    `json:"name,omitempty"`
	Template   string    `json:"template"`
	IDMap      string    `json:"idmap,omitempty"` // the UID range the files are owned by
	Running    bool      `json:"running"`         // the VPS ran when it was backed up
	WithMemory bool      `json:"with_memory"`     // checkpoint/ holds its processes
	Time       time.Time `json:"time"`
}

// manifest is the last entry: one digest per entry before it, in order.
type manifest struct {
	Entries []manifestEntry `json:"entries"`
}

type manifestEntry struct {
	Name   string `json:"name"`
	Digest string `json:"sha256"`
}

// entryDigest hashes one entry: its header fields that extraction uses, then its content.
type entryDigest struct {
	h hash.Hash
}

func newEntryDigest(hdr *tar.Header) *entryDigest {
	d := &entryDigest{h: sha256.New()}
	fmt.Fprintf(d.h, "%q %c %o %d %d %d %d %q %d %d\n", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid, hdr.Size,
		hdr.ModTime.UnixNano(), hdr.Linkname, hdr.Devmajor, hdr.Devminor)
	// Of the PAX records, the extended attributes: the others (mtime, uid, ...) spell fields
	// already hashed, and a reader fills them in where a writer left them to archive/tar.
	keys := make([]string, 0, len(hdr.PAXRecords))
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(d.h, "%q=%q\n", k, hdr.PAXRecords[k])
	}
	return d
}

func (d *entryDigest) Write(b []byte) (int, error) { return d.h.Write(b) }
func (d *entryDigest) sum() string                 { return hex.EncodeToString(d.h.Sum(nil)) }

// archiveWriter writes a backup's tar stream and records every entry's digest.
type archiveWriter struct {
	tw      *tar.Writer
	cur     *entryDigest
	curName string
	m       manifest
}

func (a *archiveWriter) WriteHeader(hdr *tar.Header) error {
	a.finish()
	if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	a.cur, a.curName = newEntryDigest(hdr), hdr.Name
	return nil
}

func (a *archiveWriter) Write(b []byte) (int, error) {
	n, err := a.tw.Write(b)
	a.cur.Write(b[:n])
	return n, err
}

func (a *archiveWriter) finish() {
	if a.cur != nil {
		a.m.Entries = append(a.m.Entries, manifestEntry{Name: a.curName, Digest: a.cur.sum()})
		a.cur = nil
	}
}

// file writes one small regular file entry.
func (a *archiveWriter) file(name string, body []byte) error {
	if err := a.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(body)),
		ModTime: time.Now().UTC().Truncate(time.Second), Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := a.Write(body)
	return err
}

// close writes the manifest and ends the tar stream.
func (a *archiveWriter) close() error {
	a.finish()
	b, err := json.Marshal(a.m)
	if err != nil {
		return err
	}
	if err := a.tw.WriteHeader(&tar.Header{Name: manifestName, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(b)),
		ModTime: time.Now().UTC().Truncate(time.Second), Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := a.tw.Write(b); err != nil {
		return err
	}
	return a.tw.Close()
}

// readArchive reads backup archive r, handing every entry but the header and the manifest to
// entry (nil: content skipped), each checked against its digest once read. It returns the
// header, and fails with ErrBadArchive on a stream that is not a backup, is cut short (no
// manifest) or does not match its manifest.
func readArchive(r io.Reader, entry func(hdr *tar.Header, body io.Reader) error) (*BackupHeader, error) {
	tr := tar.NewReader(r)
	var got []manifestEntry
	var head *BackupHeader
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: truncated (it ends before its manifest)", ErrBadArchive)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v (truncated or not a backup)", ErrBadArchive, err)
		}
		if i == 0 && hdr.Name != backupHeaderName {
			return nil, fmt.Errorf("%w: no %s first: not a vpsctl backup", ErrBadArchive, backupHeaderName)
		}
		if hdr.Name == manifestName {
			var m manifest
			if hdr.Size > 1<<30 {
				return nil, fmt.Errorf("%w: manifest of %d bytes", ErrBadArchive, hdr.Size)
			}
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				return nil, fmt.Errorf("%w: manifest: %v (truncated or damaged)", ErrBadArchive, err)
			}
			if err := checkManifest(m, got); err != nil {
				return nil, err
			}
			return head, nil
		}
		d := newEntryDigest(hdr)
		body := io.TeeReader(tr, d)
		switch {
		case i == 0:
			var h BackupHeader
			if err := json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&h); err != nil || h.Format != backupFormat {
				return nil, fmt.Errorf("%w: %s: unknown format (%v)", ErrBadArchive, backupHeaderName, err)
			}
			head = &h
		case entry != nil:
			if err := entry(hdr, body); err != nil {
				return nil, err
			}
		}
		if _, err := io.Copy(io.Discard, body); err != nil { // the rest, into the digest
			return nil, fmt.Errorf("%w: %s: %v (truncated)", ErrBadArchive, hdr.Name, err)
		}
		got = append(got, manifestEntry{Name: hdr.Name, Digest: d.sum()})
	}
}

// checkManifest compares the digests an archive's entries had with its manifest's.
func checkManifest(m manifest, got []manifestEntry) error {
	for i, e := range got {
		if i >= len(m.Entries) {
			return fmt.Errorf("%w: %s is not in the manifest (an entry was added)", ErrBadArchive, e.Name)
		}
		if m.Entries[i].Name != e.Name {
			return fmt.Errorf("%w: entry %d is %s, the manifest says %s", ErrBadArchive, i, e.Name, m.Entries[i].Name)
		}
		if m.Entries[i].Digest != e.Digest {
			return fmt.Errorf("%w: %s does not match its checksum (changed since the backup)", ErrBadArchive, e.Name)
		}
	}
	if len(m.Entries) != len(got) {
		return fmt.Errorf("%w: %d entries, the manifest lists %d (an entry was removed)", ErrBadArchive, len(got), len(m.Entries))
	}
	return nil
}

// Compression of backup archives: zstd through the zstd program if it is installed (Debian's
// zstd package), gzip otherwise. Reading tells them apart by their magic numbers.
var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
)

// compressor is a running compression of an archive into a file.
type compressor struct {
	w     io.WriteCloser // the archive's tar stream goes here
	cmd   *exec.Cmd      // the zstd program, if used
	gz    *gzip.Writer
	Kind  string
	count *countWriter
}

// newCompressor compresses into out (counting the compressed bytes).
func newCompressor(out io.Writer) (*compressor, error) {
	c := &compressor{count: &countWriter{w: out}}
	if path, err := exec.LookPath("zstd"); err == nil {
		c.cmd = exec.Command(path, "-q", "-3", "-T0", "-c")
		c.cmd.Stdout, c.cmd.Stderr = c.count, os.Stderr
		in, err := c.cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		if err := timerslack.WithHost(c.cmd.Start); err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		c.w, c.Kind = in, "zstd"
		return c, nil
	}
	c.gz = gzip.NewWriter(c.count)
	c.w, c.Kind = c.gz, "gzip"
	return c, nil
}

// close ends the compression (kill: abandon it).
func (c *compressor) close(kill bool) error {
	if c.cmd == nil {
		return c.gz.Close()
	}
	if kill {
		c.cmd.Process.Kill()
	}
	err := c.w.Close()
	if werr := c.cmd.Wait(); err == nil && !kill {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	return nil
}

// openArchive opens backup file path for reading, decompressed. The returned close ends it.
func openArchive(ctx context.Context, path string) (io.Reader, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	magic := make([]byte, 4)
	n, _ := io.ReadFull(f, magic)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	switch {
	case n >= 4 && bytes.Equal(magic, zstdMagic):
		zp, err := exec.LookPath("zstd")
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%w: %s is zstd-compressed and the zstd program is not installed (apt-get install zstd)", ErrBadArchive, path)
		}
		cmd := exec.CommandContext(ctx, zp, "-q", "-d", "-c")
		cmd.Stdin = f
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		if err := timerslack.WithHost(cmd.Start); err != nil {
			f.Close()
			return nil, nil, err
		}
		return out, func() error {
			cmd.Process.Kill() // a reader that stopped early leaves zstd blocked on the pipe
			cmd.Wait()
			return f.Close()
		}, nil
	case n >= 2 && bytes.Equal(magic[:2], gzipMagic):
		gz, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%w: %s: %v", ErrBadArchive, path, err)
		}
		return gz, f.Close, nil
	}
	f.Close()
	return nil, nil, fmt.Errorf("%w: %s is neither zstd- nor gzip-compressed: not a vpsctl backup", ErrBadArchive, path)
}

// progressMeter prints, on a terminal, how much has passed and how fast, every half second.
type progressMeter struct {
	what  string
	count func() int64
	out   *os.File
	stop  chan struct{}
	done  chan struct{}
	t0    time.Time
}

// startProgress starts a meter of count's bytes on out if out is a terminal; nil otherwise.
func startProgress(out *os.File, what string, count func() int64) *progressMeter {
	if out == nil || !term.IsTerminal(int(out.Fd())) {
		return nil
	}
	p := &progressMeter{what: what, count: count, out: out, stop: make(chan struct{}), done: make(chan struct{}), t0: time.Now()}
	go func() {
		defer close(p.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.print("")
			}
		}
	}()
	return p
}

func (p *progressMeter) print(end string) {
	n := p.count()
	rate := float64(n) / time.Since(p.t0).Seconds()
	fmt.Fprintf(p.out, "\r\033[K%s: %s, %s/s%s", p.what, sizeString(n), sizeString(int64(rate)), end)
}

// end stops the meter (nil: no meter) and leaves its last line.
func (p *progressMeter) end() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.print("\n")
}

// sizeString formats a byte count for people.
func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}
