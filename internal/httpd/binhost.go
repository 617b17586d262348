package httpd

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/lanmirror/lanmirror/internal/distcache"
)

// serveBinpkgs answers /binpkgs/...: the local PKGDIR handler first; when
// it has no such file (404) and an upstream binhost is configured, the
// file is served from the cache of that binhost: Packages and Packages.gz
// (and other Packages* indexes) are volatile (revalidated upstream after
// the freshness time), package files immutable, under "binhost/<path>".
func (s *Server) serveBinpkgs(w http.ResponseWriter, r *http.Request, segs []string) {
	rel := strings.Join(segs, "/")
	if s.opt.Binpkgs == nil && s.opt.BinhostUpstream == "" {
		textError(w, http.StatusNotFound, "404 not found: no binary packages are configured on this server (--binpkgs, --binhost-upstream)\n")
		return
	}
	if s.opt.Binpkgs != nil {
		r2 := r.Clone(r.Context())
		r2.URL = &url.URL{Path: "/" + rel, RawQuery: r.URL.RawQuery}
		r2.RequestURI = r2.URL.RequestURI()
		if s.opt.BinhostUpstream == "" {
			setOutcome(w, "LOCAL")
			s.opt.Binpkgs.ServeHTTP(w, r2)
			return
		}
		fw := &fallbackWriter{ResponseWriter: w}
		s.opt.Binpkgs.ServeHTTP(fw, r2)
		if !fw.notFound {
			setOutcome(w, "LOCAL")
			return
		}
		// The local handler's 404 headers were not sent; start clean.
		for k := range w.Header() {
			delete(w.Header(), k)
		}
	}
	if rel == "" || strings.HasSuffix(rel, "/") {
		textError(w, http.StatusNotFound, fmt.Sprintf("404 not found: %s (no directory listing of the upstream binhost)\n", r.URL.Path))
		return
	}
	keyParts := make([]string, len(segs))
	srcParts := make([]string, len(segs))
	for i, seg := range segs {
		keyParts[i] = seg
		if strings.HasPrefix(seg, ".") {
			keyParts[i] = "@" + seg
		}
		srcParts[i] = url.PathEscape(seg)
	}
	o := Object{
		Key:      distcache.BinhostPrefix + strings.Join(keyParts, "/"),
		Sources:  []string{s.opt.BinhostUpstream + "/" + strings.Join(srcParts, "/")},
		Volatile: strings.HasPrefix(path.Base(rel), "Packages"),
	}
	b, out, err := s.opt.Cache.Get(r.Context(), o)
	if err != nil {
		setOutcome(w, "ERROR")
		cacheError(w, r, "binhost "+rel, err)
		return
	}
	s.serveBody(w, r, b, out)
}

// fallbackWriter passes a handler's answer through unless it is a 404,
// which it swallows so that another source can answer.
type fallbackWriter struct {
	http.ResponseWriter
	notFound bool
	wrote    bool
}

// WriteHeader forwards any status but 404.
func (f *fallbackWriter) WriteHeader(code int) {
	if f.wrote {
		return
	}
	f.wrote = true
	if code == http.StatusNotFound {
		f.notFound = true
		return
	}
	f.ResponseWriter.WriteHeader(code)
}

// Write discards the body of a 404.
func (f *fallbackWriter) Write(p []byte) (int, error) {
	if !f.wrote {
		f.WriteHeader(http.StatusOK)
	}
	if f.notFound {
		return len(p), nil
	}
	return f.ResponseWriter.Write(p)
}

// Unwrap gives http.ResponseController the underlying writer.
func (f *fallbackWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// ReadFrom keeps the sendfile path of local package files.
func (f *fallbackWriter) ReadFrom(src io.Reader) (int64, error) {
	if !f.wrote {
		f.WriteHeader(http.StatusOK)
	}
	if f.notFound {
		return io.Copy(io.Discard, src)
	}
	if rf, ok := f.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{f.ResponseWriter}, src)
}
