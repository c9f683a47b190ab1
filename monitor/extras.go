package monitor

import (
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/store"
)

// DeviceTargets are where VPS c's device nodes (its --devices and features, bound in from
// nodes in its directory) are, absolute paths inside it: a checkpoint leaves them out of the
// dump and its restore binds them again (External.Device), as it does LXCFS's views and bind
// mounts.
func DeviceTargets(c *store.Config) ([]string, error) {
	devs, err := spec.Devices(c)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range devs {
		if d.Rule.Major >= 0 && d.Rule.Minor >= 0 && d.Rule.Type != 'a' {
			out = append(out, "/"+deviceTarget(d))
		}
	}
	return out, nil
}
