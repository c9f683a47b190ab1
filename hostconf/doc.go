// Package hostconf reads vpsctl's host-wide configuration, /etc/vpsctl/vpsctl.conf (vzctl's
// vz.conf), and its plans (vzctl's ve-NAME.conf-sample): small, medium and large built in
// (plans/*.conf), and /etc/vpsctl/plans/NAME.conf, which adds a plan or replaces a built-in one.
//
// The host configuration holds every default that used to be a constant in the code: the
// state root, the default template, the limits a VPS gets when its create names none, the UID
// pool, the lock wait, the start, stop and checkpoint timeouts, the parallelism and bounds of
// start --all and stop --all, network defaults, the cluster registry (etcd endpoints, TLS
// client files, request timeout) and this host's name in it, and the caps of the event and
// audit logs. A plan is a named set of limits (small, medium, large) that create
// --plan and set --plan apply.
//
// Precedence, lowest first: the built-in default, the host configuration file, a plan, the
// environment (VPSCTL_ROOT), the command line. [Config.Settings] reports each effective value
// with the place it came from, for `vpsctl config show`.
//
// Invariants:
//
//   - Files use exactly vps.conf's syntax (KEY="value", '#' comments; see [Lex]): one syntax for
//     every file an administrator edits.
//   - Loading is all or nothing: any malformed line, unknown key or out-of-range value makes
//     [Load] return one error, a [*LineError] naming the file and line, that matches
//     [ErrBadConfig]; no partly read configuration is ever returned, so a command given a
//     broken file does nothing.
//   - Values are validated by the same rules the runtime applies to the matching command-line
//     flags, so a default that loads is a default create can apply.
//   - A missing file at the default path means "all defaults"; a file named by VPSCTL_CONFIG
//     must exist (an explicit path that is not there is a mistake, not a wish for defaults).
//   - Plan names are checked before they are joined to a path: a plan is always a file
//     directly in the plans directory.
package hostconf
