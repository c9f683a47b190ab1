package idshift

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/vpsctl/vpsctl/uid"
)

var (
	old = uid.Range{Host: 1000000, Size: 65536}
	nu  = uid.Range{Host: 1131072, Size: 65536}
)

func TestNew(t *testing.T) {
	if _, ok := New(old, old); ok {
		t.Error("a shift onto the same range")
	}
	if _, ok := New(old, uid.Range{Host: 2000000, Size: 1000}); ok {
		t.Error("a shift between ranges of different sizes")
	}
	s, ok := New(old, nu)
	if !ok || !s.Active() {
		t.Fatal("no shift between two ranges")
	}
	for in, want := range map[uint32]uint32{1000000: 1131072, 1000033: 1131105, 1065535: 1196607, 0: 0, 999999: 999999, 1065536: 1065536} {
		if got := s.ID(in); got != want {
			t.Errorf("ID(%d) = %d, want %d", in, got, want)
		}
	}
	if (Shift{}).ID(1000000) != 1000000 {
		t.Error("the zero shift moved an ID")
	}
}

func acl(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

func TestACL(t *testing.T) {
	s, _ := New(old, nu)
	const undef = 0xffffffff
	in := acl([3]uint32{0x01, 7, undef}, [3]uint32{aclUser, 6, 1001000}, [3]uint32{0x04, 5, undef},
		[3]uint32{aclGroup, 4, 1000033}, [3]uint32{aclUser, 4, 42}, [3]uint32{0x10, 7, undef}, [3]uint32{0x20, 0, undef})
	want := acl([3]uint32{0x01, 7, undef}, [3]uint32{aclUser, 6, 1132072}, [3]uint32{0x04, 5, undef},
		[3]uint32{aclGroup, 4, 1131105}, [3]uint32{aclUser, 4, 42}, [3]uint32{0x10, 7, undef}, [3]uint32{0x20, 0, undef})
	got, ok := s.ACL(in)
	if !ok || !bytes.Equal(got, want) {
		t.Errorf("ACL shifted = %x, want %x", got, want)
	}
	if !bytes.Equal(s.Xattr(ACLDefault, in), want) || !bytes.Equal(s.Xattr(ACLAccess, in), want) {
		t.Error("Xattr does not shift ACLs")
	}
	for _, bad := range [][]byte{nil, {2, 0, 0}, acl()[:3], append(acl([3]uint32{aclUser, 6, 1000001}), 1)} {
		if got, ok := s.ACL(bad); ok || !bytes.Equal(got, bad) {
			t.Errorf("malformed ACL %x: %x, %v", bad, got, ok)
		}
	}
	v1 := binary.LittleEndian.AppendUint32(nil, 1)
	if _, ok := s.ACL(append(v1, acl([3]uint32{aclUser, 6, 1000001})[4:]...)); ok {
		t.Error("ACL of another version accepted")
	}
}

func capV3(rootid uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, capRevision3|1) // effective bit
	b = binary.LittleEndian.AppendUint64(b, 1<<13)             // cap_net_raw permitted
	b = binary.LittleEndian.AppendUint64(b, 0)
	return binary.LittleEndian.AppendUint32(b, rootid)
}

func TestCapability(t *testing.T) {
	s, _ := New(old, nu)
	if got := s.Xattr(Capability, capV3(1000000)); !bytes.Equal(got, capV3(1131072)) {
		t.Errorf("v3 capability = %x", got)
	}
	if got := s.Capability(capV3(0)); !bytes.Equal(got, capV3(0)) {
		t.Errorf("a root ID outside the range moved: %x", got)
	}
	v2 := capV3(0)[:capV3Size-4]
	binary.LittleEndian.PutUint32(v2, 0x02000001)
	if got := s.Capability(v2); !bytes.Equal(got, v2) {
		t.Errorf("v2 capability changed: %x", got)
	}
	if got := s.Xattr("user.foo", capV3(1000000)); !bytes.Equal(got, capV3(1000000)) {
		t.Error("an xattr without IDs changed")
	}
}

func FuzzShift(f *testing.F) {
	f.Add(acl([3]uint32{aclUser, 6, 1000001}))
	f.Add(capV3(1000000))
	f.Add([]byte{})
	s, _ := New(old, nu)
	f.Fuzz(func(t *testing.T, v []byte) {
		for _, name := range []string{ACLAccess, Capability} {
			if out := s.Xattr(name, v); len(out) != len(v) {
				t.Fatalf("%s: length %d -> %d", name, len(v), len(out))
			}
		}
	})
}
