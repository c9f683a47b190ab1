package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/runtime"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
)

func init() {
	extraCommandList = append(extraCommandList, completionCommand, completeCommand)
}

// The shell scripts hand the words typed so far to `vpsctl __complete` and offer what it
// prints, one candidate a line: the candidates come from the same command and flag tables
// as the parser, and the VPSs and templates from the state root, so they never go stale.
const bashCompletion = `# bash completion for vpsctl: source <(vpsctl completion bash)
_vpsctl() {
    local cur=${COMP_WORDS[COMP_CWORD]} IFS=$'\n'
    COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)" -- "$cur"))
}
complete -o default -F _vpsctl vpsctl
`

const zshCompletion = `#compdef vpsctl
# zsh completion for vpsctl: source <(vpsctl completion zsh), or as _vpsctl in $fpath
_vpsctl() {
    local -a cands
    cands=("${(@f)$(${words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if (( ${#cands} )) && [[ -n ${cands[1]} ]]; then
        compadd -- "${cands[@]}"
    else
        _files
    fi
}
if [[ ${funcstack[1]} == _vpsctl ]]; then
    _vpsctl "$@"
else
    compdef _vpsctl vpsctl
fi
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name: "completion", Usage: "print the shell completion script (bash or zsh)", ArgsUsage: "bash|zsh",
		Description: "Completes commands, flags, VPS IDs and names, and templates.\n\nEXAMPLES:\n" +
			"   source <(vpsctl completion bash)      # or: vpsctl completion bash > /usr/share/bash-completion/completions/vpsctl\n" +
			"   source <(vpsctl completion zsh)       # or: vpsctl completion zsh > \"${fpath[1]}/_vpsctl\"",
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash":
				fmt.Print(bashCompletion)
			case "zsh":
				fmt.Print(zshCompletion)
			default:
				return usageError("completion: which shell? (bash or zsh)")
			}
			return nil
		},
	}
}

// completeCommand is the hidden helper of the scripts: its arguments are the words after
// "vpsctl", the last the one being completed (maybe empty).
func completeCommand() *cli.Command {
	return &cli.Command{
		Name: "__complete", Hidden: true, SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			for _, w := range complete(c.App, c.Args().Slice(), states) {
				fmt.Println(w)
			}
			return nil
		},
	}
}

// states reads what can be completed from the state root: VPS IDs and names, templates.
type stateNames struct{ vps, templates []string }

func states(root string) stateNames {
	var out stateNames
	rt, err := runtime.Open(root)
	if err != nil {
		return out
	}
	if ss, err := rt.List(true); err == nil {
		for _, s := range ss {
			out.vps = append(out.vps, strconv.FormatUint(uint64(s.ID), 10))
			if s.Name != "" {
				out.vps = append(out.vps, s.Name)
			}
		}
	}
	if ts, err := template.List(rt.St); err == nil {
		for _, t := range ts {
			out.templates = append(out.templates, t.Name)
		}
	}
	return out
}

// complete returns the candidates for the last of words: commands, flags, a flag's values, or
// a command's arguments (VPSs, templates, template kinds). read is called for the state root
// only when VPSs or templates are wanted.
func complete(app *cli.App, words []string, read func(root string) stateNames) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, done := words[len(words)-1], words[:len(words)-1]
	root := os.Getenv("VPSCTL_ROOT")
	if root == "" {
		root = store.DefaultRoot
	}
	var path []*cli.Command
	cmds, flags := app.Commands, app.Flags
	prevFlag := ""
	positional := 0 // arguments after the command
	for i := 0; i < len(done); i++ {
		w := done[i]
		if w == "--root" && i+1 < len(done) {
			root = done[i+1]
		} else if v, ok := strings.CutPrefix(w, "--root="); ok {
			root = v
		}
		if strings.HasPrefix(w, "-") {
			prevFlag = ""
			if !strings.Contains(w, "=") && takesValue(append(append([]cli.Flag{}, app.Flags...), flags...), w) {
				prevFlag = strings.TrimLeft(w, "-")
				i++
				if i == len(done) {
					break // cur is this flag's value
				}
				prevFlag = ""
			}
			continue
		}
		if sub := findCommand(cmds, w); sub != nil {
			path = append(path, sub)
			cmds, flags = sub.Subcommands, sub.Flags
			continue
		}
		positional++
	}
	if prevFlag != "" {
		switch prevFlag {
		case "template", "ostemplate":
			return read(root).templates
		case "format":
			return []string{"table", "json"}
		case "variant":
			return []string{"systemd", "sysvinit"}
		}
		return nil // a path or a value: the shell's own completion
	}
	if strings.HasPrefix(cur, "-") {
		var out []string
		for _, f := range append(append([]cli.Flag{}, flags...), app.Flags...) {
			for _, n := range f.Names() {
				if len(n) == 1 {
					out = append(out, "-"+n)
				} else {
					out = append(out, "--"+n)
				}
			}
		}
		return append(out, "--help")
	}
	if len(cmds) > 0 {
		var out []string
		for _, c := range cmds {
			if !c.Hidden {
				out = append(out, c.Names()...)
			}
		}
		return out
	}
	if len(path) == 0 {
		return nil
	}
	cmd := path[len(path)-1]
	switch {
	case len(path) == 2 && path[0].Name == "template" && cmd.Name == "build":
		return []string{"busybox", "debian-12"}
	case len(path) == 2 && (path[0].Name == "template" && cmd.Name == "remove" || path[0].Name == "spare" && cmd.Name != "list"):
		return read(root).templates
	case cmd.Name == "completion":
		return []string{"bash", "zsh"}
	case strings.HasPrefix(cmd.ArgsUsage, "[ID|") && strings.Contains(cmd.ArgsUsage, "..."):
		return read(root).vps // list: any number
	case (strings.HasPrefix(cmd.ArgsUsage, "ID|NAME") || strings.HasPrefix(cmd.ArgsUsage, "[ID|NAME]")) && positional == 0:
		return read(root).vps
	}
	return nil
}
