// Package vzimport turns an OpenVZ container (its vzctl CTID.conf and its private area) into a
// vpsctl VPS: `vpsctl import-vz`, the way off OpenVZ.
//
// A vzctl config is read, not loaded as a vps.conf: its keys are vzctl's (ONBOOT, PHYSPAGES
// in pages, NETIF's ifname=...;ifname=... syntax, user beancounters, disk quotas), and most
// of them have no vpsctl meaning. Map reads every key once and says of each what became of
// it: mapped to a vpsctl setting, noted (understood but nothing to set), or not mapped and
// why. Nothing is silently dropped.
//
// The private area (a simfs directory: the container's whole root file system, owned by host
// root as OpenVZ keeps it) becomes a template of its own, vz-CTID, and the VPS is created
// over it with an empty private area of its own: the container's files are the template's,
// shown through the VPS's idmapped mount, and what the VPS changes from then on is its own.
// A ploop image must be mounted first and its mount point imported.
//
// Parse and Map are pure, and fuzzed.
package vzimport

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadConfig is a CTID.conf that cannot be read, or a value of it that cannot be mapped.
var ErrBadConfig = errors.New("bad vzctl config")

// Key is one KEY=value of a vzctl config, in file order.
type Key struct {
	Name, Value string
	Line        int
}

// Parse reads vzctl config text: shell-style KEY="value", KEY='value' or KEY=value lines,
// '#' comments and blank lines. vzctl writes double quotes; hand-edited files have the
// others. A key given twice keeps its last value, as the shell that reads these files would.
func Parse(text []byte) ([]Key, error) {
	var keys []Key
	idx := map[string]int{}
	for n, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !validKey(k) {
			return nil, fmt.Errorf("line %d: want KEY=\"value\": %w", n+1, ErrBadConfig)
		}
		val, err := unquote(v)
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %v: %w", n+1, k, err, ErrBadConfig)
		}
		if i, dup := idx[k]; dup {
			keys[i] = Key{Name: k, Value: val, Line: n + 1}
			continue
		}
		idx[k] = len(keys)
		keys = append(keys, Key{Name: k, Value: val, Line: n + 1})
	}
	return keys, nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// unquote strips one pair of quotes and a trailing comment after them.
func unquote(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	q := v[0]
	if q != '"' && q != '\'' {
		if strings.ContainsAny(v, " \t\"'") {
			if i := strings.Index(v, " #"); i >= 0 && !strings.ContainsAny(v[:i], " \t\"'") {
				return v[:i], nil
			}
			return "", errors.New("unquoted value with spaces or quotes")
		}
		return v, nil
	}
	end := strings.IndexByte(v[1:], q)
	if end < 0 {
		return "", errors.New("unterminated quote")
	}
	rest := strings.TrimSpace(v[end+2:])
	if rest != "" && rest[0] != '#' {
		return "", errors.New("text after the closing quote")
	}
	return v[1 : end+1], nil
}
