package seccomp

import (
	"encoding/binary"
	"fmt"
)

// data is the part of struct seccomp_data the filter reads.
type data struct {
	nr   uint32
	arch uint32
	args [6]uint64
}

// word returns the 32-bit word at offset off of the little-endian struct seccomp_data.
func (d data) word(off uint32) (uint32, error) {
	var b [64]byte
	binary.LittleEndian.PutUint32(b[0:], d.nr)
	binary.LittleEndian.PutUint32(b[4:], d.arch)
	for i, a := range d.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	if off%4 != 0 || off+4 > uint32(len(b)) {
		return 0, fmt.Errorf("load at offset %d", off)
	}
	return binary.LittleEndian.Uint32(b[off:]), nil
}

// run executes prog on d as the kernel's classic-BPF interpreter would, for the instructions
// Build emits, and returns the action, how many instructions ran and whether an argument was
// read (which keeps the kernel from caching the call's verdict). Anything else, a jump
// out of the program, or falling off its end is an error (the kernel's checker refuses such
// programs).
func run(prog []Insn, d data) (ret uint32, steps int, readArgs bool, err error) {
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		steps++
		in := prog[pc]
		jump := func(cond bool) {
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		}
		switch in.Code {
		case opLdAbsW:
			readArgs = readArgs || in.K >= offArgs
			if a, err = d.word(in.K); err != nil {
				return 0, steps, readArgs, err
			}
		case opJa:
			pc += int(in.K)
		case opJeqK:
			jump(a == in.K)
		case opJgeK:
			jump(a >= in.K)
		case opJsetK:
			jump(a&in.K != 0)
		case opRetK:
			return in.K, steps, readArgs, nil
		default:
			return 0, steps, readArgs, fmt.Errorf("pc %d: unknown opcode %#x", pc, in.Code)
		}
		if pc+1 > len(prog) {
			return 0, steps, readArgs, fmt.Errorf("pc %d: jump past the end", pc)
		}
	}
	return 0, steps, readArgs, fmt.Errorf("fell off the end of the program")
}
