// Timer slack, shared by the C parts of package nsenter (see internal/timerslack): vpsctl's Go
// threads run with a raised slack that nothing which is not vpsctl may keep.
#ifndef VPSCTL_SLACK_H
#define VPSCTL_SLACK_H

// Keep in step with internal/timerslack (Raised).
#define VPSCTL_RAISED_SLACK_NS 200000UL

// vpsctl_guest_slack gives the calling thread the slack vpsctl was started with: call it
// before exec'ing a VPS's program.
void vpsctl_guest_slack(void);

#endif
