package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/lanmirror/lanmirror/internal/acl"
	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/spf13/cobra"
)

// replicatorDaemonEnv marks the detached child of `replicator --daemon`.
const replicatorDaemonEnv = "LANMIRROR_REPLICATOR_DETACHED"

// replicatorOptions are http-replicator's options that are not serve
// settings under another name.
type replicatorOptions struct {
	port    int
	static  bool
	flat    bool
	timeout int
	daemon  bool
	pidFile string
}

func newReplicatorCmd() *cobra.Command {
	var o replicatorOptions
	sf := newSettingsFlags()
	cmd := &cobra.Command{
		Use:   "replicator [http-replicator options] [serve flags]",
		Short: "run as a drop-in for http-replicator: accepts its command line (DAEMON_OPTS of /etc/conf.d/http-replicator)",
		Long: `replicator runs the HTTP side of serve (forward proxy for http_proxy, distfiles
mirror, aliases) from http-replicator's command line, so that the DAEMON_OPTS of
/etc/conf.d/http-replicator start lanmirror unchanged:

  --dir DIR         the cache directory (serve's --data)
  --user USER       run as USER once the port is bound (serve's --user)
  --alias DIR:NAME  serve DIR under /NAME/ (as serve's --alias)
  --log FILE        log file (serve's --log; with --daemon the messages too)
  --ip RULE         client allowed: 10.13.18.*, an address or a CIDR;
                    repeatable; loopback is always allowed (serve's --allow)
  --port PORT       listen on this port, all addresses (serve's --http :PORT)
  --external PROXY  fetch from upstream through this HTTP proxy (host:port or
                    URL; serve's --upstream-proxy)
  --daemon          detach from the terminal (with --pid FILE: its pid)
  --pid FILE        write the pid to FILE
  --static, --flat, --timeout SEC
                    accepted with a warning: lanmirror's cache never checks a
                    distfile again, lays files out its own way and has its own
                    timeouts

Every serve flag is accepted too (--mirror, --tree, --rsyncd-conf ...). The rsync
daemon is off unless --rsync, --rsyncd-conf or --rsync-module is given. Files
http-replicator cached in --dir are not used; bring them into the cache with
lanmirror import DIR --data DIR.`,
		Example: `  lanmirror replicator --dir /var/cache/http-replicator --user portage --alias /usr/portage/packages/All:All \
    --log /var/log/http-replicator.log --ip 10.13.18.* --port 8080`,
		Args: cobra.NoArgs,
	}
	sf.on(cmd.Flags())
	sf.allServeFlags()
	v := &sf.vals
	f := cmd.Flags()
	sf.String(&v.DataDir, "dir", "http-replicator: the cache directory (as --data)")
	sf.Strings(&v.Allow, "ip", "http-replicator: allowed client (10.13.18.*, address or CIDR), repeatable; loopback is always allowed")
	sf.String(&v.UpstreamProxy, "external", "http-replicator: HTTP proxy for the upstream requests, host:port or URL (as --upstream-proxy)")
	f.IntVar(&o.port, "port", 8080, "http-replicator: listen on this port on all addresses (as --http :PORT)")
	f.BoolVar(&o.static, "static", false, "http-replicator: accepted, no effect (distfiles are never checked again)")
	f.BoolVar(&o.flat, "flat", false, "http-replicator: accepted, no effect (the cache has its own layout)")
	f.IntVar(&o.timeout, "timeout", 0, "http-replicator: accepted, no effect (lanmirror has its own timeouts)")
	f.BoolVar(&o.daemon, "daemon", false, "http-replicator: detach from the terminal")
	f.StringVar(&o.pidFile, "pid", "", "http-replicator: write the process id to this file")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
		cfg, err := sf.settings()
		if err != nil {
			return err
		}
		if err := replicatorSettings(cmd, cfg, o, log); err != nil {
			return err
		}
		if o.daemon && os.Getenv(replicatorDaemonEnv) == "" {
			return detach(cfg, o)
		}
		if o.pidFile != "" && os.Getenv(replicatorDaemonEnv) == "" {
			if err := os.WriteFile(o.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
				return fmt.Errorf("--pid: %w", err)
			}
		}
		if o.pidFile != "" {
			defer os.Remove(o.pidFile)
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return serve(ctx, cfg, func() (*config.Serve, error) {
			cfg, err := sf.settings()
			if err != nil {
				return nil, err
			}
			return cfg, replicatorSettings(cmd, cfg, o, log)
		})
	}
	return cmd
}

// replicatorSettings turns http-replicator's options into serve settings.
func replicatorSettings(cmd *cobra.Command, cfg *config.Serve, o replicatorOptions, log *slog.Logger) error {
	f := cmd.Flags()
	if f.Changed("port") || !f.Changed("http") {
		if o.port <= 0 || o.port > 65535 {
			return fmt.Errorf("--port %d: want 1-65535", o.port)
		}
		cfg.HTTPAddr = ":" + strconv.Itoa(o.port)
	}
	if f.Changed("ip") {
		// The server's own Portage reaches it on loopback.
		for _, lo := range []string{"127.0.0.0/8", "::1/128"} {
			cfg.Allow = append(cfg.Allow, lo)
		}
		if _, err := acl.Parse(cfg.Allow...); err != nil {
			return fmt.Errorf("--ip: %w", err)
		}
	}
	if p := cfg.UpstreamProxy; p != "" && !strings.Contains(p, "://") {
		cfg.UpstreamProxy = "http://" + p
	}
	if !f.Changed("rsync") && !f.Changed("rsyncd-conf") && !f.Changed("rsync-module") && cfg.RsyncdConf == "" {
		cfg.RsyncAddr = ""
	}
	for _, name := range []string{"static", "flat", "timeout"} {
		if f.Changed(name) {
			log.Warn("http-replicator option accepted but without effect in lanmirror", "option", "--"+name)
		}
	}
	return nil
}

// detach starts this command again in a new session without --daemon
// (its output to the --log file), writes its pid to --pid and returns.
func detach(cfg *config.Serve, o replicatorOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--daemon: %w", err)
	}
	out, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("--daemon: %w", err)
	}
	if cfg.LogFile != "" {
		if out, err = os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err != nil {
			return fmt.Errorf("--daemon: log: %w", err)
		}
	}
	defer out.Close()
	c := exec.Command(exe, os.Args[1:]...)
	c.Env = append(os.Environ(), replicatorDaemonEnv+"=1")
	c.Stdout, c.Stderr = out, out
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("--daemon: %w", err)
	}
	pid := c.Process.Pid
	if o.pidFile != "" {
		if err := os.WriteFile(o.pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			c.Process.Kill()
			return errors.Join(fmt.Errorf("--pid: %w", err), c.Wait())
		}
	}
	fmt.Println(pid) // as http-replicator prints the daemon's process id
	return c.Process.Release()
}
