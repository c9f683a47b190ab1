package main

import (
	"errors"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/criu"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/runtime"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
	"github.com/vpsctl/vpsctl/uid"
	"github.com/vpsctl/vpsctl/uts"
)

// Exit codes, vzctl-compatible where vzctl had one. This table is the only place errors become
// exit codes; it is printed by `vpsctl --help` and in README.md.
const (
	exitOK          = 0
	exitSystem      = 3   // unexpected system error
	exitLocked      = 9   // locked by another vpsctl
	exitUsage       = 20  // bad command or usage
	exitBadValue    = 21  // bad ID, name or value
	exitNotRunning  = 31  // VPS is not running
	exitRunning     = 32  // VPS is running (or must be stopped)
	exitNotExist    = 43  // VPS does not exist
	exitExist       = 44  // VPS ID or name already exists
	exitBadIP       = 71  // malformed IP address or interface
	exitIPInUse     = 78  // IP address in use
	exitNoTemplate  = 91  // template not found
	exitTemplateUse = 92  // template in use, or already exists
	exitPoolFull    = 93  // UID pool exhausted
	exitCheckpoint  = 94  // checkpoint/restore failed in CRIU, or no usable CRIU
	exitBlocked     = 95  // checkpoint blocked by what the VPS holds (checkpoint --check lists it)
	exitBadArchive  = 96  // backup archive truncated, changed, or not a vpsctl backup
	exitMigrate     = 97  // migration failed: the VPS is on the source (running again if it ran)
	exitMigrateLost = 98  // migration's end unknown: the destination was told to run the VPS
	exitIncomplete  = 99  // VPS incomplete: its clone, restore from a backup or migration did not finish
	exitBootTimeout = 124 // start --wait: the guest did not finish booting in time (timeout(1)'s code)
)

var exitTable = []struct {
	code int
	errs []error
}{
	// A migration's failure is its own code whatever the destination's reason (its message
	// names it): a script learns first of all where the VPS is.
	{exitMigrateLost, []error{runtime.ErrMigrateUnknown}},
	{exitMigrate, []error{runtime.ErrMigrate}},
	{exitLocked, []error{store.ErrLocked}},
	{exitUsage, []error{runtime.ErrUsage}},
	{exitBadValue, []error{container.ErrBadID, container.ErrBadName, runtime.ErrBadValue, cgroup.ErrBadValue,
		uts.ErrBadName, template.ErrBadName, template.ErrSource, uid.ErrBadRange, store.ErrBadConfig}},
	{exitNotRunning, []error{runtime.ErrNotRunning, runtime.ErrSuspended, runtime.ErrNotSuspended}},
	{exitRunning, []error{runtime.ErrRunning}},
	{exitNotExist, []error{store.ErrNotExist}},
	{exitCheckpoint, []error{criu.ErrCRIU, criu.ErrNotFound, criu.ErrTooOld}},
	{exitBlocked, []error{runtime.ErrCheckpointBlocked}},
	{exitIncomplete, []error{runtime.ErrIncomplete}},
	{exitBadArchive, []error{runtime.ErrBadArchive}},
	{exitExist, []error{store.ErrExist, store.ErrNameExist}},
	{exitBadIP, []error{network.ErrBadIP, network.ErrBadNetIf}},
	{exitIPInUse, []error{network.ErrIPInUse}},
	{exitNoTemplate, []error{store.ErrNoTemplate}},
	{exitTemplateUse, []error{runtime.ErrTemplateUse, template.ErrExist}},
	{exitPoolFull, []error{uid.ErrPoolFull}},
	{exitBootTimeout, []error{runtime.ErrBootTimeout}},
}

// exitCode maps an error to vpsctl's exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ce *runtime.CommandError
	if errors.As(err, &ce) {
		return ce.Status
	}
	for _, row := range exitTable {
		for _, e := range row.errs {
			if errors.Is(err, e) {
				return row.code
			}
		}
	}
	return exitSystem
}

const exitHelp = `EXIT CODES (vzctl-compatible where vzctl had one):
   0   success
   3   unexpected system error
   9   locked by another vpsctl (the message names the holder)
   20  bad command or usage
   21  bad ID, name or value (hostname, size, limit, namespace set, template source, ...)
   31  VPS is not running (or is suspended; or resume of a VPS not suspended)
   32  VPS is running, or running where it must be stopped
   43  VPS does not exist
   44  VPS ID or name already exists
   71  malformed IP address or network interface
   78  IP address in use
   91  template not found
   92  template in use, or already exists
   93  UID pool exhausted
   94  checkpoint or restore failed in CRIU, or no usable CRIU (the message names CRIU's log)
   95  checkpoint blocked: the VPS holds what CRIU cannot dump (checkpoint --check lists it)
   96  backup archive truncated, changed since it was written, or not a vpsctl backup
   97  migration failed: the VPS is on the source, running again if it ran (the message says)
   98  migration's end unknown: the destination was told to run the VPS and did not answer
   99  VPS incomplete: its clone, restore from a backup or migration did not finish (destroy it)
   124 start --wait: the guest did not finish booting in time (the message says how far it got)
   exec/enter return the command's own exit status once it has started
   (126: not executable, 127: not found, 128+N: killed by signal N).
`
