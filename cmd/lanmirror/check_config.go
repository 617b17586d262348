package main

import (
	"errors"
	"fmt"
	"github.com/lanmirror/lanmirror/internal/treeverify"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/lanmirror/lanmirror/internal/acl"
	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/rsync/daemon"
	"github.com/spf13/cobra"
)

func newCheckConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "validate the config file and settings, print the effective settings, rsync modules and any warnings",
		Long: `check-config takes the same flags as serve, loads everything serve would load
(the config file, --rsyncd-conf, --rsync-module, --tree, --allow, --alias...)
without binding any port, prints the effective settings (in the config file's
format), the rsync daemon settings and modules and the warnings, and exits
non-zero when serve would refuse to start. Errors in the config file name its
file, line and key.`,
		Example: "  lanmirror check-config\n  lanmirror check-config --config /etc/lanmirror/lanmirror.toml --rsyncd-conf /etc/rsyncd.conf",
		Args:    cobra.NoArgs,
	}
	sf := newSettingsFlags().on(cmd.Flags())
	sf.allServeFlags()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		w := cmd.OutOrStdout()
		file := sf.file()
		cfg, err := sf.settings()
		if err != nil {
			// One line per problem (a file may have several unknown keys).
			return reportConfig(w, strings.Split(err.Error(), "\n"))
		}
		if file != "" {
			fmt.Fprintf(w, "config file: %s\n", file)
		} else {
			fmt.Fprintln(w, "config file: none (flags and defaults only)")
		}
		fmt.Fprintln(w, "# effective settings")
		if err := cfg.WriteTOML(w); err != nil {
			return err
		}
		fmt.Fprintln(w, "# end of effective settings")
		return checkConfig(w, cfg)
	}
	return cmd
}

// checkConfig prints the effective configuration; it returns an error
// when something would stop serve.
func checkConfig(w io.Writer, cfg *config.Serve) error {
	var problems []string
	if len(cfg.Allow) > 0 {
		if _, err := acl.Parse(cfg.Allow...); err != nil {
			problems = append(problems, fmt.Sprintf("--allow: %v", err))
		}
	}
	for _, m := range cfg.Mirrors {
		if u, err := url.Parse(m); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, fmt.Sprintf("--mirror %q: want an http:// or https:// URL", m))
		}
	}
	for _, a := range cfg.Aliases {
		if fi, err := os.Stat(a.Dir); err != nil || !fi.IsDir() {
			fmt.Fprintf(w, "warning: alias /%s/: %s is not a readable directory\n", a.Name, a.Dir)
		}
	}
	if len(cfg.TreeUpstream) > 0 {
		switch {
		case cfg.TreeOpenPGPKey == "":
			fmt.Fprintf(w, "warning: %s\n", unauthenticatedTree)
		default:
			if kr, err := treeverify.LoadKeyring(cfg.TreeOpenPGPKey); err != nil {
				problems = append(problems, fmt.Sprintf("--tree-openpgp-key: %v", err))
			} else {
				fmt.Fprintf(w, "tree: pulled trees verified before publishing, signed by %s, max age %s\n", treeverify.DescribeKeyring(kr), cfg.TreeMaxAge)
			}
		}
	}
	if cfg.User != "" {
		if _, err := lookupIdentity(cfg.User, ""); err != nil {
			problems = append(problems, fmt.Sprintf("user: %v", err))
		} else {
			fmt.Fprintf(w, "user: %s (once the ports are bound, when started as root)\n", cfg.User)
		}
	}
	if cfg.UpstreamProxy != "" {
		if u, err := url.Parse(cfg.UpstreamProxy); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, fmt.Sprintf("upstream-proxy %q: want http://host:port", cfg.UpstreamProxy))
		}
	}
	if cfg.HTTPAddr != "" {
		fmt.Fprintf(w, "http: listen %s\n", cfg.HTTPAddr)
	} else {
		fmt.Fprintln(w, "http: disabled")
	}
	if !rsyncEnabled(cfg) {
		if cfg.RsyncAddr == "" {
			fmt.Fprintln(w, "rsync: disabled (--rsync '')")
		} else {
			fmt.Fprintln(w, "rsync: disabled (no module: give --rsyncd-conf, --rsync-module or --tree)")
		}
		return reportConfig(w, problems)
	}
	s, err := loadRsyncSetup(cfg)
	if err != nil {
		problems = append(problems, err.Error())
		return reportConfig(w, problems)
	}
	if _, err := daemon.New(daemon.Config{Modules: s.modules}); err != nil {
		problems = append(problems, err.Error())
	}
	uid, gid, named, err := rsyncIdentity(s.modules)
	if err != nil {
		problems = append(problems, err.Error())
	}
	fmt.Fprintf(w, "rsync: listen %s\n", s.addr)
	if s.conf != nil {
		fmt.Fprintf(w, "  %-12s%s\n", "config", s.conf.File)
	}
	if s.pidFile != "" {
		fmt.Fprintf(w, "  %-12s%s\n", "pid file", s.pidFile)
	}
	if s.motd != "" {
		fmt.Fprintf(w, "  %-12s%d lines\n", "motd", strings.Count(strings.TrimRight(s.motd, "\n"), "\n")+1)
	}
	if named {
		fmt.Fprintf(w, "  %-12suid %s, gid %s (applied when started as root)\n", "user", dashIfEmpty(uid), dashIfEmpty(gid))
		if _, err := lookupIdentity(uid, gid); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, m := range s.modules {
		fmt.Fprintf(w, "module %s\n", m.Name)
		fmt.Fprintf(w, "  %-12s%s\n", "path", m.Path)
		fmt.Fprintf(w, "  %-12s%s\n", "comment", dashIfEmpty(m.Comment))
		fmt.Fprintf(w, "  %-12s%s\n", "exclude", dashIfEmpty(strings.Join(m.Exclude, " ")))
		fmt.Fprintf(w, "  %-12s%s\n", "hosts allow", dashIfEmpty(strings.Join(m.HostsAllow, " ")))
		fmt.Fprintf(w, "  %-12s%s\n", "hosts deny", dashIfEmpty(strings.Join(m.HostsDeny, " ")))
		maxConn := "unlimited"
		switch {
		case m.MaxConnections < 0:
			maxConn = "module disabled"
		case m.MaxConnections > 0:
			maxConn = fmt.Sprint(m.MaxConnections)
		}
		fmt.Fprintf(w, "  %-12s%s\n", "max conn", maxConn)
		fmt.Fprintf(w, "  %-12s%s\n", "listed", yesNoWord(m.List))
		timeout := "none"
		if m.Timeout > 0 {
			timeout = m.Timeout.String()
		}
		fmt.Fprintf(w, "  %-12s%s\n", "timeout", timeout)
	}
	for _, warn := range s.warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	return reportConfig(w, problems)
}

// reportConfig prints the errors and turns them into the command's result.
func reportConfig(w io.Writer, problems []string) error {
	if len(problems) == 0 {
		fmt.Fprintln(w, "configuration OK")
		return nil
	}
	for _, p := range problems {
		fmt.Fprintf(w, "error: %s\n", p)
	}
	return errors.New("configuration has errors")
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNoWord(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
