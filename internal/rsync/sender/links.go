package sender

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/lanmirror/lanmirror/internal/rsync/filter"
	"github.com/lanmirror/lanmirror/internal/rsync/flist"
	"github.com/lanmirror/lanmirror/internal/rsync/wire"
)

// maxLinkDepth bounds nested directory symlinks followed for -L/-k (a
// link to an ancestor would otherwise recurse forever), and
// maxFollowed the entries such links may add to one list (loops can
// still multiply the tree).
const (
	maxLinkDepth = 8
	maxFollowed  = 1 << 20
)

// followsLinks tells whether the client asked for symlink referents.
func (s *session) followsLinks() bool {
	return s.o.CopyLinks || s.o.CopyDirLinks || s.o.CopyUnsafeLinks
}

// unsafeLink reports whether a symlink named name (relative to the
// transfer root) points outside the transfer: an absolute target, or one
// climbing above the root.
func unsafeLink(name, target string) bool {
	if strings.HasPrefix(target, "/") {
		return true
	}
	depth := strings.Count(name, "/")
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// resolveLink returns the module-relative path a symlink at rel finally
// points to, following chains inside the module.
func (s *session) resolveLink(rel string) (string, fs.FileInfo, error) {
	for range 40 {
		t, err := s.cfg.Root.Readlink(rel)
		if err != nil {
			return "", nil, err
		}
		if strings.HasPrefix(t, "/") {
			return "", nil, fmt.Errorf("absolute target %q leaves the module", t)
		}
		rel = path.Clean(path.Join(path.Dir(rel), t))
		if rel == ".." || strings.HasPrefix(rel, "../") {
			return "", nil, fmt.Errorf("target %q leaves the module", t)
		}
		fi, err := s.cfg.Root.Lstat(rel)
		if err != nil {
			return "", nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return rel, fi, nil
		}
	}
	return "", nil, fmt.Errorf("too many levels of symbolic links")
}

// followLinks replaces the symlinks the client wants followed (-L, -k,
// --copy-unsafe-links) by their referents inside the module: a file
// entry, or a directory with its contents when recursive. Referents
// outside the module are never read: such links are reported ("no
// referent", as a chrooted rsyncd says) and left out.
func (s *session) followLinks(ctx context.Context, c *flist.Cache, files []*flist.File, rules *filter.Rules, depth int) ([]*flist.File, error) {
	out := make([]*flist.File, 0, len(files))
	changed := false
	for _, f := range files {
		if !f.IsLink() {
			out = append(out, f)
			continue
		}
		follow := s.o.CopyLinks || (s.o.CopyUnsafeLinks && unsafeLink(f.Name, f.LinkTarget))
		target, fi, err := s.resolveLink(f.Path)
		if err == nil && s.o.CopyDirLinks && fi.IsDir() {
			follow = true
		}
		if !follow {
			out = append(out, f)
			continue
		}
		changed = true
		if err != nil {
			s.ioError |= ioErrGeneral
			msg := fmt.Sprintf("symlink has no referent: %q (in %s)\n", f.Name, s.cfg.ModuleName)
			_ = s.out.WriteMsg(wire.MsgErrorXfer, []byte(msg))
			s.log.Info("rsync symlink not followed", "path", f.Path, "err", err)
			continue
		}
		if !fi.IsDir() {
			if !fi.Mode().IsRegular() {
				continue
			}
			g := *f
			g.Path, g.LinkTarget = target, ""
			g.Mode = flist.ModeReg | uint32(fi.Mode().Perm())
			g.Size = fi.Size()
			g.ModTime, g.ModNsec = fi.ModTime().Unix(), int32(fi.ModTime().Nanosecond())
			out = append(out, &g)
			continue
		}
		recursive := s.o.Recursive
		req := flist.Request{Paths: []string{target + "/"}, Recursive: recursive, Links: true, Protocol: s.cfg.Protocol}
		sub, err := c.Select(ctx, req)
		if err != nil {
			return nil, err
		}
		var skip string
		var add []*flist.File
		for i, e := range sub.Files {
			g := *e
			g.TopDir = false
			if i == 0 {
				g.Name = f.Name
			} else {
				g.Name = f.Name + "/" + e.Name
				if skip != "" && strings.HasPrefix(g.Name, skip) {
					continue
				}
				skip = ""
				if rules.Excluded(g.Name, g.IsDir()) {
					if g.IsDir() {
						skip = g.Name + "/"
					}
					continue
				}
			}
			if !recursive && i > 0 && g.IsDir() && !s.o.Dirs {
				continue
			}
			if len(g.Name) >= 4096 {
				continue // longer than any path the client can create
			}
			add = append(add, &g)
		}
		if s.followed += len(add); s.followed > maxFollowed {
			return nil, fmt.Errorf("following symlinks adds more than %d entries (a loop?)", maxFollowed)
		}
		if depth < maxLinkDepth {
			if add, err = s.followLinks(ctx, c, add, rules, depth+1); err != nil {
				return nil, err
			}
		} else {
			add = slices.DeleteFunc(add, func(e *flist.File) bool { return e.IsLink() && e.Name != f.Name })
		}
		out = append(out, add...)
	}
	if !changed || depth > 0 {
		return out, nil
	}
	cmp := flist.Compare
	if s.cfg.Protocol < 29 {
		cmp = func(a, b *flist.File) int { return strings.Compare(a.Name, b.Name) }
	}
	slices.SortStableFunc(out, cmp)
	return slices.CompactFunc(out, func(a, b *flist.File) bool { return a.Name == b.Name }), nil
}
