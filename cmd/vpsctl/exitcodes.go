package main

import (
	"errors"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/criu"
	"github.com/vpsctl/vpsctl/disk"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/fleet"
	"github.com/vpsctl/vpsctl/hostconf"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/runtime"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
	"github.com/vpsctl/vpsctl/uid"
	"github.com/vpsctl/vpsctl/uts"
	"github.com/vpsctl/vpsctl/vzimport"
)

// Exit codes: vzctl's own number wherever vzctl has the same case (its include/vzerror.h), and
// numbers from 210 up for vpsctl's own cases, above every code vzctl uses (up to 202) and every
// 128+N a killed command returns. This table is the only place errors become exit codes (and,
// for `vpsctl serve`, HTTP statuses); it is printed by `vpsctl --help` and in README.md.
const (
	exitOK             = 0
	exitSystem         = 3   // unexpected system error (VZ_SYSTEM_ERROR)
	exitLocked         = 9   // locked by another vpsctl (VZ_LOCKED)
	exitCheckpoint     = 16  // checkpoint failed, or no usable CRIU (VZCTL_E_CHKPNT)
	exitRestore        = 17  // restore failed, or no usable CRIU (VZ_RESTORE_ERROR)
	exitUsage          = 20  // bad command or usage (VZ_INVALID_PARAMETER_SYNTAX)
	exitBadValue       = 21  // bad ID, name or value (VZ_INVALID_PARAMETER_VALUE)
	exitNotRunning     = 31  // VPS is not running (VZ_VE_NOT_RUNNING)
	exitRunning        = 32  // VPS is running, or must be stopped (VZ_VE_RUNNING)
	exitNotExist       = 43  // VPS does not exist (VZ_FS_NOPRVT)
	exitExist          = 44  // VPS ID or name already exists (VZ_FS_PRVT_AREA_EXIST)
	exitBadHostname    = 70  // bad host or NIS domain name (VZ_BADHOSTNAME)
	exitBadIP          = 71  // malformed IP address or interface (VZ_BADIP)
	exitBadNameserver  = 72  // bad nameserver (VZ_BADDNSSRV)
	exitBadSearch      = 73  // bad search domain (VZ_BADDNSSEARCH)
	exitUserPasswd     = 74  // password not set (VZ_CHANGEPASS)
	exitIPInUse        = 78  // IP address in use (VZ_IP_INUSE)
	exitBadDevice      = 86  // bad device rule (VZ_SET_DEVICES)
	exitNoTemplate     = 91  // template not found (VZ_OSTEMPLATE_NOT_FOUND)
	exitBootTimeout    = 133 // start --wait: the guest did not finish booting in time (VZ_WAIT_FAILED)
	exitTemplateUse    = 210 // template in use (vpsctl's own)
	exitTemplateExists = 211 // template already exists (vpsctl's own)
	exitPoolFull       = 212 // UID pool exhausted (vpsctl's own)
	exitBlocked        = 213 // checkpoint blocked by what the VPS holds (vpsctl's own)
	exitBadArchive     = 214 // backup archive truncated, changed, or not a vpsctl backup (vpsctl's own)
	exitMigrate        = 215 // migration failed: the VPS is on the source (vpsctl's own)
	exitMigrateLost    = 216 // migration's end unknown (vpsctl's own)
	exitIncomplete     = 217 // VPS incomplete: its clone, restore or migration did not finish (vpsctl's own)
	exitClusterDown    = 218 // the cluster registry did not answer in time (vpsctl's own)
)

// The HTTP statuses of exitTable, net/http's values: vpsctl itself does not link net/http (its
// initialisation and size cost every command about 0.4 ms; see serve.go), vpsctl-api does.
const (
	statusOK                  = 200
	statusBadRequest          = 400
	statusNotFound            = 404
	statusConflict            = 409
	statusUnprocessableEntity = 422
	statusInternalServerError = 500
	statusBadGateway          = 502
	statusServiceUnavailable  = 503
	statusGatewayTimeout      = 504
)

// exitTable maps sentinels to an exit code and the HTTP status `vpsctl serve` answers with.
// The first row an error matches wins: narrower sentinels (ErrBadDevice, a kind of
// ErrBadValue) come before wider ones.
var exitTable = []struct {
	code, http int
	errs       []error
}{
	// A migration's failure is its own code whatever the destination's reason (its message
	// names it): a script learns first of all where the VPS is.
	{exitMigrateLost, statusGatewayTimeout, []error{runtime.ErrMigrateUnknown}},
	{exitMigrate, statusBadGateway, []error{runtime.ErrMigrate}},
	{exitLocked, statusConflict, []error{store.ErrLocked}},
	{exitUsage, statusBadRequest, []error{runtime.ErrUsage}},
	{exitCheckpoint, statusInternalServerError, []error{runtime.ErrCheckpoint}},
	{exitRestore, statusInternalServerError, []error{runtime.ErrRestore}},
	{exitBadHostname, statusBadRequest, []error{uts.ErrBadName}},
	{exitBadNameserver, statusBadRequest, []error{network.ErrBadNameserver}},
	{exitBadSearch, statusBadRequest, []error{network.ErrBadSearchDomain}},
	{exitUserPasswd, statusUnprocessableEntity, []error{runtime.ErrUserPasswd}},
	{exitBadDevice, statusBadRequest, []error{spec.ErrBadDevice}},
	{exitBadValue, statusBadRequest, []error{container.ErrBadID, container.ErrBadName, runtime.ErrBadValue, cgroup.ErrBadValue,
		template.ErrBadName, template.ErrSource, uid.ErrBadRange, store.ErrBadConfig, vzimport.ErrBadConfig,
		hostconf.ErrBadConfig, fleet.ErrBadValue, eventlog.ErrBadSince, disk.ErrBadValue, disk.ErrInodeLimit, disk.ErrTooSmall}},
	{exitNotRunning, statusConflict, []error{runtime.ErrNotRunning, runtime.ErrSuspended, runtime.ErrNotSuspended}},
	{exitRunning, statusConflict, []error{runtime.ErrRunning, disk.ErrInUse}},
	{exitNotExist, statusNotFound, []error{store.ErrNotExist}},
	// CRIU's own failures outside a checkpoint or a restore (none today) are still CRIU's.
	{exitCheckpoint, statusInternalServerError, []error{criu.ErrCRIU, criu.ErrNotFound, criu.ErrTooOld}},
	{exitExist, statusConflict, []error{store.ErrExist, store.ErrNameExist}},
	{exitBadIP, statusBadRequest, []error{network.ErrBadIP, network.ErrBadNetIf}},
	{exitIPInUse, statusConflict, []error{network.ErrIPInUse}},
	{exitNoTemplate, statusNotFound, []error{store.ErrNoTemplate}},
	{exitTemplateUse, statusConflict, []error{runtime.ErrTemplateUse}},
	{exitTemplateExists, statusConflict, []error{template.ErrExist}},
	{exitPoolFull, statusServiceUnavailable, []error{uid.ErrPoolFull}},
	{exitBootTimeout, statusGatewayTimeout, []error{runtime.ErrBootTimeout}},
	{exitBlocked, statusUnprocessableEntity, []error{runtime.ErrCheckpointBlocked}},
	{exitBadArchive, statusBadRequest, []error{runtime.ErrBadArchive}},
	{exitIncomplete, statusConflict, []error{runtime.ErrIncomplete}},
	{exitClusterDown, statusServiceUnavailable, []error{registry.ErrUnavailable}},
}

// exitCode maps an error to vpsctl's exit code.
func exitCode(err error) int {
	code, _ := classify(err)
	return code
}

// classify maps an error to vpsctl's exit code and the HTTP status the API answers with.
func classify(err error) (code, status int) {
	if err == nil {
		return exitOK, statusOK
	}
	var ce *runtime.CommandError
	if errors.As(err, &ce) {
		return ce.Status, statusUnprocessableEntity
	}
	for _, row := range exitTable {
		for _, e := range row.errs {
			if errors.Is(err, e) {
				return row.code, row.http
			}
		}
	}
	return exitSystem, statusInternalServerError
}

const exitHelp = `EXIT CODES (vzctl's number where vzctl has the same case; vpsctl's own from 210):
   0    success
   3    unexpected system error
   9    locked by another vpsctl (the message names the holder)
   16   checkpoint failed in CRIU, or no usable CRIU (the message names CRIU's log)
   17   restore failed in CRIU, or no usable CRIU (the message names CRIU's log)
   20   bad command or usage
   21   bad ID, name or value (size, limit, namespace set, template source, ...), or a
        bad host configuration or plan (the message names the file and line; nothing was done)
   31   VPS is not running (or is suspended; or resume of a VPS not suspended)
   32   VPS is running, or running where it must be stopped
   43   VPS does not exist
   44   VPS ID or name already exists
   70   bad host name or NIS domain name
   71   malformed IP address or network interface
   72   bad nameserver
   73   bad search domain
   74   password not set (--userpasswd malformed, no password on stdin, or the VPS's tools failed)
   78   IP address in use
   86   bad device rule (--devices)
   91   template not found
   133  start --wait: the guest did not finish booting in time (the message says how far it got)
   210  template in use
   211  template already exists
   212  UID pool exhausted
   213  checkpoint blocked: the VPS holds what CRIU cannot dump (checkpoint --check lists it)
   214  backup archive truncated, changed since it was written, or not a vpsctl backup
   215  migration failed: the VPS is on the source, running again if it ran (the message says)
   216  migration's end unknown: the destination was told to run the VPS and did not answer
   217  VPS incomplete: its clone, restore from a backup or migration did not finish (destroy it)
   218  cluster unavailable: the registry (etcd, through this host's agent) did not answer in
        time; nothing was claimed or changed (in a cluster, 44 and 78 name the host holding it)
   exec/enter return the command's own exit status once it has started
   (126: not executable, 127: not found, 128+N: killed by signal N).
`
