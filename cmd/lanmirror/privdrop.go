package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
)

// listen binds every listener of the enabled parts (the HTTP side, the
// rsync daemon) while the process may still be root.
func (s *server) listen() error {
	if s.cfg.HTTPAddr != "" {
		ln, err := listenHTTP(s.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("http: %w", err)
		}
		s.httpLn = ln
	}
	if rsyncEnabled(s.cfg) {
		if err := s.listenRsync(); err != nil {
			return fmt.Errorf("rsync: %w", err)
		}
	}
	return nil
}

// closeListeners closes what listen bound (serve failed before running).
func (s *server) closeListeners() {
	if s.httpLn != nil {
		s.httpLn.Close()
	}
	if s.rsyncLn != nil {
		s.rsyncLn.Close()
	}
}

// drainTimeout is how long in-flight transfers may finish after SIGTERM.
func (s *server) drainTimeout() time.Duration {
	if s.cfg.DrainTimeout > 0 {
		return s.cfg.DrainTimeout
	}
	return config.DefaultDrainTimeout
}

// runAs returns the user and groups the daemon switches to: --user (with
// the rsync modules' gid, if any), else the rsync modules' uid/gid; ok is
// false when none is configured.
func (s *server) runAs() (uid, gid string, ok bool, err error) {
	var modules []config.Module
	if s.rsync != nil {
		modules = s.rsync.modules
	}
	muid, mgid, named, err := rsyncIdentity(modules)
	if err != nil {
		return "", "", false, err
	}
	if s.cfg.User != "" {
		return s.cfg.User, mgid, true, nil
	}
	return muid, mgid, named, nil
}

// dropPrivileges switches the whole process to the configured user once
// every listener is bound: the data directory (and the access log, if
// this call created them) are given to that user first. Go applies setuid
// and friends to all threads. Running on as root needs --allow-root.
func (s *server) dropPrivileges(logFile *os.File) error {
	uid, gid, named, err := s.runAs()
	if err != nil {
		return err
	}
	root := os.Geteuid() == 0
	switch {
	case named && !root:
		s.log.Warn("a user to run as is configured but lanmirror is not running as root: not switching user",
			"user", uid, "group", gid, "uid", os.Getuid())
	case named:
		id, err := lookupIdentity(uid, gid)
		if err != nil {
			return fmt.Errorf("drop privileges: %w", err)
		}
		if err := s.giveDirs(id, logFile); err != nil {
			return err
		}
		if err := switchIdentity(id); err != nil {
			return fmt.Errorf("drop privileges to user %s group %s: %w", uid, gid, err)
		}
		s.log.Info("dropped privileges", "uid", id.uid, "gids", id.gids, "user", uid, "group", gid)
		if err := checkDataWritable(s.cfg, uid); err != nil {
			return err
		}
	}
	if os.Geteuid() == 0 && !s.cfg.AllowRoot {
		return errors.New("refusing to run as root: give --user NAME (e.g. --user portage, or `user` in the config file, " +
			"or uid/gid in the rsync modules) to run as that user once the ports are bound, " +
			"or --allow-root to keep running as root")
	}
	return nil
}

// giveDirs creates the data directory owned by the user the daemon is
// about to run as, and gives it the access log file when it is new
// (empty); existing directories are left as they are (checkDataWritable
// reports one the user cannot write).
func (s *server) giveDirs(id identity, logFile *os.File) error {
	if s.cfg.HTTPAddr != "" || len(s.cfg.TreeUpstream) > 0 || cleanEnabled(s.cfg) {
		if _, err := os.Stat(s.cfg.DataDir); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(s.cfg.DataDir, 0o755); err != nil {
				return fmt.Errorf("create --data %s: %w", s.cfg.DataDir, err)
			}
			if err := os.Chown(s.cfg.DataDir, id.uid, id.gids[0]); err != nil {
				return fmt.Errorf("give --data %s to uid %d: %w", s.cfg.DataDir, id.uid, err)
			}
		}
	}
	if logFile != nil {
		if fi, err := logFile.Stat(); err == nil && fi.Size() == 0 {
			if err := logFile.Chown(id.uid, id.gids[0]); err != nil {
				return fmt.Errorf("give the access log to uid %d: %w", id.uid, err)
			}
		}
	}
	return nil
}
