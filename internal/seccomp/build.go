package seccomp

import (
	"errors"
	"fmt"
)

// Insn is one classic-BPF instruction, laid out as the kernel's struct sock_filter
// (<linux/filter.h>): code, jt, jf, k.
type Insn struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}

// Classic-BPF opcodes the filter uses (<linux/bpf_common.h>).
const (
	opLdAbsW = 0x20 // BPF_LD | BPF_W | BPF_ABS: A = 32-bit word at offset k of seccomp_data
	opJa     = 0x05 // BPF_JMP | BPF_JA: pc += k
	opJeqK   = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	opJgeK   = 0x35 // BPF_JMP | BPF_JGE | BPF_K
	opJsetK  = 0x45 // BPF_JMP | BPF_JSET | BPF_K
	opRetK   = 0x06 // BPF_RET | BPF_K
)

// maxInsns is BPF_MAXINSNS: the kernel refuses longer programs.
const maxInsns = 4096

// ErrBadTable reports a deny table Build cannot turn into a correct program.
var ErrBadTable = errors.New("bad seccomp table")

// Build compiles a deny table into the filter program described in the package doc.
func Build(table []Rule) ([]Insn, error) {
	if err := check(table); err != nil {
		return nil, err
	}
	native, err := block(table, func(r Rule) int { return r.Nr64 }, true)
	if err != nil {
		return nil, err
	}
	compat, err := block(table, func(r Rule) int { return r.Nr32 }, false)
	if err != nil {
		return nil, err
	}
	// Dispatch on the ABI, the native one first (two instructions). The i386 block is reached
	// with BPF_JA, whose 32-bit offset has room for any size; conditional jumps have 8 bits.
	const head = 5
	prog := []Insn{
		{Code: opLdAbsW, K: offArch},
		{Code: opJeqK, Jt: head - 2, Jf: 0, K: auditArchX8664},
		{Code: opJeqK, Jt: 0, Jf: 1, K: auditArchI386},
		{Code: opJa, K: uint32(head + len(native) - 4)}, // from pc 4 to the i386 block
		{Code: opRetK, K: retKillProcess},               // no other ABI exists on an x86-64 kernel
	}
	prog = append(prog, native...)
	prog = append(prog, compat...)
	if len(prog) > maxInsns {
		return nil, fmt.Errorf("%w: %d instructions, the kernel takes %d", ErrBadTable, len(prog), maxInsns)
	}
	return prog, nil
}

// check refuses a table whose program would not mean what the table says.
func check(table []Rule) error {
	names := map[string]bool{}
	seen := [2]map[int]string{{}, {}}
	for _, r := range table {
		if r.Name == "" || names[r.Name] {
			return fmt.Errorf("%w: empty or repeated name %q", ErrBadTable, r.Name)
		}
		names[r.Name] = true
		if r.Nr64 == none && r.Nr32 == none {
			return fmt.Errorf("%w: %s has no number on any ABI", ErrBadTable, r.Name)
		}
		if r.Cond != nil && r.Cond.Arg > 5 {
			return fmt.Errorf("%w: %s: argument %d (a system call has 6)", ErrBadTable, r.Name, r.Cond.Arg)
		}
		for i, nr := range []int{r.Nr64, r.Nr32} {
			if nr == none {
				continue
			}
			if nr < 0 || nr >= x32SyscallBit {
				return fmt.Errorf("%w: %s: number %d out of range", ErrBadTable, r.Name, nr)
			}
			if other, dup := seen[i][nr]; dup {
				// A second rule would never be reached: the first one decides the call.
				return fmt.Errorf("%w: %s and %s share number %d", ErrBadTable, other, r.Name, nr)
			}
			seen[i][nr] = r.Name
		}
	}
	return nil
}

// block emits the checks of one ABI: A is loaded with nr (with x32, numbers with
// __X32_SYSCALL_BIT are denied first), then a search on the bits of nr (jset) down to leaves
// of at most leafSize rules, tested with jeq one after another; a leaf ends in allow.
//
// Why bits and jset, not a list or a jge tree: when a filter is installed the kernel
// emulates it for every syscall number of both ABIs (seccomp_cache_prepare_bitmap) and then
// skips it for the numbers it always allows; the emulator knows ld, ja, jeq, jset and and,
// and gives up on anything else, jge included (then nothing is cached and every call runs the
// filter). The install is paid on every exec: with a linear list of the 36 rules it took
// 0.13 ms here, with this search 0.07 ms (a one-instruction filter: 0.02 ms), and every
// allowed call but ioctl and umount2 is then cached.
func block(table []Rule, nr func(Rule) int, x32 bool) ([]Insn, error) {
	var es []entry
	for _, r := range table {
		if n := nr(r); n != none {
			es = append(es, entry{uint32(n), r.Cond})
		}
	}
	out := []Insn{{Code: opLdAbsW, K: offNr}}
	if x32 {
		out = append(out, Insn{Code: opJsetK, Jt: 0, Jf: 1, K: x32SyscallBit}, denyInsn)
	}
	t, err := search(es, 30)
	if err != nil {
		return nil, err
	}
	return append(out, t...), nil
}

type entry struct {
	nr   uint32
	cond *Cond
}

var (
	denyInsn  = Insn{Code: opRetK, K: retErrno | eperm}
	allowInsn = Insn{Code: opRetK, K: retAllow}
)

// search emits the checks of es, all of whose numbers agree on the bits above bit. A jset only
// steers toward the right leaf; the leaves compare the whole number, so a skipped bit never
// makes a rule match a call it does not name.
func search(es []entry, bit int) ([]Insn, error) {
	for ; bit >= 0 && len(es) > leafSize; bit-- {
		var zeros, ones []entry
		for _, e := range es {
			if e.nr&(1<<bit) != 0 {
				ones = append(ones, e)
			} else {
				zeros = append(zeros, e)
			}
		}
		if len(zeros) == 0 || len(ones) == 0 {
			continue // no split on this bit
		}
		lo, err := search(zeros, bit-1)
		if err != nil {
			return nil, err
		}
		hi, err := search(ones, bit-1)
		if err != nil {
			return nil, err
		}
		if len(lo) > 255 {
			return nil, fmt.Errorf("%w: a branch of %d instructions is past the 8-bit jump of classic BPF", ErrBadTable, len(lo))
		}
		out := []Insn{{Code: opJsetK, Jt: uint8(len(lo)), Jf: 0, K: 1 << bit}}
		out = append(out, lo...)
		return append(out, hi...), nil
	}
	// A leaf: the unconditional rules jump to one shared denial at its end.
	var uncond, cond []entry
	for _, e := range es {
		if e.cond == nil {
			uncond = append(uncond, e)
		} else {
			cond = append(cond, e)
		}
	}
	var out []Insn
	for i, e := range uncond {
		// Past the rest of the unconditional tests, the conditional blocks (5 each) and
		// the leaf's allow, to its denial.
		out = append(out, Insn{Code: opJeqK, Jt: uint8(len(uncond) - 1 - i + 5*len(cond) + 1), Jf: 0, K: e.nr})
	}
	for _, e := range cond {
		// A now holds an argument, not nr: this call is decided here, whatever the argument.
		test := Insn{Code: opJeqK, Jt: 0, Jf: 1, K: e.cond.Value}
		if e.cond.Bits {
			test.Code = opJsetK
		}
		out = append(out,
			Insn{Code: opJeqK, Jt: 0, Jf: 4, K: e.nr},
			Insn{Code: opLdAbsW, K: argLow(e.cond.Arg)},
			test, denyInsn, allowInsn)
	}
	out = append(out, allowInsn)
	if len(uncond) > 0 {
		out = append(out, denyInsn)
	}
	return out, nil
}

// leafSize is the most rules a leaf of the search tests one after another: larger leaves make
// a shorter program (cheaper to install), smaller ones shorter paths (cheaper to emulate);
// 8 was the fastest install of 2, 4 and 8.
const leafSize = 8

// argLow is the offset of the low 32 bits of args[i] in seccomp_data on a little-endian
// machine. The kernel reads an unsigned int argument from those bits alone, so a caller
// cannot slip past the test by setting the high ones.
func argLow(i uint8) uint32 { return offArgs + 8*uint32(i) }
