package ctl

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "bash:  source <(ccctl completion bash)       (or save it in /etc/bash_completion.d/ccctl)\n" +
			"zsh:   source <(ccctl completion zsh)        (or save it as _ccctl in a directory of $fpath)\n" +
			"fish:  ccctl completion fish | source        (or save it in ~/.config/fish/completions/ccctl.fish)\n" +
			"The bash and zsh scripts ask ccctl itself for the words that fit, so they follow its commands.",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("completion needs one shell: bash, zsh or fish (see `ccctl completion --help`)")
			}
			switch c.Args().First() {
			case "bash":
				_, err := fmt.Fprint(c.App.Writer, bashCompletion)
				return err
			case "zsh":
				_, err := fmt.Fprint(c.App.Writer, zshCompletion)
				return err
			case "fish":
				script, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				_, err = fmt.Fprint(c.App.Writer, script)
				return err
			default:
				return fmt.Errorf("completion %q: ccctl completes bash, zsh and fish", c.Args().First())
			}
		},
	}
}

// bashCompletion asks ccctl for the words after the ones typed
// (--generate-bash-completion, urfave/cli's completion mode).
const bashCompletion = `# bash completion for ccctl: source <(ccctl completion bash)
_ccctl_complete() {
  local cur="${COMP_WORDS[COMP_CWORD]}" words
  if [[ "$cur" == -* ]]; then
    words=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    words=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o bashdefault -o default -F _ccctl_complete ccctl
`

// zshCompletion does the same for zsh.
const zshCompletion = `#compdef ccctl
# zsh completion for ccctl: source <(ccctl completion zsh)
_ccctl_complete() {
  local -a found
  local cur="${words[CURRENT]}"
  if [[ "$cur" == -* ]]; then
    found=("${(@f)$(${words[@]:0:$((CURRENT-1))} "$cur" --generate-bash-completion 2>/dev/null)}")
  else
    found=("${(@f)$(${words[@]:0:$((CURRENT-1))} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ -n "${found[1]}" ]]; then
    compadd -a found
  else
    _files
  fi
}
compdef _ccctl_complete ccctl
`
