package eventlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// Log is an append-only file of JSON lines that many processes write at once (every vpsctl
// command, every monitor), bounded by rotation: when a line would take the file past MaxSize
// it is renamed to PATH.1 (PATH.1 to PATH.2 and so on, the oldest beyond Keep deleted) and a
// new file is started.
//
// Each line is one write(2) on an O_APPEND descriptor, so lines never interleave, and the
// writer holds flock(2) on the file while it checks the size, rotates and writes: two
// writers never rotate the same generation twice, and no line lands in a file after it was
// rotated (the lock holder checks, under the lock, that PATH is still the file it opened).
// A lock that cannot be had within LockWait (a writer stopped with SIGSTOP) does not stop the
// command: the line is then appended without the lock and without rotating, which an
// O_APPEND write allows safely, and the file may overshoot MaxSize by that line.
type Log struct {
	Path     string
	MaxSize  int64         // bytes; rotation happens before a line would pass it (0: never)
	Keep     int           // rotated generations kept, at least 1
	Mode     uint32        // permissions of a new file (0: 0640)
	LockWait time.Duration // 0: 2 s
}

// ErrTooLong is a line that cannot be appended as one record: longer than maxLine, or with a
// newline inside.
var ErrTooLong = errors.New("log line too long or not one line")

// maxLine bounds one line. Records are a few hundred bytes; this keeps even a pathological
// one below a page-sized write and a reader's buffer.
const maxLine = 16 << 10

// Generation returns the path of rotated generation n (n = 0: the live file).
func (l *Log) Generation(n int) string {
	if n == 0 {
		return l.Path
	}
	return l.Path + "." + strconv.Itoa(n)
}

func (l *Log) keep() int { return max(l.Keep, 1) }

// AppendJSON appends v, marshalled, as one line.
func (l *Log) AppendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("log %s: %w", l.Path, err)
	}
	return l.Append(b)
}

// Append writes line (without its newline) as one record.
func (l *Log) Append(line []byte) error {
	if len(line) >= maxLine || bytes.IndexByte(line, '\n') >= 0 {
		return fmt.Errorf("log %s: %d bytes: %w", l.Path, len(line), ErrTooLong)
	}
	rec := make([]byte, 0, len(line)+1)
	rec = append(append(rec, line...), '\n')
	mode := l.Mode
	if mode == 0 {
		mode = 0o640
	}
	wait := l.LockWait
	if wait == 0 {
		wait = 2 * time.Second
	}
	// Each round either writes, or finds that the file was rotated (by us or another writer)
	// and opens the new one. Every failed round means a rotation, which took a file's worth of
	// other writers' lines; so many in a row mean something keeps replacing the file, and the
	// caller hears of it rather than looping.
	for round := 0; round < 32; round++ {
		fd, err := sysfile.Open(l.Path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT, mode)
		if err != nil {
			return err
		}
		done, err := l.appendFD(fd, rec, wait)
		unix.Close(fd) // also drops the lock
		if done || err != nil {
			return err
		}
	}
	return fmt.Errorf("log %s: replaced 32 times while appending", l.Path)
}

// appendFD writes rec to fd (PATH opened for appending) unless PATH has moved on; done is
// false when the caller must open PATH again.
func (l *Log) appendFD(fd int, rec []byte, wait time.Duration) (done bool, err error) {
	locked := lockBounded(fd, wait)
	if locked {
		var st, cur unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return false, &os.PathError{Op: "fstat", Path: l.Path, Err: err}
		}
		err := unix.Stat(l.Path, &cur)
		if err != nil || cur.Ino != st.Ino || cur.Dev != st.Dev {
			return false, nil // rotated (or being rotated) since we opened it
		}
		if l.MaxSize > 0 && st.Size > 0 && st.Size+int64(len(rec)) > l.MaxSize {
			if err := l.rotate(); err != nil {
				return false, err
			}
			return false, nil
		}
	}
	for {
		n, err := unix.Write(fd, rec)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, &os.PathError{Op: "write", Path: l.Path, Err: err}
		}
		if n != len(rec) {
			// A short write to a regular file is a full disk; the torn line is ended so the
			// next record starts on a line of its own, and readers skip the torn one.
			unix.Write(fd, []byte{'\n'})
			return false, &os.PathError{Op: "write", Path: l.Path, Err: io.ErrShortWrite}
		}
		return true, nil
	}
}

// lockBounded takes flock(LOCK_EX) on fd, waiting at most wait. The kernel has no timed
// flock, so it polls LOCK_NB with a back-off: holders keep the lock for microseconds.
func lockBounded(fd int, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	pause := 50 * time.Microsecond
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return true
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR || time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(pause*2, 20*time.Millisecond)
	}
}

// rotate shifts the generations up by one, dropping the oldest, and moves the live file to
// PATH.1. The caller holds the live file's lock.
func (l *Log) rotate() error {
	for n := l.keep() - 1; n >= 1; n-- {
		if err := os.Rename(l.Generation(n), l.Generation(n+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return os.Rename(l.Path, l.Generation(1))
}

// Line is one record as read back: its raw JSON and the time it carries.
type Line struct {
	Raw  []byte
	Time time.Time
}

// timeOnly decodes just the time of a record, for filtering.
type timeOnly struct {
	Time time.Time `json:"time"`
}

// parseLine returns the record in raw, or false for a line that is not a record (a torn
// write, a hand edit).
func parseLine(raw []byte) (Line, bool) {
	var t timeOnly
	if len(raw) == 0 || json.Unmarshal(raw, &t) != nil || t.Time.IsZero() {
		return Line{}, false
	}
	return Line{Raw: raw, Time: t.Time}, true
}

// Read calls fn for every record of the log whose time is not before since (zero: all),
// oldest generation first. A trailing line without its newline is being written and is
// left out; lines that are not records are skipped. An error from fn stops the reading and
// is returned.
func (l *Log) Read(since time.Time, fn func(Line) error) error {
	files, err := l.openGenerations()
	if err != nil {
		return err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, f := range files {
		var r reader
		if err := r.drain(f, since, fn); err != nil {
			return err
		}
	}
	return nil
}

// openGenerations opens the live file first and then the rotated ones, and returns them
// oldest first, each inode once: a rotation between two opens shows the same file under two
// names, and it must not be read twice.
func (l *Log) openGenerations() ([]*os.File, error) {
	var files []*os.File
	seen := map[[2]uint64]bool{}
	for n := 0; n <= l.keep(); n++ {
		f, err := os.Open(l.Generation(n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, err
		}
		k, err := fileKey(f)
		if err != nil || seen[k] {
			f.Close()
			continue
		}
		seen[k] = true
		files = append(files, f)
	}
	for i, j := 0, len(files)-1; i < j; i, j = i+1, j-1 {
		files[i], files[j] = files[j], files[i]
	}
	return files, nil
}

func fileKey(f *os.File) ([2]uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return [2]uint64{}, err
	}
	return [2]uint64{st.Dev, st.Ino}, nil
}

// reader splits a file into lines across reads, keeping a partial last line until its
// newline arrives.
type reader struct {
	buf     []byte
	partial []byte
}

// drain reads f from its offset to its end, calling fn for each complete record at or after
// since.
func (r *reader) drain(f *os.File, since time.Time, fn func(Line) error) error {
	if r.buf == nil {
		r.buf = make([]byte, 64<<10)
	}
	for {
		n, err := f.Read(r.buf)
		if n > 0 {
			data := r.buf[:n]
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					r.partial = append(r.partial, data...)
					if len(r.partial) > maxLine {
						r.partial = r.partial[:0] // not a record: drop it rather than grow
					}
					break
				}
				line := data[:i]
				if len(r.partial) > 0 {
					line = append(r.partial, line...)
					r.partial = r.partial[:0]
				}
				if rec, ok := parseLine(line); ok && !rec.Time.Before(since) {
					rec.Raw = bytes.Clone(rec.Raw)
					if err := fn(rec); err != nil {
						return err
					}
				}
				data = data[i+1:]
			}
		}
		if err == io.EOF || n == 0 && err == nil {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Follow is Read followed by waiting for new records until ctx is done: every poll it reads
// what was appended, and when PATH is a new file (rotated) it first finishes the old one, to
// its end, then reads each newer generation in turn, up to the new live file. No writer
// appends to a rotated file (Append checks under the lock), so nothing is lost or read twice
// across rotations, however many happen between two polls, unless more than Keep happen
// (the generation the follower was reading is then deleted): it then goes on from the oldest
// generation left, with the records newer than the last it reported. It returns ctx's error,
// or fn's.
func (l *Log) Follow(ctx context.Context, since time.Time, poll time.Duration, fn func(Line) error) error {
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	f := follower{l: l, since: since, fn: fn}
	defer f.close()
	if err := f.backlog(); err != nil {
		return err
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		moved, err := f.step()
		if err != nil {
			return err
		}
		if moved {
			continue // a newer file: read it at once
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// follower is the state of a Follow: the file being read, and the newest time reported.
type follower struct {
	l     *Log
	since time.Time
	fn    func(Line) error
	cur   *os.File
	key   [2]uint64
	r     reader
	last  time.Time // newest record reported; the floor when the follower lost its file
	after bool      // report only records after last (set once a file was lost)
}

func (f *follower) close() {
	if f.cur != nil {
		f.cur.Close()
		f.cur = nil
	}
}

func (f *follower) emit(ln Line) error {
	if f.after && !ln.Time.After(f.last) {
		return nil
	}
	if ln.Time.After(f.last) {
		f.last = ln.Time
	}
	return f.fn(ln)
}

func (f *follower) drain() error {
	return f.r.drain(f.cur, f.since, f.emit)
}

// use makes g the file being read.
func (f *follower) use(g *os.File) error {
	k, err := fileKey(g)
	if err != nil {
		g.Close()
		return err
	}
	f.close()
	f.cur, f.key, f.r.partial = g, k, f.r.partial[:0]
	return nil
}

// backlog reads every rotated generation and starts on the newest file.
func (f *follower) backlog() error {
	files, err := f.l.openGenerations()
	if err != nil {
		return err
	}
	for i, g := range files {
		if err := f.use(g); err != nil {
			for _, g := range files[i+1:] {
				g.Close()
			}
			return err
		}
		if err := f.drain(); err != nil {
			for _, g := range files[i+1:] {
				g.Close()
			}
			return err
		}
	}
	return nil
}

// step reads what was appended to the current file; if that file is no longer the live one,
// it finishes it and moves to the next newer generation (moved: the caller steps again at
// once).
func (f *follower) step() (moved bool, err error) {
	if f.cur != nil {
		if err := f.drain(); err != nil {
			return false, err
		}
	}
	var st unix.Stat_t
	switch err := unix.Stat(f.l.Path, &st); {
	case err == unix.ENOENT:
		return false, nil // between a rotation's rename and the next create, or no log yet
	case err != nil:
		return false, &os.PathError{Op: "stat", Path: f.l.Path, Err: err}
	}
	if f.cur != nil && f.key == [2]uint64{st.Dev, st.Ino} {
		return false, nil
	}
	if f.cur == nil {
		// There was no log when the follow began: every generation there is now is new.
		return true, f.backlog()
	}
	// Rotated: what was appended before the rename is in the file now; read it to its end.
	if err := f.drain(); err != nil {
		return false, err
	}
	return true, f.next()
}

// next opens the generation one newer than the (finished) current file. The names shift
// under it while writers rotate, so it checks, after opening, that the current file is still
// where it found it, and tries again if not.
func (f *follower) next() error {
	for try := 0; try < 16; try++ {
		n := -1
		for g := 1; g <= f.l.keep(); g++ {
			var st unix.Stat_t
			if unix.Stat(f.l.Generation(g), &st) == nil && [2]uint64{st.Dev, st.Ino} == f.key {
				n = g
				break
			}
		}
		if n < 0 {
			// Rotated out of reach: go on from the oldest generation, past what was reported.
			f.after = true
			files, err := f.l.openGenerations()
			if err != nil {
				return err
			}
			if len(files) == 0 {
				f.close()
				return nil
			}
			for _, g := range files[1:] {
				g.Close()
			}
			return f.use(files[0])
		}
		g, err := os.Open(f.l.Generation(n - 1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		var st unix.Stat_t
		if err == nil && unix.Stat(f.l.Generation(n), &st) == nil && [2]uint64{st.Dev, st.Ino} == f.key {
			return f.use(g)
		}
		if g != nil {
			g.Close()
		}
	}
	return fmt.Errorf("log %s: rotating too fast to follow", f.l.Path)
}
