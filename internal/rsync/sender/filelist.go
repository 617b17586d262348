package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/lanmirror/lanmirror/internal/rsync/filter"
	"github.com/lanmirror/lanmirror/internal/rsync/flist"
	"github.com/lanmirror/lanmirror/internal/rsync/wire"
)

// I/O error bits reported to the client (rsync.h IOERR_*).
const (
	ioErrGeneral  = 1 << 0
	ioErrVanished = 1 << 1
)

// stripModule turns the client's source arguments ("mod/", "mod/dir/f",
// "mod") into module-relative paths.
func stripModule(paths []string, module string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		switch {
		case module != "" && p == module:
			p = ""
		case module != "" && strings.HasPrefix(p, module+"/"):
			p = p[len(module)+1:]
		}
		out = append(out, p)
	}
	return out
}

// cache returns the module's shared list cache, or a private one.
func (s *session) cache() *flist.Cache {
	if s.cfg.Lists != nil {
		return s.cfg.Lists
	}
	c := flist.NewCache(s.cfg.Root, s.cfg.Excludes, s.log)
	c.Watch = false // one scan for this session only
	return c
}

// buildList selects what the client asked for. A path that does not
// exist is reported to the client and the others are still sent, as
// stock rsync does.
func (s *session) buildList(ctx context.Context) ([]*flist.File, error) {
	rules, err := filter.Parse(s.rules, s.cfg.Protocol)
	if err != nil {
		return nil, fmt.Errorf("invalid filter rules: %w", err)
	}
	c := s.cache()
	req := flist.Request{Recursive: s.o.Recursive, Links: s.o.Links, Rules: rules, Protocol: s.cfg.Protocol}
	paths := s.expandGlobs(c, stripModule(s.o.Paths, s.cfg.ModuleName))
	if s.o.Relative {
		all, err := s.buildRelative(ctx, c, paths, rules)
		if err != nil {
			return nil, err
		}
		return slices.DeleteFunc(all, func(f *flist.File) bool { return !s.keep(f) }), nil
	}
	var good []string
	for _, p := range paths {
		if len(paths) > 1 {
			r := req
			r.Paths = []string{p}
			if _, err := c.Select(ctx, r); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				s.reportMissing(p, err)
				continue
			}
		}
		good = append(good, p)
	}
	if len(good) == 0 {
		return nil, nil
	}
	req.Paths = good
	l, err := c.Select(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.reportMissing(good[0], err)
		return nil, nil
	}
	all := l.Files
	if s.followsLinks() {
		if all, err = s.followLinks(ctx, c, all, rules, 0); err != nil {
			return nil, err
		}
	}
	files := make([]*flist.File, 0, len(all))
	for _, f := range all {
		if s.keep(f) {
			files = append(files, f)
		}
	}
	return files, nil
}

// reportMissing tells the client that a source path cannot be sent.
func (s *session) reportMissing(p string, err error) {
	if s.o.IgnoreMissingArgs && errors.Is(err, fs.ErrNotExist) {
		s.log.Debug("rsync missing source path ignored", "path", p)
		return
	}
	s.ioError |= ioErrGeneral
	why := err.Error()
	if errors.Is(err, fs.ErrNotExist) {
		why = "No such file or directory (2)"
	}
	msg := fmt.Sprintf("rsync: [sender] link_stat %q (in %s) failed: %s\n", p, s.cfg.ModuleName, why)
	_ = s.out.WriteMsg(wire.MsgErrorXfer, []byte(msg))
	s.log.Info("rsync source path not sent", "path", p, "err", err)
}

// keep tells whether a selected entry goes into the list: stock rsync
// skips directories without -r or -d (except the top one). Symlinks
// are always listed (without -l the receiver skips them).
func (s *session) keep(f *flist.File) bool {
	return !(f.IsDir() && !s.o.Recursive && !s.o.Dirs && !f.TopDir && !f.Implied)
}

// isModuleRoot tells whether the client asked for the whole module.
func isModuleRoot(paths []string) bool {
	if len(paths) != 1 {
		return false
	}
	p := strings.TrimRight(paths[0], "/")
	return p == "" || p == "."
}

// sendFileList builds and sends the file list, the id lists and the
// io_error word as the negotiated protocol expects.
func (s *session) sendFileList(ctx context.Context) error {
	start := time.Now()
	eo := s.encodeOptions()
	paths := stripModule(s.o.Paths, s.cfg.ModuleName)
	if s.cfg.Lists != nil && !s.o.Checksum && !s.followsLinks() && !s.o.Relative && isModuleRoot(paths) {
		// The common case (every emerge --sync): the whole module with
		// the same options as other clients; share the encoded list.
		return s.sendPrepared(ctx, paths, eo, start)
	}
	files, err := s.buildList(ctx)
	if err != nil {
		return err
	}
	s.files = files
	s.buildMs = max(time.Since(start).Milliseconds(), 1)
	start = time.Now()
	for _, f := range files {
		if f.IsRegular() || f.IsLink() {
			s.st.TotalSize += f.Size
		}
	}
	proto := s.cfg.Protocol
	// From 30 an io_error travels in the end-of-list marker only with
	// the safe file list; otherwise as MSG_IO_ERROR after the list.
	safe := proto >= 31 || s.compat&cfSafeFlist != 0
	if proto < 30 || (s.varint && safe) {
		eo.IOError = s.ioError
	}
	if s.o.Checksum {
		eo.Checksum = s.listChecksum
		eo.ChecksumLen = s.fileSum.Len()
	}
	l := &flist.List{Files: files}
	if err := l.Encode(s.out, eo); err != nil {
		return fmt.Errorf("send file list: %w", err)
	}
	if proto >= 30 && eo.IOError == 0 && s.ioError != 0 {
		if err := s.out.WriteMsg(wire.MsgIOError, le32(s.ioError)); err != nil {
			return err
		}
	}
	if err := s.out.Flush(); err != nil {
		return err
	}
	s.xferMs = time.Since(start).Milliseconds()
	s.log.Debug("file list sent", "files", len(files), "build_ms", s.buildMs, "xfer_ms", s.xferMs)
	return nil
}

// listChecksum returns the -c checksum of a regular file, shared with
// other clients through the module's cache where that is safe. A file
// that cannot be read gets an all-zero sum (the client then transfers
// it); such sums are never kept.
func (s *session) listChecksum(f *flist.File) ([]byte, error) {
	var sum []byte
	var err error
	if s.cfg.Lists != nil {
		sum, err = s.cfg.Lists.FileSum(f, string(s.fileSum.Kind), s.computeChecksum)
	} else {
		sum, err = s.computeChecksum(f)
	}
	if err != nil {
		s.log.Debug("checksum: cannot read", "path", f.Path, "err", err)
		return make([]byte, s.fileSum.Len()), nil
	}
	return sum, nil
}

// computeChecksum reads a regular file and computes its -c checksum.
func (s *session) computeChecksum(f *flist.File) ([]byte, error) {
	fh, err := s.cfg.Root.Open(f.Path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	h := s.fileSum.NewList()
	if _, err := io.Copy(h, fh); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// encodeOptions returns the list encoding the session negotiated.
func (s *session) encodeOptions() flist.EncodeOptions {
	return flist.EncodeOptions{
		Protocol:     s.cfg.Protocol,
		VarintFlags:  s.varint,
		Perms:        s.o.Perms,
		Times:        s.o.Times,
		Links:        s.o.Links,
		UIDs:         s.o.Owner,
		GIDs:         s.o.Group,
		NumericIDs:   s.o.NumericIDs,
		OmitDirTimes: s.o.OmitDirTimes,
		Recursive:    s.o.Recursive,
		ID0Names:     s.compat&cfID0Names != 0,
		UserName:     flist.UserName,
		GroupName:    flist.GroupName,
	}
}

// sendPrepared sends the module's shared, already encoded list for the
// session's options and rules.
func (s *session) sendPrepared(ctx context.Context, paths []string, eo flist.EncodeOptions, start time.Time) error {
	rules, err := filter.Parse(s.rules, s.cfg.Protocol)
	if err != nil {
		return fmt.Errorf("invalid filter rules: %w", err)
	}
	req := flist.Request{Paths: paths, Recursive: s.o.Recursive, Links: s.o.Links, Rules: rules, Protocol: s.cfg.Protocol}
	key := fmt.Sprintf("%+v|%v|%v|%q", eo, s.o.Dirs, s.o.ListOnly, s.rules)
	p, err := s.cfg.Lists.Prepare(ctx, req, key, s.keep, eo)
	if err != nil {
		return err
	}
	s.files = p.Files
	s.st.TotalSize = p.TotalSize
	s.buildMs = max(time.Since(start).Milliseconds(), 1)
	start = time.Now()
	if _, err := s.out.Write(p.Encoded); err != nil {
		return fmt.Errorf("send file list: %w", err)
	}
	if err := s.out.Flush(); err != nil {
		return err
	}
	s.xferMs = time.Since(start).Milliseconds()
	s.log.Debug("shared file list sent", "files", len(p.Files), "bytes", len(p.Encoded), "build_ms", s.buildMs)
	return nil
}
