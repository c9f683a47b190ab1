// Package idshift moves file ownership from one host UID range of a VPS to another: a VPS's
// private area (the overlay's upper layer) holds files owned by the host IDs of the VPS's
// range, and a copy of it given another range (a clone, a backup restored into another range, a
// migration to a host where the range is taken) must own them by the new range's IDs, at the
// same offsets.
//
// Where IDs are: a file's owner and group, the user and group entries of its POSIX ACLs
// (system.posix_acl_access and system.posix_acl_default, read from the initial user namespace
// as host IDs), and the root ID of a version-3 file capability (security.capability written
// inside a user namespace: the host ID of that namespace's root). Each is shifted by the same
// offset when it lies in the old range, and left alone otherwise (an ID outside the range
// shows as nobody inside the VPS either way). chown clears setuid and setgid bits and drops
// security.capability: callers apply the mode and the xattrs after the owner.
//
// It is pure: it does no I/O, and its parsers never panic (fuzzed).
package idshift

import (
	"encoding/binary"

	"github.com/vpsctl/vpsctl/uid"
)

// Shift maps the host IDs of range From to those of range To (of the same size). The zero Shift
// maps nothing.
type Shift struct{ From, To uid.Range }

// New returns the shift from range from to range to; ok is false when they differ in size (no
// shift by offset is possible) or are equal (nothing to do).
func New(from, to uid.Range) (Shift, bool) {
	if from.Size != to.Size || from == to || from.Size == 0 {
		return Shift{}, false
	}
	return Shift{From: from, To: to}, true
}

// Active reports whether s maps anything.
func (s Shift) Active() bool { return s.From.Size != 0 && s.From != s.To }

// ID returns host ID id moved into the new range, or id itself when it is not in the old one.
func (s Shift) ID(id uint32) uint32 {
	if !s.Active() {
		return id
	}
	g, ok := s.From.ToGuest(uid.HostID(id))
	if !ok {
		return id
	}
	h, ok := s.To.ToHost(g)
	if !ok {
		return id
	}
	return uint32(h)
}

// Xattrs names the extended attributes that carry IDs.
const (
	ACLAccess  = "system.posix_acl_access"
	ACLDefault = "system.posix_acl_default"
	Capability = "security.capability"
)

// POSIX ACL xattr layout (include/uapi/linux/posix_acl_xattr.h): a little-endian u32 version
// (2), then entries of u16 tag, u16 perm, u32 id. Only ACL_USER and ACL_GROUP entries carry an
// ID; the others hold ACL_UNDEFINED_ID.
const (
	aclVersion = 2
	aclUser    = 0x02
	aclGroup   = 0x08
	aclEntry   = 8
)

// ACL returns ACL xattr value v with its user and group IDs shifted, and whether v was a
// well-formed ACL (a malformed one is returned unchanged: the kernel refused it when it was
// written, so it is not one the file can have).
func (s Shift) ACL(v []byte) ([]byte, bool) {
	if len(v) < 4 || (len(v)-4)%aclEntry != 0 || binary.LittleEndian.Uint32(v) != aclVersion {
		return v, false
	}
	out := append([]byte(nil), v...)
	for off := 4; off < len(out); off += aclEntry {
		switch binary.LittleEndian.Uint16(out[off:]) {
		case aclUser, aclGroup:
			id := binary.LittleEndian.Uint32(out[off+4:])
			binary.LittleEndian.PutUint32(out[off+4:], s.ID(id))
		}
	}
	return out, true
}

// File capability layout (include/uapi/linux/capability.h, struct vfs_ns_cap_data): a u32
// magic_etc whose top byte is the revision, two {permitted, inheritable} u32 pairs, and for
// revision 3 a u32 root ID.
const (
	capRevisionMask = 0xFF000000
	capRevision3    = 0x03000000
	capV3Size       = 4 + 2*8 + 4
)

// Capability returns security.capability value v with a version-3 root ID shifted; other
// versions carry no ID and are returned unchanged.
func (s Shift) Capability(v []byte) []byte {
	if len(v) != capV3Size || binary.LittleEndian.Uint32(v)&capRevisionMask != capRevision3 {
		return v
	}
	out := append([]byte(nil), v...)
	binary.LittleEndian.PutUint32(out[capV3Size-4:], s.ID(binary.LittleEndian.Uint32(out[capV3Size-4:])))
	return out
}

// Xattr returns the value of xattr name shifted (ACLs, capabilities), or v unchanged.
func (s Shift) Xattr(name string, v []byte) []byte {
	if !s.Active() {
		return v
	}
	switch name {
	case ACLAccess, ACLDefault:
		out, _ := s.ACL(v)
		return out
	case Capability:
		return s.Capability(v)
	}
	return v
}
