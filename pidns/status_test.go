package pidns

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

const sampleStatus = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4242\n" +
	"PPid:\t4200\nTracerPid:\t0\nUid:\t1000000\t1000001\t1000002\t1000003\nGid:\t1000000\t1000000\t1000000\t1000000\n" +
	"FDSize:\t64\nGroups:\t \nNStgid:\t4242\t7\t1\nNSpid:\t4242\t7\t1\nNSpgid:\t4242\t7\t1\nNSsid:\t4200\t1\t0\n" +
	"VmPeak:\t    8080 kB\nThreads:\t1\nSigQ:\t0/95346\nCpus_allowed_list:\t0-1\n"

func TestParseStatus(t *testing.T) {
	s, err := ParseStatus(sampleStatus)
	want := Status{Name: "sleep", PPid: 4200, NSpid: []int{4242, 7, 1},
		Uid: [4]uint32{1000000, 1000001, 1000002, 1000003}, Gid: [4]uint32{1000000, 1000000, 1000000, 1000000}, State: "S"}
	if err != nil || !reflect.DeepEqual(s, want) {
		t.Fatalf("ParseStatus = %+v, %v", s, err)
	}
	// comm may hold tabs, spaces, colons and the kernel's two escapes.
	s, err = ParseStatus(strings.Replace(sampleStatus, "Name:\tsleep", `Name:	a	b: c\nd\\e\x`, 1))
	if err != nil || s.Name != "a\tb: c\nd\\e\\x" {
		t.Errorf("escaped name = %q, %v", s.Name, err)
	}
	for name, text := range map[string]string{
		"empty":        "",
		"no NSpid":     strings.Replace(sampleStatus, "NSpid:", "NSxxx:", 1),
		"no Name":      strings.Replace(sampleStatus, "Name:", "Nom:", 1),
		"short Uid":    strings.Replace(sampleStatus, "Uid:\t1000000\t", "Uid:\t", 1),
		"bad Gid":      strings.Replace(sampleStatus, "Gid:\t1000000", "Gid:\t-1", 1),
		"big Uid":      strings.Replace(sampleStatus, "Uid:\t1000000", "Uid:\t4294967296", 1),
		"bad PPid":     strings.Replace(sampleStatus, "PPid:\t4200", "PPid:\tx", 1),
		"NSpid 0":      strings.Replace(sampleStatus, "NSpid:\t4242\t7\t1", "NSpid:\t4242\t0", 1),
		"NSpid empty":  strings.Replace(sampleStatus, "NSpid:\t4242\t7\t1", "NSpid:", 1),
		"NSpid deep":   strings.Replace(sampleStatus, "NSpid:\t4242\t7\t1", "NSpid:"+strings.Repeat(" 5", 34), 1),
		"State long":   strings.Replace(sampleStatus, "State:\tS", "State:\tSS", 1),
		"twice":        sampleStatus + "NSpid:\t1\n",
		"negative":     strings.Replace(sampleStatus, "PPid:\t4200", "PPid:\t-2", 1),
		"State absent": strings.Replace(sampleStatus, "State:\tS (sleeping)", "State:", 1),
	} {
		if _, err := ParseStatus(text); !errors.Is(err, ErrBadStatus) {
			t.Errorf("%s: err = %v; want ErrBadStatus", name, err)
		}
	}
}

func TestReadStatusSelf(t *testing.T) {
	s, err := readStatus(HostPID(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if s.NSpid[0] != os.Getpid() || s.PPid != HostPID(os.Getppid()) || s.Uid[0] != uint32(os.Getuid()) {
		t.Errorf("self status %+v", s)
	}
	// PID_MAX_LIMIT is 4194304: a PID above it never exists.
	if _, err := readStatus(5000000); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing process: %v", err)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add(sampleStatus)
	f.Add("Name:\tx\nState:\tZ (zombie)\nPPid:\t0\nUid:\t0 0 0 0\nGid:\t0 0 0 0\nNSpid:\t1\n")
	f.Add("Name:\t\\n\\\\\nState:\tR\nPPid:\t1\nUid:\t1 2 3 4\nGid:\t5 6 7 8\nNSpid:\t9 8 7 6 5\n")
	f.Add("")
	f.Add("::::\n\n:")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseStatus(text)
		if err != nil {
			if !errors.Is(err, ErrBadStatus) {
				t.Fatalf("error %v does not wrap ErrBadStatus", err)
			}
			return
		}
		if len(s.NSpid) == 0 || len(s.NSpid) > 33 || len(s.State) != 1 || s.PPid < 0 {
			t.Fatalf("accepted %+v", s)
		}
		for _, p := range s.NSpid {
			if p <= 0 {
				t.Fatalf("accepted NSpid %v", s.NSpid)
			}
		}
	})
}
