//go:build !urfave_cli_no_docs

package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// The man page generator is in builds without the urfave_cli_no_docs tag only: its markdown
// package costs every command 0.3 ms of initialisation (scripts/build.sh). `scripts/build.sh
// --man` makes such a build just to run this hidden command.
func init() {
	extraCommandList = append(extraCommandList, manCommand)
}

func manCommand() *cli.Command {
	return &cli.Command{
		Name: "__man", Hidden: true,
		Action: func(c *cli.Context) error {
			page, err := c.App.ToManWithSection(8)
			if err != nil {
				return err
			}
			fmt.Print(page)
			return nil
		},
	}
}
