package vzimport

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/runtime"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
)

// Options name what the import makes.
type Options struct {
	ID       container.ID // the VPS's ID; 0: the container's (the config's VEID or file name)
	Template string       // the template made of the private area; "": vz-CTID
}

// Report is what an import did: the VPS, its template, and every key's outcome.
type Report struct {
	ID       container.ID `json:"id"`
	Template string       `json:"template"`
	Mapped   []Outcome    `json:"mapped"`
	Noted    []Outcome    `json:"noted"`
	Unmapped []Outcome    `json:"unmapped"`
}

// Import makes a VPS of the OpenVZ container whose config is confPath and private area
// private (a simfs directory). Either the template and the VPS both exist afterwards or
// neither does. Progress lines go to progress.
func Import(ctx context.Context, rt *runtime.Runtime, confPath, private string, o Options, progress io.Writer) (*Report, error) {
	text, err := os.ReadFile(confPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	keys, err := Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", confPath, err)
	}
	plan, err := Map(keys, hostDevice)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", confPath, err)
	}
	ctid := plan.CTID
	if ctid == "" {
		ctid = strings.TrimSuffix(filepath.Base(confPath), ".conf")
	}
	id := o.ID
	if id == 0 {
		if id, err = container.ParseID(ctid); err != nil {
			return nil, fmt.Errorf("%s: no numeric CTID in the config or its name (give --id): %w", confPath, err)
		}
	}
	if plan.Layout == "ploop" {
		return nil, fmt.Errorf("%s: a ploop image: mount it (ploop mount) and import its mount point: %w", private, template.ErrSource)
	}
	if _, err := os.Stat(filepath.Join(private, "root.hdd")); err == nil {
		return nil, fmt.Errorf("%s holds root.hdd, a ploop image: mount it (ploop mount) and import its mount point: %w", private, template.ErrSource)
	}
	tpl := o.Template
	if tpl == "" {
		tpl = "vz-" + ctid
	}
	// Every value is checked before anything is copied: a create that would fail fails now.
	opts := plan.Create
	opts.ID, opts.Template = id, tpl
	if err := template.ValidateName(tpl); err != nil {
		return nil, err
	}
	if rt.St.Exists(id) {
		return nil, fmt.Errorf("VPS %d: %w", id, store.ErrExist)
	}
	if err := template.Import(rt.St, tpl, private, progress); err != nil {
		return nil, err
	}
	if plan.OSTemplate != "" {
		os.WriteFile(filepath.Join(rt.St.TemplateDir(tpl), "source"),
			[]byte(fmt.Sprintf("import-vz %s (OSTEMPLATE %s)\n", private, plan.OSTemplate)), 0o644)
	}
	if err := rt.Create(ctx, opts); err != nil {
		rt.RemoveTemplate(ctx, tpl) // no VPS uses it: undo the copy
		return nil, err
	}
	return &Report{ID: id, Template: tpl, Mapped: nonNil(plan.Mapped), Noted: nonNil(plan.Noted), Unmapped: nonNil(plan.Unmapped)}, nil
}

func nonNil(o []Outcome) []Outcome {
	if o == nil {
		return []Outcome{}
	}
	return o
}

// hostDevice looks up a device node of the host (DEVNODES).
func hostDevice(path string) (Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Device{}, fmt.Errorf("%s: %v", path, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR, unix.S_IFBLK:
		return Device{Char: st.Mode&unix.S_IFMT == unix.S_IFCHR, Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}, nil
	}
	return Device{}, fmt.Errorf("%s: not a device node", path)
}
