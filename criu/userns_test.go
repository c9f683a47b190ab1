package criu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// usernsImg is the userns-11.img of a dumped VPS with range 1000000:65536 (criu 4.2.1).
const usernsImg = "1943565406494755180000000a0a08001" + "0c0843d1880800412" + "0a080010c0843d18808004"

func shiftBy(d uint32) func(uint32) uint32 {
	return func(id uint32) uint32 {
		if id >= 1000000 && id < 1065536 {
			return id + d
		}
		return id
	}
}

func TestShiftUserns(t *testing.T) {
	in, _ := hex.DecodeString(usernsImg)
	out, err := shiftUsernsImage(in, shiftBy(131072))
	if err != nil {
		t.Fatal(err)
	}
	// 1131072 is 0xc0 0x84 0x45 as a varint: same length.
	want, _ := hex.DecodeString("1943565406494755180000000a0a080010c084451880800412" + "0a080010c0844518808004")
	if !bytes.Equal(out, want) {
		t.Errorf("shifted image\n %x\nwant\n %x", out, want)
	}
	back, err := shiftUsernsImage(out, func(id uint32) uint32 { return id - 131072*map[bool]uint32{true: 1}[id >= 1131072] })
	if err != nil || !bytes.Equal(back, in) {
		t.Errorf("shift back: %x, %v", back, err)
	}
	// A range whose varint is longer (2^28: five bytes, not three) changes the sizes.
	long, err := shiftUsernsImage(in, func(uint32) uint32 { return 1 << 28 })
	if err != nil || len(long) != len(in)+4 {
		t.Errorf("longer varints: %d bytes, %v", len(long), err)
	}
	for _, bad := range []string{"", "19435654", "1943565406494755ff000000", "19435654064947550300000008012a"} {
		b, _ := hex.DecodeString(bad)
		if _, err := shiftUsernsImage(b, shiftBy(1)); !errors.Is(err, ErrBadImage) {
			t.Errorf("image %s: %v, want ErrBadImage", bad, err)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "userns-11.img"), in, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ShiftUserns(dir, shiftBy(131072)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "userns-11.img")); !bytes.Equal(got, want) {
		t.Errorf("ShiftUserns wrote %x", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "userns-12.img"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ShiftUserns(dir, shiftBy(1)); !errors.Is(err, ErrBadImage) {
		t.Errorf("junk image: %v", err)
	}
}

func FuzzShiftUserns(f *testing.F) {
	in, _ := hex.DecodeString(usernsImg)
	f.Add(in)
	f.Fuzz(func(t *testing.T, b []byte) { shiftUsernsImage(b, shiftBy(7)) })
}
