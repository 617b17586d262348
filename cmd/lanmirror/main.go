// Command lanmirror is a LAN mirror for Gentoo in one binary: an rsync daemon
// for the ebuild tree and a caching HTTP proxy and mirror for distfiles.
//
// Each subcommand lives in its own file (newXxxCmd); newRoot lists them.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "lanmirror",
		Short:         "LAN mirror for Gentoo: rsync tree daemon and distfiles cache in one binary",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newServeCmd(),
		newReplicatorCmd(),
		newCheckConfigCmd(),
		newClientConfigCmd(),
		newSyncCmd(),
		newImportCmd(),
		newPrefetchCmd(),
		newCleanCmd(),
		newVerifyCacheCmd(),
		newFirewallCmd(),
		newVerifyTreeCmd(),
	)
	return root
}

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "lanmirror:", err)
		os.Exit(1)
	}
}
