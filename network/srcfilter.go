package network

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// Source-address validation for routed interfaces.
//
// The kernel's own check is IPv4's rp_filter, whose effective value is the
// larger of net.ipv4.conf.all.rp_filter and the interface's: a host with
// all.rp_filter=2 (loose) lets a VPS send with another VPS's address, since
// that address is routable. IPv6 has no such check at all. So vpsctl keeps a
// netfilter table of its own, whatever the host's sysctls say:
//
//	table inet vpsctl {
//		map srcguard { type ifname : verdict; elements = { "vps303" : jump vps303, ... } }
//		chain prerouting {
//			type filter hook prerouting priority raw; policy accept;
//			iifname vmap @srcguard
//		}
//		chain vps303 {
//			ip saddr { 198.18.0.33 } accept
//			ip6 saddr { fd42:1::33 } accept
//			ip6 saddr fe80::/10 accept
//			ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld-listener-report, mld2-listener-report } accept
//			counter drop
//		}
//	}
//
// A packet that arrives on vps<ID> from a source that is not one of VPS ID's
// routed addresses is dropped before conntrack sees it (priority raw). Link-
// local sources stay allowed (neighbour discovery, MLD; the kernel never
// forwards a packet with a link-local source off its link), and so does the
// unspecified source for duplicate address detection and MLD before an
// address exists. ARP is not IP and does not pass here: the host routes each
// VPS address to its vps<ID> alone, so an ARP lie there reaches nobody else.
//
// Every change is one `nft -f -` transaction: the kernel applies all of it or
// none, and no packet sees a half-written chain. The chain is keyed by the ID
// and its interface name derived from it (HostIfName), so a caller cannot
// attach one VPS's addresses to another's interface. Bridged interfaces
// (NetIf) are not filtered: a VPS with one is trusted with that L2 segment.

// nftTable is vpsctl's table; nothing else of the host's ruleset is touched.
const nftTable = "inet vpsctl"

// nftLock serializes vpsctl's changes to its table among processes, so that
// RemoveSourceFilter's "last chain gone: delete the table" cannot race a
// concurrent SetSourceFilter (which would lose that VPS's filter).
const nftLock = "/run/vpsctl-nftables.lock"

// nftTimeout bounds one nft run (it takes milliseconds).
const nftTimeout = 30 * time.Second

// ErrNoNftables reports that the nft command is missing.
var ErrNoNftables = errors.New("nft not found: install Debian's nftables package (apt-get install nftables)")

// nftPath finds nft; a variable so that the tests can take it away.
var nftPath = func() (string, error) {
	if p, err := exec.LookPath("nft"); err == nil {
		return p, nil
	}
	// Callers' PATHs often lack /usr/sbin.
	for _, p := range []string{"/usr/sbin/nft", "/sbin/nft"} {
		if unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	return "", ErrNoNftables
}

// CheckNftables reports ErrNoNftables when nft is missing: a VPS with routed
// addresses cannot start without it.
func CheckNftables() error {
	_, err := nftPath()
	return err
}

// SetSourceFilter makes addrs the only sources accepted from VPS id's routed
// interface (HostIfName(id)), replacing what it accepted before. With no
// addresses only link-local and unspecified sources pass. It is idempotent,
// and may run before the interface exists (the match is by name).
func SetSourceFilter(id container.ID, addrs []netip.Addr) error {
	script, err := sourceFilterScript(id, addrs)
	if err != nil {
		return err
	}
	return withNftLock(func() error { return nft(script) })
}

// RemoveSourceFilter removes VPS id's chain, and the table once no VPS has one
// left. It is idempotent.
func RemoveSourceFilter(id container.ID) error {
	return withNftLock(func() error {
		if err := nft(removeFilterScript(id)); err != nil {
			return err
		}
		out, err := nftOutput("-j", "list", "table", "inet", "vpsctl")
		if err != nil {
			return err
		}
		chains, err := parseNftChains(out)
		if err != nil {
			return fmt.Errorf("read nftables table %s: %w", nftTable, err)
		}
		if slices.ContainsFunc(chains, func(c string) bool { return c != "prerouting" }) {
			return nil
		}
		return nft("delete table " + nftTable + "\n")
	})
}

func chainName(id container.ID) string { return "vps" + strconv.FormatUint(uint64(id), 10) }

// sourceFilterScript is SetSourceFilter's transaction. It recreates the
// table's fixed part each time (add is a no-op for what exists, and the base
// chain is flushed and refilled), so any state the table was left in is put
// right.
func sourceFilterScript(id container.ID, addrs []netip.Addr) (string, error) {
	var v4, v6 []string
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		if !a.IsValid() || a.Zone() != "" {
			return "", fmt.Errorf("source filter of VPS %d: address %q: %w", id, a, ErrBadIP)
		}
		a = a.Unmap()
		if seen[a] {
			continue
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return "", fmt.Errorf("source filter of VPS %d: %s is no source address: %w", id, a, ErrBadIP)
		}
		seen[a] = true
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	slices.Sort(v4)
	slices.Sort(v6)
	c := chainName(id)
	var b strings.Builder
	b.WriteString(fixedPart())
	fmt.Fprintf(&b, "add chain %s %s\n", nftTable, c)
	fmt.Fprintf(&b, "flush chain %s %s\n", nftTable, c)
	if len(v4) > 0 {
		fmt.Fprintf(&b, "add rule %s %s ip saddr { %s } accept\n", nftTable, c, strings.Join(v4, ", "))
	}
	if len(v6) > 0 {
		fmt.Fprintf(&b, "add rule %s %s ip6 saddr { %s } accept\n", nftTable, c, strings.Join(v6, ", "))
	}
	fmt.Fprintf(&b, "add rule %s %s ip6 saddr fe80::/10 accept\n", nftTable, c)
	fmt.Fprintf(&b, "add rule %s %s ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld-listener-report, mld2-listener-report } accept\n", nftTable, c)
	fmt.Fprintf(&b, "add rule %s %s counter drop\n", nftTable, c)
	fmt.Fprintf(&b, "add element %s srcguard { %q : jump %s }\n", nftTable, HostIfName(id), c)
	return b.String(), nil
}

// fixedPart declares the table, the map and the base chain (idempotently) and
// refills the base chain with its one rule.
func fixedPart() string {
	return "add table " + nftTable + "\n" +
		"add map " + nftTable + " srcguard { type ifname : verdict ; }\n" +
		"add chain " + nftTable + " prerouting { type filter hook prerouting priority raw ; policy accept ; }\n" +
		"flush chain " + nftTable + " prerouting\n" +
		"add rule " + nftTable + " prerouting iifname vmap @srcguard\n"
}

// removeFilterScript is RemoveSourceFilter's transaction: nft 1.0.6 (Debian
// 12) has no "destroy", so what is deleted is first added, which makes the
// deletion succeed whether or not it existed.
func removeFilterScript(id container.ID) string {
	c := chainName(id)
	return fixedPart() +
		fmt.Sprintf("add chain %s %s\n", nftTable, c) +
		fmt.Sprintf("flush chain %s %s\n", nftTable, c) +
		fmt.Sprintf("add element %s srcguard { %q : jump %s }\n", nftTable, HostIfName(id), c) +
		fmt.Sprintf("delete element %s srcguard { %q }\n", nftTable, HostIfName(id)) +
		fmt.Sprintf("delete chain %s %s\n", nftTable, c)
}

// nft runs one transaction.
func nft(script string) error {
	_, err := runNft([]string{"-f", "-"}, script)
	return err
}

func nftOutput(args ...string) ([]byte, error) { return runNft(args, "") }

// errNoTable: vpsctl's table does not exist.
var errNoTable = errors.New("no such nftables table")

func runNft(args []string, stdin string) ([]byte, error) {
	path, err := nftPath()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), nftTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "No such file or directory") && len(args) > 0 && args[0] == "-j" {
			return nil, fmt.Errorf("nft %s: %w", strings.Join(args, " "), errNoTable)
		}
		if stdin != "" {
			return nil, fmt.Errorf("nft transaction:\n%s: %w: %s", stdin, err, msg)
		}
		return nil, fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// withNftLock runs f holding nftLock (flock: released when the fd closes,
// also when the process dies).
func withNftLock(f func() error) error {
	fd, err := unix.Open(nftLock, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return &os.PathError{Op: "open", Path: nftLock, Err: err}
	}
	defer unix.Close(fd)
	if err := sysfile.Retry(func() error { return unix.Flock(fd, unix.LOCK_EX) }); err != nil {
		return &os.PathError{Op: "flock", Path: nftLock, Err: err}
	}
	return f()
}

// nftJSON is the part of `nft -j list table` output read here.
type nftJSON struct {
	Nftables []struct {
		Chain *struct {
			Name string `json:"name"`
		} `json:"chain"`
		Rule *struct {
			Chain string            `json:"chain"`
			Expr  []json.RawMessage `json:"expr"`
		} `json:"rule"`
	} `json:"nftables"`
}

// parseNftChains returns the chain names in `nft -j list table` output.
func parseNftChains(data []byte) ([]string, error) {
	var j nftJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, err
	}
	var out []string
	for _, o := range j.Nftables {
		if o.Chain != nil {
			out = append(out, o.Chain.Name)
		}
	}
	return out, nil
}
