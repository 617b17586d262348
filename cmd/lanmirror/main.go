// Command lanmirror is a LAN mirror for Gentoo in one binary: an rsync daemon
// for the ebuild tree and a caching HTTP proxy and mirror for distfiles.
//
// Each subcommand lives in its own file and registers itself with
// addCommand from an init function.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

var commands []func() *cobra.Command

// addCommand registers a subcommand constructor; call it from init.
func addCommand(f func() *cobra.Command) { commands = append(commands, f) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "lanmirror",
		Short:         "LAN mirror for Gentoo: rsync tree daemon and distfiles cache in one binary",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, f := range commands {
		root.AddCommand(f())
	}
	return root
}

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "lanmirror:", err)
		os.Exit(1)
	}
}
