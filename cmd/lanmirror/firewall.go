package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/firewall"
	"github.com/spf13/cobra"
)

func newFirewallCmd() *cobra.Command {
	cfg := &config.Serve{}
	var format string
	cmd := &cobra.Command{
		Use:   "firewall",
		Short: "print the iptables or nftables rules that open lanmirror's ports to its allow lists",
		Long: `firewall takes the same settings as serve and prints packet filter rules for
exactly the listeners serve would open: the HTTP port for the --allow networks
(default: loopback and the private ranges), and the rsync port, when there are
modules, for the networks of their "hosts allow". Nothing is loaded.

Formats:
  iptables    IPv4 rules, iptables-restore format (the classic form:
              -A INPUT --protocol tcp --source NET --match state --state NEW
              --destination-port PORT --jump ACCEPT)
  ip6tables   the IPv6 rules, ip6tables-restore format
  sh          both, as iptables and ip6tables commands
  nft         an nftables table "inet lanmirror" with one set per port and family`,
		Example: `  lanmirror firewall --rsyncd-conf /etc/rsyncd.conf --allow 10.13.18.0/24 | iptables-restore --noflush
  lanmirror firewall --rsyncd-conf /etc/rsyncd.conf --allow 10.13.18.0/24 --format ip6tables | ip6tables-restore --noflush
  lanmirror firewall --tree /var/db/repos/gentoo --format nft > /etc/nftables.d/lanmirror.nft`,
		Args: cobra.NoArgs,
	}
	finish := serveFlags(cmd.Flags(), cfg)
	cmd.Flags().StringVar(&format, "format", "iptables", "iptables, ip6tables, sh or nft")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := finish(); err != nil {
			return err
		}
		return printFirewall(cmd.OutOrStdout(), cfg, format)
	}
	return cmd
}

// firewallListeners are the listeners serve would open with cfg.
func firewallListeners(cfg *config.Serve) ([]firewall.Listener, error) {
	var ls []firewall.Listener
	if cfg.HTTPAddr != "" {
		l, err := firewall.HTTPListener(cfg.HTTPAddr, cfg.Allow)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	if rsyncEnabled(cfg) {
		s, err := loadRsyncSetup(cfg)
		if err != nil {
			return nil, err
		}
		l, err := firewall.RsyncListener(s.addr, s.modules)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		return nil, errors.New("no listener: --http is empty and the rsync daemon has no module")
	}
	return ls, nil
}

func printFirewall(w io.Writer, cfg *config.Serve, format string) error {
	ls, err := firewallListeners(cfg)
	if err != nil {
		return err
	}
	switch format {
	case "iptables":
		return firewall.WriteIPTables(w, ls, false)
	case "ip6tables":
		return firewall.WriteIPTables(w, ls, true)
	case "sh":
		return firewall.WriteCommands(w, ls)
	case "nft":
		return firewall.WriteNFT(w, ls)
	default:
		return fmt.Errorf("--format %q: want iptables, ip6tables, sh or nft", format)
	}
}
