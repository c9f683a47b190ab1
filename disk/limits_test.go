package disk

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDiskspace(t *testing.T) {
	for _, c := range []struct {
		in         string
		soft, hard uint64
		bad        bool
	}{
		{in: "2G", soft: 2 << 30, hard: 2 << 30},
		{in: "1G:2G", soft: 1 << 30, hard: 2 << 30},
		{in: "2097152", soft: 2 << 30, hard: 2 << 30}, // vzctl: bare numbers are 1 KiB blocks
		{in: "1048576:2097152", soft: 1 << 30, hard: 2 << 30},
		{in: "512m:1t", soft: 512 << 20, hard: 1 << 40},
		{in: "1K", soft: 1024, hard: 1024},
		{in: "2G:1G", bad: true}, // soft above hard
		{in: "", bad: true},
		{in: ":", bad: true},
		{in: "1G:", bad: true},
		{in: ":1G", bad: true},
		{in: "0", bad: true},
		{in: "0G", bad: true},
		{in: "01G", bad: true},
		{in: "-1G", bad: true},
		{in: "+1G", bad: true},
		{in: " 1G", bad: true},
		{in: "1.5G", bad: true},
		{in: "1GB", bad: true},
		{in: "1X", bad: true},
		{in: "G", bad: true},
		{in: "unlimited", bad: true},
		{in: "1G:2G:3G", bad: true},
		{in: "9007199254740992K", bad: true}, // 2^53 KiB: 2^63 bytes
		{in: "8388607T", soft: 8388607 << 40, hard: 8388607 << 40},
		{in: "8388608T", bad: true},
		{in: "99999999999999999999", bad: true},
	} {
		soft, hard, err := ParseDiskspace(c.in)
		if c.bad {
			if !errors.Is(err, ErrBadValue) {
				t.Errorf("ParseDiskspace(%q) = %d, %d, %v; want ErrBadValue", c.in, soft, hard, err)
			}
			continue
		}
		if err != nil || soft != c.soft || hard != c.hard {
			t.Errorf("ParseDiskspace(%q) = %d, %d, %v; want %d, %d", c.in, soft, hard, err, c.soft, c.hard)
		}
	}
}

func TestParseInodes(t *testing.T) {
	for _, c := range []struct {
		in         string
		soft, hard uint64
		bad        bool
	}{
		{in: "200000", soft: 200000, hard: 200000},
		{in: "200000:220000", soft: 200000, hard: 220000},
		{in: "220000:200000", bad: true},
		{in: "200K", bad: true},
		{in: "0", bad: true},
		{in: "", bad: true},
		{in: "1:", bad: true},
		{in: "a", bad: true},
		{in: "9223372036854775808", bad: true},
	} {
		soft, hard, err := ParseInodes(c.in)
		if c.bad {
			if !errors.Is(err, ErrBadValue) {
				t.Errorf("ParseInodes(%q) = %d, %d, %v; want ErrBadValue", c.in, soft, hard, err)
			}
			continue
		}
		if err != nil || soft != c.soft || hard != c.hard {
			t.Errorf("ParseInodes(%q) = %d, %d, %v; want %d, %d", c.in, soft, hard, err, c.soft, c.hard)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		l    Limits
		want error
	}{
		{Limits{HardBytes: 2 << 30}, nil},
		{Limits{SoftBytes: 1 << 30, HardBytes: 2 << 30}, nil},
		{Limits{HardBytes: MinHardBytes}, nil},
		{Limits{HardBytes: MinHardBytes - 1}, ErrBadValue},
		{Limits{}, ErrBadValue},
		{Limits{SoftBytes: 3 << 30, HardBytes: 2 << 30}, ErrBadValue},
		{Limits{HardBytes: 1 << 63}, ErrBadValue},
		{Limits{HardBytes: 2 << 30, Inodes: 200000}, ErrInodeLimit},
	} {
		if err := c.l.Validate(); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%+v.Validate() = %v, want %v", c.l, err, c.want)
		}
	}
}

func TestDiskspaceRoundTrip(t *testing.T) {
	for _, l := range []Limits{
		{HardBytes: 2 << 30},
		{SoftBytes: 1 << 30, HardBytes: 2 << 30},
		{SoftBytes: 300 << 20, HardBytes: 300<<20 + 1024},
	} {
		s := l.Diskspace()
		soft, hard, err := ParseDiskspace(s)
		wantSoft := l.SoftBytes
		if wantSoft == 0 {
			wantSoft = l.HardBytes
		}
		if err != nil || soft != wantSoft || hard != l.HardBytes {
			t.Errorf("%+v -> %q -> %d, %d, %v", l, s, soft, hard, err)
		}
	}
	if got := (Limits{SoftBytes: 1 << 30, HardBytes: 2 << 30}).Diskspace(); got != "1048576:2097152" {
		t.Errorf("Diskspace() = %q, want vzctl's 1048576:2097152", got)
	}
}

func TestSizeRoundsUp(t *testing.T) {
	if got := (Limits{HardBytes: MinHardBytes + 1}).size(); got != MinHardBytes+sectorSize {
		t.Errorf("size() = %d, want %d", got, MinHardBytes+sectorSize)
	}
	if got := (Limits{HardBytes: 2 << 30}).size(); got != 2<<30 {
		t.Errorf("size() = %d, want %d", got, 2<<30)
	}
}

func TestFormatSize(t *testing.T) {
	for _, c := range []struct {
		in   uint64
		want string
	}{
		{0, "0"},
		{1023, "1023"},
		{1024, "1K"},
		{1 << 30, "1G"},
		{2 << 30, "2G"},
		{1<<30 + 300<<20, "1.3G"},
		{1<<30 + 1, "1.1G"}, // rounded up: usage is never shown smaller than it is
		{10<<30 - 1, "10G"},
		{512 << 20, "512M"},
		{16<<30 + 200<<20, "17G"},
		{3 << 40, "3T"},
		{1 << 50, "1024T"},
		{^uint64(0), "16777216T"},
	} {
		if got := FormatSize(c.in); got != c.want {
			t.Errorf("FormatSize(%d) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzParseDiskspace(f *testing.F) {
	for _, s := range []string{"2G", "1G:2G", "2097152", "1048576:2097152", "0", "1.5G", "8388608T", "1:", ":", "01", "1k:1K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		soft, hard, err := ParseDiskspace(s)
		if err != nil {
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("ParseDiskspace(%q): error %v does not wrap ErrBadValue", s, err)
			}
			return
		}
		if soft == 0 || soft > hard || hard%1024 != 0 || hard > 1<<63-1 {
			t.Fatalf("ParseDiskspace(%q) accepted %d:%d", s, soft, hard)
		}
		// What vps.conf stores reads back as the same limits.
		l := Limits{SoftBytes: soft, HardBytes: hard}
		soft2, hard2, err := ParseDiskspace(l.Diskspace())
		if err != nil || soft2 != soft || hard2 != hard {
			t.Fatalf("round trip %q -> %q -> %d:%d, %v", s, l.Diskspace(), soft2, hard2, err)
		}
		if strings.ContainsAny(FormatSize(hard), " -") {
			t.Fatalf("FormatSize(%d) = %q", hard, FormatSize(hard))
		}
	})
}

func FuzzParseInodes(f *testing.F) {
	for _, s := range []string{"200000", "200000:220000", "0", "1:", "18446744073709551615", "a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		soft, hard, err := ParseInodes(s)
		if err != nil {
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("ParseInodes(%q): error %v does not wrap ErrBadValue", s, err)
			}
			return
		}
		if soft == 0 || soft > hard {
			t.Fatalf("ParseInodes(%q) accepted %d:%d", s, soft, hard)
		}
	})
}
