package fleet

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrBadValue is an ONBOOT or BOOTORDER value (vps.conf, --onboot, --bootorder) that cannot
// be used. The CLI maps it to exit code 21.
var ErrBadValue = errors.New("bad value")

// MaxBootOrder bounds BOOTORDER (vzctl takes an unsigned number; this keeps it an int on
// every platform and leaves room to sort).
const MaxBootOrder = 1<<31 - 1

// ParseOnBoot reads vzctl's ONBOOT value: "yes" or "no" (what --onboot takes and vps.conf
// stores); "" (not set) is no.
func ParseOnBoot(s string) (bool, error) {
	switch s {
	case "yes":
		return true, nil
	case "no", "":
		return false, nil
	}
	return false, fmt.Errorf("onboot %q: want yes or no: %w", s, ErrBadValue)
}

// ParseBootOrder reads vzctl's BOOTORDER value: a number 0..MaxBootOrder in plain decimal
// (no sign, no leading zeros); "" (not set) is 0, booted last.
func ParseBootOrder(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("bootorder %q: want a number 0..%d: %w", s, MaxBootOrder, ErrBadValue)
	}
	return int(n), nil
}

// FromConfig makes the VPS of ID id from its vps.conf values (ONBOOT, BOOTORDER as stored).
func FromConfig(id uint32, name, onboot, bootorder string) (VPS, error) {
	on, err := ParseOnBoot(onboot)
	if err != nil {
		return VPS{}, fmt.Errorf("VPS %d: %w", id, err)
	}
	bo, err := ParseBootOrder(bootorder)
	if err != nil {
		return VPS{}, fmt.Errorf("VPS %d: %w", id, err)
	}
	return VPS{ID: id, Name: name, OnBoot: on, BootOrder: bo}, nil
}
