// Package binpkg serves a Portage binary package directory (PKGDIR) over
// HTTP, read-only, as a binhost that stock Portage clients use through
// binrepos.conf: the package files in every layout Portage writes
// (cat/pf.tbz2, cat/pf.gpkg.tar, multi-instance cat/pn/pf-N.gpkg.tar and
// cat/pn/pf-N.xpak, and the old All/pf.tbz2), and the Packages index, plain
// and gzipped. The PKGDIR's own Packages file is served as is while it
// matches the package files; otherwise an index is generated from the
// packages' xpak or gpkg metadata and kept in memory until the files change.
// With SetUpstream, the index also lists an upstream binhost's packages.
//
// All file access goes through os.Root, so no request can reach outside
// the directory, not even through symbolic links.
package binpkg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Handler serves one PKGDIR. Mount it with the mount prefix stripped, e.g.
// http.StripPrefix("/binpkgs", h).
type Handler struct {
	root   *os.Root
	log    *slog.Logger
	ix     *indexer
	up     *merger // nil unless SetUpstream
	cancel context.CancelFunc
	warm   sync.WaitGroup
}

// NewHandler returns a handler serving the PKGDIR dir. It fails when dir
// cannot be opened as a directory. A nil log discards messages. In the
// background it prepares the index (checks the PKGDIR's own Packages, or
// generates one), so that the first client does not wait for it; Close
// stops that. The handler is a *Handler (Close, SetUpstream).
func NewHandler(dir string, log *slog.Logger) (http.Handler, error) {
	return newHandler(dir, log, time.Second, true)
}

// newHandler is NewHandler with the directory rescan interval and whether
// to prepare the index in the background.
func newHandler(dir string, log *slog.Logger, rescan time.Duration, warm bool) (*Handler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("binpkg: open package directory: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handler{root: root, log: log, ix: newIndexer(ctx, root, log), cancel: cancel}
	h.ix.rescan = rescan
	if warm {
		h.warm.Add(1)
		go func() {
			defer h.warm.Done()
			if _, err := h.ix.index(false); err != nil && ctx.Err() == nil {
				log.Warn("binpkg: preparing the package index", "dir", dir, "err", err)
			}
		}()
	}
	return h, nil
}

// Close stops the background work and releases the directory handle; the
// handler must not be used after.
func (h *Handler) Close() error {
	h.cancel()
	h.warm.Wait()
	return h.root.Close()
}

// ServeHTTP answers GET and HEAD: Packages, Packages.gz and package files,
// with Last-Modified, If-Modified-Since, and Range on every answer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "binpkg: method %s not allowed", r.Method)
		return
	}
	p := r.URL.Path
	if p != "/" && p != "" && strings.HasSuffix(p, "/") {
		httpError(w, http.StatusNotFound, "binpkg: %s: directory listings are not offered", p)
		return
	}
	rel, ok, hidden := cleanRel(p)
	switch {
	case !ok:
		httpError(w, http.StatusBadRequest, "binpkg: %q: bad path", p)
		return
	case hidden:
		httpError(w, http.StatusNotFound, "binpkg: %s: not found", p)
		return
	}
	switch rel {
	case "":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(
			"lanmirror binary package host: Packages, Packages.gz and the package files below.\n"))
	case "Packages", "Packages.gz":
		h.serveIndex(w, r, rel == "Packages.gz")
	default:
		h.serveFile(w, r, rel, "application/octet-stream")
	}
}

// serveIndex serves Packages or Packages.gz, from disk or from memory.
func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request, gz bool) {
	ctype := "text/plain; charset=utf-8"
	if gz {
		ctype = "application/gzip"
	}
	if h.up != nil {
		if a, ok := h.merged(r.Context(), gz); ok {
			w.Header().Set("Content-Type", ctype)
			http.ServeContent(w, r, "", a.modTime, bytes.NewReader(a.body))
			return
		}
	}
	a, err := h.ix.index(gz)
	if err != nil {
		h.log.Error("binpkg: index", "err", err)
		httpError(w, http.StatusInternalServerError, "binpkg: cannot index the package directory")
		return
	}
	if a.file != "" {
		h.serveFile(w, r, a.file, ctype)
		return
	}
	w.Header().Set("Content-Type", ctype)
	http.ServeContent(w, r, "", a.modTime, bytes.NewReader(a.body))
}

// serveFile serves one regular file of the PKGDIR.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, rel, ctype string) {
	f, err := h.root.Open(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			httpError(w, http.StatusNotFound, "binpkg: %s: not found", rel)
			return
		}
		h.log.Warn("binpkg: open", "path", rel, "err", err)
		httpError(w, http.StatusForbidden, "binpkg: %s: not accessible", rel)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		httpError(w, http.StatusInternalServerError, "binpkg: %s: %v", rel, err)
		return
	}
	if !st.Mode().IsRegular() {
		httpError(w, http.StatusNotFound, "binpkg: %s: not a file", rel)
		return
	}
	w.Header().Set("Content-Type", ctype)
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
}

// httpError answers with status and a one-line text body.
func httpError(w http.ResponseWriter, status int, format string, args ...any) {
	http.Error(w, fmt.Sprintf(format, args...), status)
}
