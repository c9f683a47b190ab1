package cgroup

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// This file talks to the kernel's bpf(2) directly: five commands and a program of six kinds
// of instruction. It used cilium/ebpf, the field's library for everything else BPF; that
// library and its dependencies are 16 packages whose initialisation every vpsctl command paid
// (0.2 ms of a 1.7 ms `vpsctl status` here) for this one function, run by a boot on cgroup v2
// hosts only. crun does the same in C. The package's tests still check the result with
// cilium/ebpf (a test dependency only), and check the filter's effect on real processes.

// setDevicesBPF makes rules the device allowlist of the v2 group at dir.
// Cgroup v2 has no devices files: the kernel asks the BPF_CGROUP_DEVICE
// programs attached to the group (and its ancestors; all must allow) on
// every open and mknod of a device node.
//
// The program is attached with BPF_PROG_ATTACH, not a bpf_link: such an
// attachment lives as long as the group, while a link would go away with
// this short-lived process. The new program is attached before the old ones
// are detached, so the group is never without a filter; in between, an
// access must pass both.
func setDevicesBPF(dir string, rules []DeviceRule) error {
	prog, err := loadDeviceFilter(deviceFilter(rules))
	if err != nil {
		return fmt.Errorf("load device filter for %s: %w", dir, err)
	}
	defer unix.Close(prog)

	var fd int
	err = sysfile.Retry(func() (err error) {
		fd, err = unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)

	old, err := queryDevicePrograms(fd)
	if err != nil {
		return fmt.Errorf("%s: query device filters: %w", dir, err)
	}
	if err := attachDetach(unix.BPF_PROG_ATTACH, fd, prog, unix.BPF_F_ALLOW_MULTI); err != nil {
		return fmt.Errorf("attach device filter to %s: %w", dir, err)
	}
	for _, id := range old {
		op, err := progFDByID(id)
		if err != nil {
			return fmt.Errorf("%s: old device filter %d: %w", dir, id, err)
		}
		err = attachDetach(unix.BPF_PROG_DETACH, fd, op, 0)
		unix.Close(op)
		if err != nil {
			return fmt.Errorf("detach old device filter %d from %s: %w", id, dir, err)
		}
	}
	return nil
}

// The bpf(2) attributes of the commands used here (union bpf_attr's members; the kernel
// accepts a shorter union and zero-fills the rest).
type progLoadAttr struct {
	progType    uint32
	insnCnt     uint32
	insns       uint64
	license     uint64
	logLevel    uint32
	logSize     uint32
	logBuf      uint64
	kernVersion uint32
	progFlags   uint32
	progName    [unix.BPF_OBJ_NAME_LEN]byte
}

type attachAttr struct {
	targetFD    uint32
	attachBPFFD uint32
	attachType  uint32
	attachFlags uint32
}

type queryAttr struct {
	targetFD    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     uint64
	progCnt     uint32
	_           uint32
}

type getIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
		if errno == unix.EINTR || errno == unix.EAGAIN && cmd == unix.BPF_PROG_LOAD {
			continue // the verifier may ask to be called again
		}
		if errno != 0 {
			return -1, errno
		}
		return int(r), nil
	}
}

// loadDeviceFilter loads insns as a BPF_PROG_TYPE_CGROUP_DEVICE program and returns its fd.
// A program the verifier refuses comes back with the verifier's log in the error.
func loadDeviceFilter(insns []byte) (int, error) {
	license := []byte("Apache-2.0\x00")
	attr := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(insns) / 8),
		insns:    uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
	}
	copy(attr.progName[:], "vpsctl_devices")
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err == unix.EACCES || err == unix.EINVAL {
		// Again, with the verifier's account of why (a load that works this time is kept).
		log := make([]byte, 1<<16)
		attr.logLevel, attr.logSize, attr.logBuf = 1, uint32(len(log)), uint64(uintptr(unsafe.Pointer(&log[0])))
		if fd, err = bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
			n := 0
			for n < len(log) && log[n] != 0 {
				n++
			}
			err = fmt.Errorf("%w (verifier: %q)", err, log[:n])
		}
		runtime.KeepAlive(log)
	}
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	return fd, err
}

// queryDevicePrograms lists the IDs of the device programs attached to the group open as fd.
func queryDevicePrograms(fd int) ([]uint32, error) {
	ids := make([]uint32, 64)
	attr := queryAttr{targetFD: uint32(fd), attachType: unix.BPF_CGROUP_DEVICE,
		progIDs: uint64(uintptr(unsafe.Pointer(&ids[0]))), progCnt: uint32(len(ids))}
	_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(ids)
	if err != nil {
		return nil, err
	}
	return ids[:min(int(attr.progCnt), len(ids))], nil
}

func attachDetach(cmd, target, prog int, flags uint32) error {
	attr := attachAttr{targetFD: uint32(target), attachBPFFD: uint32(prog), attachType: unix.BPF_CGROUP_DEVICE, attachFlags: flags}
	_, err := bpf(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

func progFDByID(id uint32) (int, error) {
	attr := getIDAttr{id: id}
	return bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

// BPF instructions (struct bpf_insn: opcode, dst and src registers, 16-bit offset, 32-bit
// immediate), the few a device filter needs. Registers: R0 the result, R1 the context.
const (
	r0, r1, r2, r3, r4, r5 = 0, 1, 2, 3, 4, 5

	opLdxW    = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W   // dst = *(u32 *)(src + off)
	opAnd32K  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K   // dst &= imm
	opRsh32K  = unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K   // dst >>= imm
	opMov32K  = unix.BPF_ALU | unix.BPF_MOV | unix.BPF_K   // dst = imm
	opMov32X  = unix.BPF_ALU | unix.BPF_MOV | unix.BPF_X   // dst = src
	opJne32K  = unix.BPF_JMP32 | unix.BPF_JNE | unix.BPF_K // if dst != imm: pc += off
	opExit    = unix.BPF_JMP | unix.BPF_EXIT               // return R0
	allAccess = unix.BPF_DEVCG_ACC_MKNOD | unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE
)

type insn struct {
	op       uint8
	dst, src uint8
	off      int16
	imm      int32
	jumpTo   int // for jumps: the index of the rule block to go to (see deviceFilter)
}

// deviceFilter compiles rules into a BPF_PROG_TYPE_CGROUP_DEVICE program:
// the first matching rule allows (returns 1), no match denies (0).
func deviceFilter(rules []DeviceRule) []byte {
	// R1 points to struct bpf_cgroup_dev_ctx {u32 access_type; u32 major;
	// u32 minor;}, access_type being access<<16 | type.
	prog := []insn{
		{op: opLdxW, dst: r2, src: r1, off: 0},
		{op: opAnd32K, dst: r2, imm: 0xffff}, // R2: type
		{op: opLdxW, dst: r3, src: r1, off: 0},
		{op: opRsh32K, dst: r3, imm: 16}, // R3: access bits
		{op: opLdxW, dst: r4, src: r1, off: 4},
		{op: opLdxW, dst: r5, src: r1, off: 8},
	}
	// Rule i's block starts at start[i]; a failed test jumps to rule i+1's (block len(rules)
	// being the final deny).
	start := make([]int, len(rules)+1)
	complete := false
	for i, r := range rules {
		start[i] = len(prog)
		next := i + 1
		var b []insn
		if r.Type != 'a' {
			t := int32(unix.BPF_DEVCG_DEV_CHAR)
			if r.Type == 'b' {
				t = unix.BPF_DEVCG_DEV_BLOCK
			}
			b = append(b, insn{op: opJne32K, dst: r2, imm: t, jumpTo: next})
		}
		if acc := accessBits(r.Access); acc != allAccess {
			// Deny unless every requested access bit is in the rule.
			b = append(b, insn{op: opMov32X, dst: r1, src: r3}, insn{op: opAnd32K, dst: r1, imm: ^acc},
				insn{op: opJne32K, dst: r1, imm: 0, jumpTo: next})
		}
		if r.Major >= 0 {
			b = append(b, insn{op: opJne32K, dst: r4, imm: int32(r.Major), jumpTo: next})
		}
		if r.Minor >= 0 {
			b = append(b, insn{op: opJne32K, dst: r5, imm: int32(r.Minor), jumpTo: next})
		}
		unconditional := len(b) == 0
		prog = append(prog, append(b, insn{op: opMov32K, dst: r0, imm: 1}, insn{op: opExit})...)
		if unconditional {
			complete = true // the verifier refuses the unreachable rest
			break
		}
	}
	if !complete {
		start[len(rules)] = len(prog)
		prog = append(prog, insn{op: opMov32K, dst: r0, imm: 0}, insn{op: opExit})
	}
	out := make([]byte, 0, 8*len(prog))
	for pc, in := range prog {
		if in.op == opJne32K {
			in.off = int16(start[in.jumpTo] - (pc + 1))
		}
		out = append(out, in.op, in.src<<4|in.dst&0xf)
		out = binary.LittleEndian.AppendUint16(out, uint16(in.off))
		out = binary.LittleEndian.AppendUint32(out, uint32(in.imm))
	}
	return out
}

func accessBits(access string) int32 {
	var acc int32
	for _, c := range access {
		switch c {
		case 'm':
			acc |= unix.BPF_DEVCG_ACC_MKNOD
		case 'r':
			acc |= unix.BPF_DEVCG_ACC_READ
		case 'w':
			acc |= unix.BPF_DEVCG_ACC_WRITE
		}
	}
	return acc
}
