// Package cgroup groups a VPS's processes and limits their resources through
// the kernel's cgroup filesystems.
//
// One interface, [Manager], has two implementations: fs1 (cgroup v1, one
// directory per mounted hierarchy, named ones such as name=systemd included)
// and fs2 (the unified cgroup v2 tree). [New] is the only place that decides
// between them, by statfs(2) of /sys/fs/cgroup; nothing outside this package
// needs to know which version runs.
//
// Invariants:
//
//   - A group is named by a clean relative path ("vpsctl/101"), never by an
//     absolute one; paths with ".." are refused, so a group can never be
//     created outside the hierarchy roots.
//   - Groups are hierarchical, as in Paul Menage's containers patch: a process
//     forked in a group stays in it, and a group is removed only once it and
//     its children are empty ([Manager.Destroy] removes the deepest first and
//     lets the kernel's EBUSY tell it when a group is still in use).
//   - This package never writes release_agent or notify_on_release. The v1
//     release agent runs as root in the host's namespaces and was the
//     CVE-2022-0492 container escape; emptiness is watched instead (v2:
//     inotify on cgroup.events, v1: a bounded poll of cgroup.procs).
//   - Every wait is bounded by a caller-given timeout and ends in [ErrTimeout].
//   - Processes are signalled through pidfds after checking, through
//     /proc/PID/cgroup, that the pidfd's process is still in the group, so a
//     recycled PID is never killed.
//   - Missing values in Resources mean "leave unchanged"; invalid ones are
//     refused with [ErrBadValue] before any file is written.
package cgroup
