// Package eventlog keeps vpsctl's two host logs: STATE/events.log, one JSON line for each
// thing that happened to a VPS (created, started, stopped, an OOM kill, a failcnt rise, ...),
// and STATE/audit.log, one JSON line for each command that changed something (who, what,
// how it ended).
//
// They are one package because they are one mechanism: an append-only, size-bounded, rotated
// file of JSON lines that many short-lived processes write at once and that an administrator
// reads back, filtered by time, or follows across rotations. Only the record types differ
// ([Event], [Record]).
//
// Invariants:
//
//   - A record is one line, one write(2) to an O_APPEND descriptor: concurrent writers never
//     interleave, and a reader sees whole lines (a last line without its newline is still
//     being written and is not reported yet).
//   - Rotation happens under flock(2) on the live file, by the writer that found, under the
//     lock, that its line would pass the size cap and that the path is still the file it
//     opened; so each generation is rotated once, and no line is ever appended to a rotated
//     file (which is what makes following across rotations lossless).
//   - Logging never blocks a command for long: the lock wait is bounded, after which the line
//     is appended unlocked (still whole) and rotation waits for the next writer.
//   - Secrets never reach the audit log: argv passes through [Redact] first.
//   - The logs are bounded: at most (Keep+1) × MaxSize bytes each, plus one line.
package eventlog
