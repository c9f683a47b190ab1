package disk

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

// superblock builds a primary superblock with the given sizes, checksummed, as mkfs.btrfs
// --mixed writes one (only the fields ParseSuperblock reads are filled in).
func superblock(total, used uint64) []byte {
	b := make([]byte, superSize)
	le := binary.LittleEndian
	copy(b[offFSID:], "0123456789abcdef")
	copy(b[offMagic:], btrfsMagic)
	le.PutUint64(b[offGeneration:], 7)
	le.PutUint64(b[offTotalBytes:], total)
	le.PutUint64(b[offBytesUsed:], used)
	le.PutUint64(b[offNumDevices:], 1)
	le.PutUint32(b[offSectorSize:], 4096)
	le.PutUint32(b[offNodeSize:], 4096)
	le.PutUint64(b[offIncompat:], 0x345) // what mkfs.btrfs 6.2 --mixed sets: mixed among them
	le.PutUint64(b[offDevTotal-8:], 1)
	le.PutUint64(b[offDevTotal:], total)
	reseal(b)
	return b
}

// reseal recomputes b's checksum.
func reseal(b []byte) {
	binary.LittleEndian.PutUint32(b[offCsum:], crc32.Checksum(b[0x20:superSize], crc32.MakeTable(crc32.Castagnoli)))
}

func TestParseSuperblock(t *testing.T) {
	sb, err := ParseSuperblock(superblock(2<<30, 36864))
	if err != nil {
		t.Fatal(err)
	}
	if sb.TotalBytes != 2<<30 || sb.BytesUsed != 36864 || sb.DevBytes != 2<<30 || !sb.Mixed || sb.Generation != 7 || sb.NodeSize != 4096 {
		t.Fatalf("parsed %+v", sb)
	}

	le := binary.LittleEndian
	for name, damage := range map[string]func(b []byte){
		"short":       nil,
		"magic":       func(b []byte) { b[offMagic] = 'x'; reseal(b) },
		"checksum":    func(b []byte) { b[offGeneration]++ },
		"csum type":   func(b []byte) { le.PutUint16(b[offCsumType:], 1); reseal(b) },
		"two devices": func(b []byte) { le.PutUint64(b[offNumDevices:], 2); reseal(b) },
		"sector size": func(b []byte) { le.PutUint32(b[offSectorSize:], 65536); reseal(b) },
		"zero size":   func(b []byte) { le.PutUint64(b[offTotalBytes:], 0); reseal(b) },
		"overfull":    func(b []byte) { le.PutUint64(b[offBytesUsed:], 3<<30); reseal(b) },
	} {
		b := superblock(2<<30, 36864)
		if damage == nil {
			b = b[:superSize-1]
		} else {
			damage(b)
		}
		if _, err := ParseSuperblock(b); !errors.Is(err, ErrNotImage) {
			t.Errorf("%s: ParseSuperblock = %v, want ErrNotImage", name, err)
		}
	}
}

func FuzzParseSuperblock(f *testing.F) {
	f.Add(superblock(2<<30, 36864))
	f.Add(superblock(256<<20, 256<<20))
	f.Add(make([]byte, superSize))
	f.Add([]byte(btrfsMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err != nil {
			if !errors.Is(err, ErrNotImage) {
				t.Fatalf("error %v does not wrap ErrNotImage", err)
			}
			return
		}
		if sb.TotalBytes == 0 || sb.BytesUsed > sb.TotalBytes || sb.SectorSize != sectorSize {
			t.Fatalf("accepted %+v", sb)
		}
	})
}

// searchItems builds the buffer a tree search fills: a header and data per item.
func searchItems(items ...key) []byte {
	var b []byte
	le := binary.LittleEndian
	for i, k := range items {
		h := make([]byte, searchHeaderLen)
		le.PutUint64(h[0:], 1)
		le.PutUint64(h[8:], k.objectID)
		le.PutUint64(h[16:], k.offset)
		le.PutUint32(h[24:], k.typ)
		le.PutUint32(h[28:], uint32(i%3*40))
		b = append(append(b, h...), make([]byte, i%3*40)...)
	}
	return b
}

func TestParseSearch(t *testing.T) {
	items := []key{
		{objectID: 256, typ: inodeItemKey}, {objectID: 256, typ: 12, offset: 256}, // root dir: inode, ref
		{objectID: 257, typ: inodeItemKey}, {objectID: 257, typ: 108}, // a file: inode, extent
		{objectID: 258, typ: inodeItemKey},
		{objectID: ^uint64(0) - 4, typ: 48}, // the orphan item, not an inode
	}
	n, last, err := parseSearch(searchItems(items...), uint32(len(items)))
	if err != nil || n != 3 || last != items[len(items)-1] {
		t.Fatalf("parseSearch = %d, %+v, %v; want 3, %+v", n, last, err, items[len(items)-1])
	}
	b := searchItems(items...)
	if _, _, err := parseSearch(b[:len(b)-1], uint32(len(items))); err == nil {
		t.Error("a truncated buffer parsed")
	}
	if _, _, err := parseSearch(b, uint32(len(items)+1)); err == nil {
		t.Error("more items than the buffer holds parsed")
	}
}

func TestKeySuccessor(t *testing.T) {
	max := ^uint64(0)
	for _, c := range []struct {
		in, want key
		ok       bool
	}{
		{key{256, 1, 0}, key{256, 1, 1}, true},
		{key{256, 1, max}, key{256, 2, 0}, true},
		{key{256, 255, max}, key{257, 0, 0}, true},
		{key{max, 255, max}, key{max, 255, max}, false},
	} {
		if got, ok := c.in.successor(); got != c.want || ok != c.ok {
			t.Errorf("%+v.successor() = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseSearch(f *testing.F) {
	f.Add(searchItems(key{256, 1, 0}, key{257, 1, 0}), uint32(2))
	f.Add([]byte{}, uint32(1))
	f.Add(make([]byte, 31), uint32(1))
	f.Fuzz(func(t *testing.T, b []byte, n uint32) {
		if n > 1<<16 {
			n = 1 << 16
		}
		inodes, _, err := parseSearch(b, n)
		if err == nil && inodes > uint64(n) {
			t.Fatalf("%d inodes counted in %d items", inodes, n)
		}
	})
}
