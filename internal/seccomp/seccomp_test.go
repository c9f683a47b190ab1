package seccomp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Other ABIs' audit values, for the "any other ABI" path.
const (
	auditArchAarch64 = 0xc00000b7
	auditArchArm     = 0x40000028
)

// expected is what the table means, written without BPF: the verdict the program must give.
func expected(table []Rule, d data) uint32 {
	var nrOf func(Rule) int
	switch d.arch {
	case auditArchX8664:
		if d.nr&x32SyscallBit != 0 {
			return retErrno | eperm
		}
		nrOf = func(r Rule) int { return r.Nr64 }
	case auditArchI386:
		nrOf = func(r Rule) int { return r.Nr32 }
	default:
		return retKillProcess
	}
	for _, r := range table {
		n := nrOf(r)
		if n == none || uint32(n) != d.nr {
			continue
		}
		if r.Cond == nil {
			return retErrno | eperm
		}
		low := uint32(d.args[r.Cond.Arg])
		if r.Cond.Bits && low&r.Cond.Value != 0 || !r.Cond.Bits && low == r.Cond.Value {
			return retErrno | eperm
		}
		return retAllow
	}
	return retAllow
}

func mustBuild(t testing.TB) []Insn {
	t.Helper()
	prog, err := Build(Table)
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

func check1(t testing.TB, prog []Insn, d data) {
	t.Helper()
	got, _, readArgs, err := run(prog, d)
	if err != nil {
		t.Fatalf("%+v: %v", d, err)
	}
	if want := expected(Table, d); got != want {
		t.Fatalf("%+v: program says %#x, table %#x", d, got, want)
	}
	// Only the conditional rules may read arguments: anything else would keep the kernel
	// from caching the verdict of an ordinary call.
	if readArgs && d.arch == auditArchX8664 && d.nr != 16 && d.nr != 166 ||
		readArgs && d.arch == auditArchI386 && d.nr != 54 && d.nr != 52 {
		t.Fatalf("%+v: the program reads an argument", d)
	}
}

// TestProgramMatchesTable runs the program on every number of every ABI, and on the
// conditional rules' arguments, and compares with the table's meaning.
func TestProgramMatchesTable(t *testing.T) {
	prog := mustBuild(t)
	arches := []uint32{auditArchX8664, auditArchI386, auditArchAarch64, auditArchArm, 0, 0xffffffff}
	for _, arch := range arches {
		for nr := uint32(0); nr < 2048; nr++ {
			check1(t, prog, data{nr: nr, arch: arch})
		}
		for _, nr := range []uint32{x32SyscallBit, x32SyscallBit | 39, x32SyscallBit | 246, x32SyscallBit | 16, 0x7fffffff, 0x80000000, 0xffffffff} {
			check1(t, prog, data{nr: nr, arch: arch})
		}
	}
	args := []uint64{0, 1, 2, 3, tiocsti, tiocsti | 1<<32, 0xffffffff00005412, 0x5413, 0x5401, 1 << 32, 0xffffffffffffffff}
	for _, r := range Table {
		if r.Cond == nil {
			continue
		}
		for _, nr := range []struct {
			arch uint32
			nr   int
		}{{auditArchX8664, r.Nr64}, {auditArchI386, r.Nr32}} {
			for _, a := range args {
				for i := range 6 {
					d := data{nr: uint32(nr.nr), arch: nr.arch}
					d.args[i] = a
					check1(t, prog, d)
				}
			}
		}
	}
}

// TestDeniedCalls spells out the verdicts the issue asks for, so that a table edit that loses
// one fails by name.
func TestDeniedCalls(t *testing.T) {
	prog := mustBuild(t)
	for _, c := range []struct {
		name string
		d    data
		want uint32
	}{
		{"kexec_load", data{nr: 246, arch: auditArchX8664}, retErrno | eperm},
		{"kexec_file_load", data{nr: 320, arch: auditArchX8664}, retErrno | eperm},
		{"init_module", data{nr: 175, arch: auditArchX8664}, retErrno | eperm},
		{"finit_module", data{nr: 313, arch: auditArchX8664}, retErrno | eperm},
		{"delete_module", data{nr: 176, arch: auditArchX8664}, retErrno | eperm},
		{"open_by_handle_at", data{nr: 304, arch: auditArchX8664}, retErrno | eperm},
		{"i386 kexec_load", data{nr: 283, arch: auditArchI386}, retErrno | eperm},
		{"i386 open_by_handle_at", data{nr: 342, arch: auditArchI386}, retErrno | eperm},
		{"x32 getpid", data{nr: x32SyscallBit | 39, arch: auditArchX8664}, retErrno | eperm},
		{"TIOCSTI", data{nr: 16, arch: auditArchX8664, args: [6]uint64{0, tiocsti}}, retErrno | eperm},
		{"TIOCSTI with high bits", data{nr: 16, arch: auditArchX8664, args: [6]uint64{0, 0xdead000000005412}}, retErrno | eperm},
		{"umount2 MNT_FORCE|MNT_DETACH", data{nr: 166, arch: auditArchX8664, args: [6]uint64{0, 3}}, retErrno | eperm},
		{"getpid", data{nr: 39, arch: auditArchX8664}, retAllow},
		{"i386 getpid", data{nr: 20, arch: auditArchI386}, retAllow},
		{"reboot (ends the VPS's init)", data{nr: 169, arch: auditArchX8664}, retAllow},
		{"mount", data{nr: 165, arch: auditArchX8664}, retAllow},
		{"name_to_handle_at (systemd uses it)", data{nr: 303, arch: auditArchX8664}, retAllow},
		{"TCGETS", data{nr: 16, arch: auditArchX8664, args: [6]uint64{0, 0x5401}}, retAllow},
		{"umount2 MNT_DETACH", data{nr: 166, arch: auditArchX8664, args: [6]uint64{0, 2}}, retAllow},
		{"aarch64 anything", data{nr: 39, arch: auditArchAarch64}, retKillProcess},
	} {
		got, _, _, err := run(prog, c.d)
		if err != nil || got != c.want {
			t.Errorf("%s: got %#x, %v; want %#x", c.name, got, err, c.want)
		}
	}
}

// TestCacheFriendly keeps the program within what the kernel's action-cache emulator
// understands (ld of nr and arch, ja, jeq, jset, ret), or every call would pay for the filter.
func TestCacheFriendly(t *testing.T) {
	for i, in := range mustBuild(t) {
		switch in.Code {
		case opLdAbsW, opJa, opJeqK, opJsetK, opRetK:
		default:
			t.Errorf("%d: %s: the kernel's cache emulator gives up on it", i, Disassemble(in))
		}
	}
}

func FuzzProgram(f *testing.F) {
	f.Add(uint32(246), uint8(0), uint64(0), uint64(0))
	f.Add(uint32(16), uint8(0), uint64(0), uint64(tiocsti))
	f.Add(uint32(54), uint8(1), uint64(0), uint64(tiocsti))
	f.Add(uint32(166), uint8(0), uint64(0), uint64(1))
	f.Add(uint32(x32SyscallBit|1), uint8(0), uint64(0), uint64(0))
	f.Add(uint32(1), uint8(2), uint64(0), uint64(0))
	prog := mustBuild(f)
	f.Fuzz(func(t *testing.T, nr uint32, arch uint8, a0, a1 uint64) {
		archs := []uint32{auditArchX8664, auditArchI386, auditArchAarch64}
		d := data{nr: nr, arch: archs[int(arch)%len(archs)], args: [6]uint64{a0, a1, a0, a1, a0, a1}}
		check1(t, prog, d)
	})
}

// TestGeneratedUpToDate: the committed header, which the C code includes, is what the table
// builds now (run `go generate ./internal/seccomp` after editing the table).
func TestGeneratedUpToDate(t *testing.T) {
	prog := mustBuild(t)
	path := filepath.Join(HeaderDir, HeaderName)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, CHeader(Table, prog)) {
		t.Errorf("%s is stale: run go generate ./internal/seccomp", path)
	}
}

func slicesEqual(a, b []Insn) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNumbersMatchHeaders checks every number in the table against the kernel headers the C
// code is compiled with (linux-libc-dev, which cgo's libc6-dev needs anyway).
func TestNumbersMatchHeaders(t *testing.T) {
	for _, abi := range []struct {
		file string
		nr   func(Rule) int
	}{
		{"/usr/include/x86_64-linux-gnu/asm/unistd_64.h", func(r Rule) int { return r.Nr64 }},
		{"/usr/include/x86_64-linux-gnu/asm/unistd_32.h", func(r Rule) int { return r.Nr32 }},
	} {
		nrs, err := readUnistd(abi.file)
		if err != nil {
			t.Fatalf("%v (install linux-libc-dev)", err)
		}
		for _, r := range Table {
			got, ok := nrs[r.Name]
			want := abi.nr(r)
			switch {
			case want == none && ok:
				t.Errorf("%s: %s has %s = %d, the table none", abi.file, r.Name, r.Name, got)
			case want != none && !ok:
				t.Errorf("%s: no %s (the table says %d)", abi.file, r.Name, want)
			case want != none && got != want:
				t.Errorf("%s: %s is %d, the table says %d", abi.file, r.Name, got, want)
			}
		}
	}
}

// readUnistd reads "#define __NR_name number" lines.
func readUnistd(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 3 || fs[0] != "#define" || !strings.HasPrefix(fs[1], "__NR_") {
			continue
		}
		if n, err := strconv.Atoi(fs[2]); err == nil {
			out[strings.TrimPrefix(fs[1], "__NR_")] = n
		}
	}
	return out, sc.Err()
}

func TestBuildRefuses(t *testing.T) {
	ok := Rule{Name: "a", Nr64: 1, Nr32: 2}
	for name, table := range map[string][]Rule{
		"repeated name":    {ok, {Name: "a", Nr64: 3, Nr32: none}},
		"empty name":       {{Name: "", Nr64: 3, Nr32: none}},
		"no number":        {{Name: "b", Nr64: none, Nr32: none}},
		"shared x86-64 nr": {ok, {Name: "b", Nr64: 1, Nr32: none}},
		"shared i386 nr":   {ok, {Name: "b", Nr64: none, Nr32: 2}},
		"negative nr":      {{Name: "b", Nr64: -5, Nr32: none}},
		"x32 nr":           {{Name: "b", Nr64: x32SyscallBit, Nr32: none}},
		"seventh argument": {{Name: "b", Nr64: 4, Nr32: none, Cond: &Cond{Arg: 6}}},
	} {
		if _, err := Build(table); !errors.Is(err, ErrBadTable) {
			t.Errorf("%s: got %v, want ErrBadTable", name, err)
		}
	}
	// A table too large for one program: 4096 instructions is the kernel's limit.
	var big []Rule
	for i := range 2100 {
		big = append(big, Rule{Name: "s" + strconv.Itoa(i), Nr64: i, Nr32: i})
	}
	if _, err := Build(big); !errors.Is(err, ErrBadTable) {
		t.Errorf("2100 rules: got %v, want ErrBadTable", err)
	}
	// An empty table allows everything on both ABIs and still kills other ABIs.
	prog, err := Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		d    data
		want uint32
	}{{data{nr: 246, arch: auditArchX8664}, retAllow}, {data{nr: 283, arch: auditArchI386}, retAllow}, {data{arch: auditArchArm}, retKillProcess}} {
		if got, _, _, err := run(prog, c.d); err != nil || got != c.want {
			t.Errorf("empty table, %+v: %#x %v", c.d, got, err)
		}
	}
}

func TestBytes(t *testing.T) {
	prog := []Insn{{Code: opJeqK, Jt: 2, Jf: 3, K: 0xc000003e}, {Code: opRetK, K: retAllow}}
	want := []byte{0x15, 0, 2, 3, 0x3e, 0, 0, 0xc0, 0x06, 0, 0, 0, 0, 0, 0xff, 0x7f}
	if got := Bytes(prog); !bytes.Equal(got, want) {
		t.Errorf("Bytes = % x, want % x", got, want)
	}
	if prog := mustBuild(t); len(Bytes(prog)) != 8*len(prog) {
		t.Errorf("Bytes of the program: %d bytes for %d instructions", len(Bytes(prog)), len(prog))
	}
}

// Bytes encodes prog as the kernel reads a struct sock_filter array on x86-64
// (little-endian, 8 bytes an instruction).
func Bytes(prog []Insn) []byte {
	b := make([]byte, 0, 8*len(prog))
	for _, in := range prog {
		b = binary.LittleEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.LittleEndian.AppendUint32(b, in.K)
	}
	return b
}
