package criu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// A dump of a tree with a user namespace records that namespace's ID maps in userns-N.img,
// host IDs included (lower_first); every other ID in the images is one inside the namespace
// (credentials, file owners of tmpfs archives and ghost files, IPC objects). So images dumped
// for one host UID range are restored into another by rewriting the maps' host IDs alone.

// Image framing (criu/include/magic.h, criu/protobuf.c): two little-endian u32 magics, then
// entries of a u32 size and a protobuf message.
const (
	imgCommonMagic = 0x54564319
	usernsMagic    = 0x55474906
)

// ErrBadImage reports an image file vpsctl cannot read.
var ErrBadImage = errors.New("unreadable criu image")

// ShiftUserns rewrites the host IDs (lower_first) of every UID and GID map extent in the
// userns images of images directory dir through shift. Images without a user namespace have
// none: nothing is done.
func ShiftUserns(dir string, shift func(uint32) uint32) error {
	files, err := filepath.Glob(filepath.Join(dir, "userns-*.img"))
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		out, err := shiftUsernsImage(b, shift)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		tmp := f + ".new"
		if err := os.WriteFile(tmp, out, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, f); err != nil {
			return err
		}
	}
	return nil
}

// shiftUsernsImage is ShiftUserns on one image's bytes. It is pure.
func shiftUsernsImage(b []byte, shift func(uint32) uint32) ([]byte, error) {
	if len(b) < 8 || binary.LittleEndian.Uint32(b) != imgCommonMagic || binary.LittleEndian.Uint32(b[4:]) != usernsMagic {
		return nil, fmt.Errorf("%w: not a userns image", ErrBadImage)
	}
	out := append([]byte(nil), b[:8]...)
	for rest := b[8:]; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: truncated entry", ErrBadImage)
		}
		n := binary.LittleEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return nil, fmt.Errorf("%w: entry of %d bytes in %d", ErrBadImage, n, len(rest)-4)
		}
		msg, err := shiftUsernsEntry(rest[4:4+n], shift)
		if err != nil {
			return nil, err
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(msg)))
		out = append(out, msg...)
		rest = rest[4+n:]
	}
	return out, nil
}

// shiftUsernsEntry rewrites a UsernsEntry (images/userns.proto): repeated uid_map = 1 and
// gid_map = 2, each a UidGidExtent {first = 1, lower_first = 2, count = 3}. A field it does not
// know makes it refuse the image rather than drop or misread it.
func shiftUsernsEntry(m []byte, shift func(uint32) uint32) ([]byte, error) {
	var out []byte
	for len(m) > 0 {
		key, n := binary.Uvarint(m)
		if n <= 0 || key&7 != 2 || (key>>3 != 1 && key>>3 != 2) {
			return nil, fmt.Errorf("%w: unexpected field in userns entry", ErrBadImage)
		}
		m = m[n:]
		l, n := binary.Uvarint(m)
		if n <= 0 || l > uint64(len(m)-n) {
			return nil, fmt.Errorf("%w: bad extent length", ErrBadImage)
		}
		ext, err := shiftExtent(m[n:n+int(l)], shift)
		if err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, key)
		out = binary.AppendUvarint(out, uint64(len(ext)))
		out = append(out, ext...)
		m = m[n+int(l):]
	}
	return out, nil
}

func shiftExtent(m []byte, shift func(uint32) uint32) ([]byte, error) {
	var out []byte
	for len(m) > 0 {
		key, n := binary.Uvarint(m)
		if n <= 0 || key&7 != 0 || key>>3 < 1 || key>>3 > 3 {
			return nil, fmt.Errorf("%w: unexpected field in ID map extent", ErrBadImage)
		}
		m = m[n:]
		v, n := binary.Uvarint(m)
		if n <= 0 || v > 0xFFFFFFFF {
			return nil, fmt.Errorf("%w: bad ID map value", ErrBadImage)
		}
		m = m[n:]
		if key>>3 == 2 { // lower_first: a host ID
			v = uint64(shift(uint32(v)))
		}
		out = binary.AppendUvarint(out, key)
		out = binary.AppendUvarint(out, v)
	}
	return out, nil
}
