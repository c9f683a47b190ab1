package runtime

import (
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/store"
)

// Limits are resource settings as the user wrote them (vzctl style); nil = not given.
type Limits struct {
	Memory, Swap, CPUs, CPULimit, CPUUnits, NumProc, IOLimit, IOWeight *string
}

// apply copies the given limits into c after validating every one, so a bad value changes
// nothing.
func (l Limits) apply(c *store.Config) error {
	next := *c
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&next.Memory, l.Memory)
	set(&next.Swap, l.Swap)
	set(&next.CPUs, l.CPUs)
	set(&next.CPULimit, l.CPULimit)
	set(&next.CPUUnits, l.CPUUnits)
	set(&next.NumProc, l.NumProc)
	set(&next.IOLimit, l.IOLimit)
	set(&next.IOWeight, l.IOWeight)
	if _, err := spec.Resources(&next); err != nil {
		return err
	}
	*c = next
	return nil
}

// Empty reports whether no limit is given.
func (l Limits) Empty() bool {
	return l.Memory == nil && l.Swap == nil && l.CPUs == nil && l.CPULimit == nil &&
		l.CPUUnits == nil && l.NumProc == nil && l.IOLimit == nil && l.IOWeight == nil
}
