package hostconf

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Plan is a named set of limits, vzctl's ve-NAME.conf-sample: create --plan NAME starts from
// it, set --plan NAME applies it to an existing VPS. Limits it leaves unset fall back to the
// host's defaults at create, and are left alone by set.
type Plan struct {
	Name        string
	File        string
	Description string // DESCRIPTION, one line for plan listings
	Limits      Limits

	sources map[string]Source
}

// planExt is the plans' file extension: plans/small.conf.
const planExt = ".conf"

// builtinPlans are the plans every host has (small, medium, large), as vzctl's package ships
// its ve-*.conf-sample files: `create --plan small` works on a host nobody has configured. A
// file of the same name in the plans directory replaces one; other files there add plans.
//
//go:embed plans/*.conf
var builtinPlans embed.FS

// ValidatePlanName checks a plan name before it becomes a file name: 1..64 of [a-z0-9._-]
// (either case), starting with a letter or digit, so it can never name a path outside the
// plans directory or a hidden file.
func ValidatePlanName(name string) error {
	if name == "" || len(name) > 64 || name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("plan name %q: want 1..64 letters, digits, '.', '_' or '-', not starting with '.' or '-': %w", name, ErrBadConfig)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("plan name %q: character %q not allowed: %w", name, c, ErrBadConfig)
		}
	}
	return nil
}

// ParsePlan reads a plan's text: the limit keys of vps.conf and DESCRIPTION; any other key is
// an error (a plan that silently ignored a misspelt MEMROY would hand out unlimited memory).
// Values are checked as the host configuration's are. Errors are *LineError. ParsePlan is pure.
func ParsePlan(name, file string, text []byte) (*Plan, error) {
	if err := ValidatePlanName(name); err != nil {
		return nil, err
	}
	entries, err := Lex(file, text)
	if err != nil {
		return nil, err
	}
	p := &Plan{Name: name, File: file, sources: map[string]Source{}}
	// The limit checks are the host configuration's; a scratch Config runs them.
	scratch := Defaults()
	for _, e := range entries {
		src := Source{Kind: FromPlan, File: file, Line: e.Line, Name: name}
		if e.Key == "DESCRIPTION" {
			if strings.ContainsAny(e.Value, "\n") {
				return nil, &LineError{File: file, Line: e.Line, Msg: "DESCRIPTION: one line"}
			}
			p.Description = e.Value
			continue
		}
		f := p.Limits.Field(e.Key)
		if f == nil {
			return nil, &LineError{File: file, Line: e.Line,
				Msg: fmt.Sprintf("unknown key %s (a plan holds DESCRIPTION and %s)", e.Key, strings.Join(LimitKeys, ", "))}
		}
		if err := scratch.set(e.Key, e.Value, src); err != nil {
			return nil, err
		}
		*f = e.Value
		p.sources[e.Key] = src
	}
	return p, nil
}

// LoadPlan reads plan name from dir (Config.PlansDir), or the built-in plan of that name
// when dir has no file of it. A name with neither is ErrNoPlan (and ErrBadConfig).
func LoadPlan(dir, name string) (*Plan, error) {
	if err := ValidatePlanName(name); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, name+planExt)
	text, err := readBounded(file)
	if errors.Is(err, fs.ErrNotExist) {
		if text, berr := builtinPlans.ReadFile("plans/" + name + planExt); berr == nil {
			return ParsePlan(name, "built-in "+name+planExt, text)
		}
		return nil, fmt.Errorf("plan %q: %s: %w", name, file, errNoPlan)
	}
	if err != nil {
		return nil, err
	}
	return ParsePlan(name, file, text)
}

// Plan reads plan name of c: from its plans directory, else the built-in plans. A plan that
// does not exist is ErrNoPlan, named with those that do.
func (c *Config) Plan(name string) (*Plan, error) {
	dir := c.PlansDir()
	p, err := LoadPlan(dir, name)
	if errors.Is(err, ErrNoPlan) {
		names, _ := ListPlans(dir)
		return nil, fmt.Errorf("%w (plans: %s)", err, strings.Join(names, ", "))
	}
	return p, err
}

// errNoPlan is ErrNoPlan that also matches ErrBadConfig.
var errNoPlan = noPlan{}

type noPlan struct{}

func (noPlan) Error() string        { return ErrNoPlan.Error() }
func (noPlan) Is(target error) bool { return target == ErrNoPlan || target == ErrBadConfig }

// ListPlans returns the names of the plans LoadPlan finds, sorted: the files in dir (a
// missing directory has none; names a plan cannot have are skipped) and the built-in plans.
func ListPlans(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	builtin, err := builtinPlans.ReadDir("plans")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range append(ents, builtin...) {
		n, ok := strings.CutSuffix(e.Name(), planExt)
		if !ok || e.IsDir() || ValidatePlanName(n) != nil || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// LimitSettings returns the limits a create with plan p (nil: none) and no limit flags gets,
// each with its source: the plan's where it sets one, else the host configuration's.
func (c *Config) LimitSettings(p *Plan) []Setting {
	out := make([]Setting, 0, len(LimitKeys))
	for _, k := range LimitKeys {
		s := Setting{Key: k, Value: *c.Limits.Field(k), Source: c.SourceOf(k)}
		if p != nil {
			if src, ok := p.sources[k]; ok {
				s.Value, s.Source = *p.Limits.Field(k), src
			}
		}
		out = append(out, s)
	}
	return out
}

// CreateLimits returns the limits of a new VPS: flags over plan p (nil: none) over the host
// defaults. flags holds what the command line set ("" = not given).
func (c *Config) CreateLimits(p *Plan, flags Limits) Limits {
	l := c.Limits
	if p != nil {
		l = p.Limits.Over(l)
	}
	return flags.Over(l)
}
