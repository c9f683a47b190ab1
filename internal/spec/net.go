package spec

import (
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/store"
)

// Net builds the network package's view of c.
func Net(c *store.Config) (network.Config, error) {
	var nc network.Config
	for _, s := range c.IPs {
		p, err := network.ParseIP(s)
		if err != nil {
			return nc, err
		}
		nc.IPs = append(nc.IPs, p)
	}
	for _, s := range c.NetIfs {
		ni, err := network.ParseNetIf(s)
		if err != nil {
			return nc, err
		}
		nc.NetIfs = append(nc.NetIfs, ni)
	}
	return nc, nil
}
