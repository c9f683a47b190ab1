package cgroup

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// ciliumDeviceFilter is deviceFilter as it was written with cilium/ebpf's assembler (before
// this package stopped linking the library): the reference the hand encoding must match.
func ciliumDeviceFilter(rules []DeviceRule) asm.Instructions {
	label := func(i int) string { return fmt.Sprintf("rule%d", i) }
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.And.Imm32(asm.R2, 0xffff),
		asm.LoadMem(asm.R3, asm.R1, 0, asm.Word),
		asm.RSh.Imm32(asm.R3, 16),
		asm.LoadMem(asm.R4, asm.R1, 4, asm.Word),
		asm.LoadMem(asm.R5, asm.R1, 8, asm.Word),
	}
	for i, r := range rules {
		next := label(i + 1)
		var b asm.Instructions
		if r.Type != 'a' {
			t := int32(unix.BPF_DEVCG_DEV_CHAR)
			if r.Type == 'b' {
				t = unix.BPF_DEVCG_DEV_BLOCK
			}
			b = append(b, asm.JNE.Imm32(asm.R2, t, next))
		}
		if acc := accessBits(r.Access); acc != allAccess {
			b = append(b, asm.Mov.Reg32(asm.R1, asm.R3), asm.And.Imm32(asm.R1, ^acc), asm.JNE.Imm32(asm.R1, 0, next))
		}
		if r.Major >= 0 {
			b = append(b, asm.JNE.Imm32(asm.R4, int32(r.Major), next))
		}
		if r.Minor >= 0 {
			b = append(b, asm.JNE.Imm32(asm.R5, int32(r.Minor), next))
		}
		unconditional := len(b) == 0
		b = append(b, asm.Mov.Imm32(asm.R0, 1), asm.Return())
		b[0] = b[0].WithSymbol(label(i))
		insns = append(insns, b...)
		if unconditional {
			return insns
		}
	}
	return append(insns, asm.Mov.Imm32(asm.R0, 0).WithSymbol(label(len(rules))), asm.Return())
}

// TestDeviceFilterEncoding: the hand-encoded program is, byte for byte, what cilium/ebpf's
// assembler makes of the same rules.
func TestDeviceFilterEncoding(t *testing.T) {
	for _, rules := range [][]DeviceRule{
		nil,
		deviceRules,
		{{'a', -1, -1, "rwm"}},
		{{'c', 1, 3, "rwm"}, {'a', -1, -1, "rwm"}, {'c', 5, 0, "r"}},
		{{'b', 8, -1, "rw"}, {'c', -1, -1, "m"}, {'c', 136, -1, "rwm"}, {'c', 10, 200, "rw"}},
	} {
		var want bytes.Buffer
		if err := ciliumDeviceFilter(rules).Marshal(&want, binary.LittleEndian); err != nil {
			t.Fatal(err)
		}
		if got := deviceFilter(rules); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("rules %v:\n got %x\nwant %x", rules, got, want.Bytes())
		}
	}
}

// TestLoadDeviceFilterRefused: a program the verifier refuses (here one that falls off its
// end without an exit) is an error quoting the verifier's log, and leaves no program fd.
func TestLoadDeviceFilterRefused(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("bpf(2) needs root")
	}
	before := openFDs(t)
	// mov32 r0, 1 — and no exit.
	fd, err := loadDeviceFilter([]byte{opMov32K, r0, 0, 0, 1, 0, 0, 0})
	if err == nil {
		unix.Close(fd)
		t.Fatal("the verifier accepted a program without an exit")
	}
	if !bytes.Contains([]byte(err.Error()), []byte("verifier")) {
		t.Errorf("error %q does not quote the verifier", err)
	}
	if after := openFDs(t); after != before {
		t.Errorf("open descriptors %d before, %d after a refused load", before, after)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
