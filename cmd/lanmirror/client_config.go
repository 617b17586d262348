package main

import (
	"fmt"

	"github.com/lanmirror/lanmirror/internal/clientconfig"
	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/spf13/cobra"
)

func newClientConfigCmd() *cobra.Command {
	cfg := &config.Serve{}
	var host, module, format string
	cmd := &cobra.Command{
		Use:   "client-config --server HOST [serve flags...]",
		Short: "print the Portage configuration of a client of this server (repos.conf, make.conf, mirrors, binrepos.conf)",
		Long: "client-config prints, ready to paste, the Portage client configuration matching the\n" +
			"server's settings: give it the same flags as `lanmirror serve` (--http, --rsync,\n" +
			"--rsync-module, --rsyncd-conf, --tree, --binpkgs, --binhost-upstream) and the name\n" +
			"clients reach the server by. --format=sh prints a script that writes the files.",
		Args: cobra.NoArgs,
	}
	finish := serveFlags(cmd.Flags(), cfg)
	cmd.Flags().StringVar(&host, "server", "", "name or address clients reach this server by (required)")
	cmd.Flags().StringVar(&module, "module", "", "rsync module of the Gentoo tree (default: chosen from the configured modules)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text (blocks to paste) or sh (a script writing the files)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := finish(); err != nil {
			return err
		}
		if format != "text" && format != "sh" {
			return fmt.Errorf("--format %q: want text or sh", format)
		}
		opt := clientconfig.Options{Host: host, Module: module}
		if rsyncEnabled(cfg) {
			// The rsync daemon's own merge of rsyncd.conf and flags.
			rs, err := loadRsyncSetup(cfg)
			if err != nil {
				return err
			}
			opt.RsyncAddr, opt.RsyncModules = rs.addr, rs.modules
		}
		s, err := clientconfig.FromServe(cfg, opt)
		if err != nil {
			return err
		}
		if format == "sh" {
			return s.WriteShell(cmd.OutOrStdout())
		}
		return s.WriteText(cmd.OutOrStdout())
	}
	return cmd
}
