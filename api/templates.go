package api

import (
	"context"
	"io"
	"net/http"

	"github.com/vpsctl/vpsctl/template"
)

// templateRequest builds or imports a template, as `vpsctl template build|import` does.
type templateRequest struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`              // busybox, debian-12 or import
	Source  string   `json:"source,omitempty"`  // import: a directory or tarball on the host
	Variant string   `json:"variant,omitempty"` // debian-12: systemd (default) or sysvinit
	Include []string `json:"include,omitempty"` // debian-12: extra packages
	Mirror  string   `json:"mirror,omitempty"`  // debian-12: mirror URL
	Busybox string   `json:"busybox,omitempty"` // busybox: the static binary (default /bin/busybox)
	Force   bool     `json:"force,omitempty"`   // rebuild an existing template no running VPS uses
}

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) error {
	if _, err := newQuery(r); err != nil {
		return err
	}
	ts, err := template.List(s.rt.St)
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []template.Info{}
	}
	writeJSON(w, http.StatusOK, ts)
	return nil
}

// info is template name's Info, or its not-found error.
func (s *Server) info(name string) (*template.Info, error) {
	if _, err := template.Rootfs(s.rt.St, name); err != nil {
		return nil, err
	}
	ts, err := template.List(s.rt.St)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if t.Name == name {
			return &t, nil
		}
	}
	_, err = template.Rootfs(s.rt.St, name) // removed meanwhile: its error
	return nil, err
}

func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request) error {
	if _, err := newQuery(r); err != nil {
		return err
	}
	t, err := s.info(r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) buildTemplate(w http.ResponseWriter, r *http.Request) error {
	q, err := newQuery(r, "async")
	if err != nil {
		return err
	}
	var req templateRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if err := template.ValidateName(req.Name); err != nil {
		return err
	}
	if req.Variant != "" && req.Variant != "systemd" && req.Variant != "sysvinit" {
		return badf("body: variant %q: want systemd or sysvinit", req.Variant)
	}
	var build func() error
	switch req.Kind {
	case "busybox":
		bb := req.Busybox
		if bb == "" {
			bb = template.DefaultBusybox
		}
		build = func() error { return template.BuildBusybox(s.rt.St, req.Name, bb, req.Force, io.Discard) }
	case "debian-12":
		o := template.DebianOptions{Variant: req.Variant, Include: req.Include, Mirror: req.Mirror, Replace: req.Force}
		build = func() error { return template.BuildDebian(s.rt.St, req.Name, o, io.Discard) }
	case "import":
		if req.Source == "" {
			return badf("body: source is required to import")
		}
		build = func() error { return template.Import(s.rt.St, req.Name, req.Source, io.Discard) }
	default:
		return badf("body: kind %q: want busybox, debian-12 or import", req.Kind)
	}
	return s.start(w, r, q, &Operation{Action: "template-" + req.Kind, Template: req.Name}, http.StatusCreated, func(ctx context.Context) (any, error) {
		if req.Force {
			if err := s.rt.CheckTemplateReplace(req.Name); err != nil {
				return nil, err
			}
		}
		if err := build(); err != nil {
			return nil, err
		}
		return s.info(req.Name)
	})
}

func (s *Server) removeTemplate(w http.ResponseWriter, r *http.Request) error {
	q, err := newQuery(r, "async")
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if _, err := template.Rootfs(s.rt.St, name); err != nil {
		return err
	}
	return s.start(w, r, q, &Operation{Action: "template-remove", Template: name}, http.StatusOK, func(ctx context.Context) (any, error) {
		return nil, s.rt.RemoveTemplate(ctx, name)
	})
}
