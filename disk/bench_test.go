package disk

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"
)

// reportMedian adds the median of ds to b's report: the target for create is a median,
// and on a shared machine the mean is the noise's.
func reportMedian(b *testing.B, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	if len(ds) > 0 {
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "ms-median")
		b.ReportMetric(float64(ds[len(ds)*9/10].Microseconds())/1000, "ms-p90")
	}
}

func benchmarkCreate(b *testing.B, size uint64) {
	requireRoot(b)
	dir := testDir(b)
	var ds []time.Duration
	for i := 0; b.Loop(); i++ {
		img := filepath.Join(dir, strconv.Itoa(i)+".img")
		start := time.Now()
		if err := Create(b.Context(), img, Limits{HardBytes: size}); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
		b.StopTimer()
		os.Remove(img)
		b.StartTimer()
	}
	reportMedian(b, ds)
}

// BenchmarkCreate2G: create --diskspace 2G's cost (preallocate, mkfs.btrfs, link, fsync).
func BenchmarkCreate2G(b *testing.B) { benchmarkCreate(b, 2<<30) }

// BenchmarkCreate20G: preallocation is per extent, not per byte.
func BenchmarkCreate20G(b *testing.B) { benchmarkCreate(b, 20<<30) }

// BenchmarkMount: what a boot adds (attach, mount, layout check) and a stop's unmount.
func BenchmarkMount(b *testing.B) {
	requireRoot(b)
	dir := testDir(b)
	img := newImage(b, dir, 2<<30)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o700)
	var ds []time.Duration
	for b.Loop() {
		start := time.Now()
		m, err := Mount(img, mnt, vpsRoot, vpsRoot)
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
	}
	reportMedian(b, ds)
}

// BenchmarkSetLimits: a live grow from 1G to 2G and the shrink back, with 100M of data.
func BenchmarkSetLimits(b *testing.B) {
	requireRoot(b)
	dir := testDir(b)
	img := newImage(b, dir, 1<<30)
	m := mountImage(b, img)
	writeFile(b, filepath.Join(m.Upper, "data"), 100)
	var grow, shrink []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := m.SetLimits(Limits{HardBytes: 2 << 30}); err != nil {
			b.Fatal(err)
		}
		grow = append(grow, time.Since(start))
		start = time.Now()
		if err := m.SetLimits(Limits{HardBytes: 1 << 30}); err != nil {
			b.Fatal(err)
		}
		shrink = append(shrink, time.Since(start))
	}
	reportMedian(b, grow)
	sort.Slice(shrink, func(i, j int) bool { return shrink[i] < shrink[j] })
	b.ReportMetric(float64(shrink[len(shrink)/2].Microseconds())/1000, "ms-median-shrink")
}

// BenchmarkUsage: stats and list for a running VPS (statfs).
func BenchmarkUsage(b *testing.B) {
	requireRoot(b)
	m := mountImage(b, newImage(b, testDir(b), 1<<30))
	for b.Loop() {
		if _, err := m.Usage(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInodes10k: the diskinodes figure of a VPS with 10000 files.
func BenchmarkInodes10k(b *testing.B) {
	requireRoot(b)
	m := mountImage(b, newImage(b, testDir(b), 1<<30))
	for i := 0; i < 10000; i++ {
		d := filepath.Join(m.Upper, strconv.Itoa(i%100))
		os.Mkdir(d, 0o755)
		if err := os.WriteFile(filepath.Join(d, strconv.Itoa(i)), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := m.Inodes(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadUsage: list's figures for any VPS, from the image's superblock.
func BenchmarkReadUsage(b *testing.B) {
	requireRoot(b)
	img := newImage(b, testDir(b), 2<<30)
	for b.Loop() {
		if _, err := ReadUsage(img); err != nil {
			b.Fatal(err)
		}
	}
}
