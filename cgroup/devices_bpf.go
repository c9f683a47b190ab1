package cgroup

import (
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

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
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.CGroupDevice,
		License:      "Apache-2.0",
		Instructions: deviceFilter(rules),
	})
	if err != nil {
		return fmt.Errorf("load device filter for %s: %w", dir, err)
	}
	defer prog.Close()

	var fd int
	err = ignoringEINTR(func() (err error) {
		fd, err = unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)

	old, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	err = link.RawAttachProgram(link.RawAttachProgramOptions{
		Target: fd, Program: prog, Attach: ebpf.AttachCGroupDevice, Flags: unix.BPF_F_ALLOW_MULTI,
	})
	if err != nil {
		return fmt.Errorf("attach device filter to %s: %w", dir, err)
	}
	for _, p := range old.Programs {
		op, err := ebpf.NewProgramFromID(p.ID)
		if err != nil {
			return fmt.Errorf("%s: old device filter %d: %w", dir, p.ID, err)
		}
		err = link.RawDetachProgram(link.RawDetachProgramOptions{Target: fd, Program: op, Attach: ebpf.AttachCGroupDevice})
		op.Close()
		if err != nil {
			return fmt.Errorf("detach old device filter %d from %s: %w", p.ID, dir, err)
		}
	}
	return nil
}

// deviceFilter compiles rules into a BPF_PROG_TYPE_CGROUP_DEVICE program:
// the first matching rule allows (returns 1), no match denies (0).
func deviceFilter(rules []DeviceRule) asm.Instructions {
	label := func(i int) string { return fmt.Sprintf("rule%d", i) }
	// R1 points to struct bpf_cgroup_dev_ctx {u32 access_type; u32 major;
	// u32 minor;}, access_type being access<<16 | type.
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.And.Imm32(asm.R2, 0xffff), // R2: type
		asm.LoadMem(asm.R3, asm.R1, 0, asm.Word),
		asm.RSh.Imm32(asm.R3, 16), // R3: access bits
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
			// Deny unless every requested access bit is in the rule.
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
			return insns // the verifier refuses the unreachable rest
		}
	}
	return append(insns, asm.Mov.Imm32(asm.R0, 0).WithSymbol(label(len(rules))), asm.Return())
}

const allAccess = unix.BPF_DEVCG_ACC_MKNOD | unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE

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
