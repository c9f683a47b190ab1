package spec

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// AllNamespaces is the default namespace set, in canonical order.
var AllNamespaces = []string{"uts", "ipc", "pid", "mnt", "net", "user", "cgroup"}

var nsFlag = map[string]int{
	"uts": unix.CLONE_NEWUTS, "ipc": unix.CLONE_NEWIPC, "pid": unix.CLONE_NEWPID, "mnt": unix.CLONE_NEWNS,
	"net": unix.CLONE_NEWNET, "user": unix.CLONE_NEWUSER, "cgroup": unix.CLONE_NEWCGROUP,
}

// ParseNamespaces validates a namespace subset (Eric Biederman's "subsets of virtualization" from
// the seed thread). pid and mnt are required: a VPS always has its own init as PID 1 and its own
// root. The result is in canonical order.
func ParseNamespaces(list []string) ([]string, error) {
	if len(list) == 0 {
		return slices.Clone(AllNamespaces), nil
	}
	seen := map[string]bool{}
	for _, n := range list {
		for _, p := range strings.Split(n, ",") {
			p = strings.TrimSpace(p)
			if _, ok := nsFlag[p]; !ok {
				return nil, fmt.Errorf("--namespaces: unknown namespace %q (want some of %s): %w", p, strings.Join(AllNamespaces, ","), ErrBadValue)
			}
			seen[p] = true
		}
	}
	if !seen["pid"] || !seen["mnt"] {
		return nil, fmt.Errorf("--namespaces: pid and mnt are required (a VPS has its own init and root): %w", ErrBadValue)
	}
	var out []string
	for _, n := range AllNamespaces {
		if seen[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// CloneFlags are the CLONE_NEW* flags of a namespace set.
func CloneFlags(ns []string) int {
	f := 0
	for _, n := range ns {
		f |= nsFlag[n]
	}
	return f
}
