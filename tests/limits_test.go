package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCgroupEveryLimit: every limit create takes lands in the kernel's file for it, on cgroup
// v1 and v2 alike, and the beancounters report it. (TestCgroupLimits shows the kernel
// enforcing memory and numproc; this one covers each of the others' files.)
func TestCgroupEveryLimit(t *testing.T) {
	const id = "173"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox", "--memory", "96M", "--swap", "32M", "--cpus", "1",
		"--cpulimit", "150", "--cpuunits", "2000", "--numproc", "77", "--iolimit", "10M", "--ioweight", "300")
	must(t, "start", id)
	const mem, swap, bps = 96 << 20, 32 << 20, 10 << 20
	want := map[string]string{}
	if cgroupV2() {
		want["memory.max"] = strconv.Itoa(mem)
		want["memory.swap.max"] = strconv.Itoa(swap)
		want["cpu.max"] = "100000 100000" // --cpus 1 is below --cpulimit 150: the smaller quota
		want["cpu.weight"] = "200"        // cpuunits / 10
		want["pids.max"] = "77"
	} else {
		want["memory/memory.limit_in_bytes"] = strconv.Itoa(mem)
		want["cpu/cpu.cfs_quota_us"] = "100000"
		want["cpu/cpu.shares"] = "2048" // cpuunits * 1024 / 1000
		want["pids/pids.max"] = "77"
		if _, err := os.Stat(filepath.Join(groupDir("memory", id), "memory.memsw.limit_in_bytes")); err == nil {
			want["memory/memory.memsw.limit_in_bytes"] = strconv.Itoa(mem + swap)
		}
	}
	for f, w := range want {
		ctrl, file := filepath.Split(f)
		if got := cgroupFile(t, strings.TrimSuffix(ctrl, "/"), id, file); got != w {
			t.Errorf("%s = %q, want %q", f, got, w)
		}
	}

	// I/O: a bandwidth cap per direction on every whole disk, and the weight where the kernel
	// has a weight file (it depends on the I/O schedulers and cost model built in).
	var disks []string
	blocks, _ := os.ReadDir("/sys/block")
	for _, b := range blocks {
		dev, err := os.ReadFile(filepath.Join("/sys/block", b.Name(), "dev"))
		if err == nil && !strings.HasPrefix(b.Name(), "loop") && !strings.HasPrefix(b.Name(), "ram") {
			disks = append(disks, strings.TrimSpace(string(dev)))
		}
	}
	if cgroupV2() {
		io := cgroupFile(t, "", id, "io.max")
		for _, d := range disks {
			if !strings.Contains(io, d+" rbps="+strconv.Itoa(bps)+" wbps="+strconv.Itoa(bps)) {
				t.Errorf("io.max has no %d B/s cap for disk %s:\n%s", bps, d, io)
			}
		}
		if b, err := os.ReadFile(filepath.Join(groupDir("", id), "io.weight")); err == nil && !strings.Contains(string(b), "default 300") {
			t.Errorf("io.weight: %q", b)
		}
	} else {
		for _, dir := range []string{"read", "write"} {
			io := cgroupFile(t, "blkio", id, "blkio.throttle."+dir+"_bps_device")
			for _, d := range disks {
				if !strings.Contains(io, d+" "+strconv.Itoa(bps)) {
					t.Errorf("blkio.throttle.%s_bps_device has no cap for disk %s:\n%s", dir, d, io)
				}
			}
		}
	}

	// The beancounters report the limits in 4 KiB pages and percent of a CPU.
	bc := stats(t, id).Beancounters
	if got := bc["physpages"].Limit; got != mem/4096 {
		t.Errorf("physpages limit %d, want %d", got, mem/4096)
	}
	if got := bc["numproc"].Limit; got != 77 {
		t.Errorf("numproc limit %d", got)
	}
	if got := bc["cpu"].Limit; got != 100 {
		t.Errorf("cpu limit %d%%, want 100", got)
	}
	if cgroupV2() {
		if got := bc["swappages"].Limit; got != swap/4096 {
			t.Errorf("swappages limit %d, want %d", got, swap/4096)
		}
	}
	must(t, "stop", id)
}
