package httpd

import (
	"context"
	"errors"
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
	b, out, err := s.opt.Cache.Get(r.Context(), s.binhostObject(segs))
	if err != nil {
		setOutcome(w, "ERROR")
		cacheError(w, r, "binhost "+rel, err)
		return
	}
	s.serveBody(w, r, b, out)
}

// binhostObject names the upstream binhost file at the path segs.
func (s *Server) binhostObject(segs []string) Object {
	keyParts := make([]string, len(segs))
	srcParts := make([]string, len(segs))
	for i, seg := range segs {
		keyParts[i] = seg
		if strings.HasPrefix(seg, ".") {
			keyParts[i] = "@" + seg
		}
		srcParts[i] = url.PathEscape(seg)
	}
	return Object{
		Key:      distcache.BinhostPrefix + strings.Join(keyParts, "/"),
		Sources:  []string{s.opt.BinhostUpstream + "/" + strings.Join(srcParts, "/")},
		Volatile: strings.HasPrefix(path.Base(strings.Join(segs, "/")), "Packages"),
	}
}

// UpstreamPackages reads the upstream binhost's Packages index through
// the cache (the object /binpkgs/Packages would fetch: volatile,
// revalidated after the freshness time). It fits binpkg.UpstreamIndex, so
// the local PKGDIR's index can list the upstream packages too.
func (s *Server) UpstreamPackages(ctx context.Context) (io.ReadCloser, error) {
	if s.opt.BinhostUpstream == "" {
		return nil, errors.New("httpd: no upstream binhost configured")
	}
	b, _, err := s.opt.Cache.Get(ctx, s.binhostObject([]string{"Packages"}))
	if err != nil {
		return nil, fmt.Errorf("upstream binhost Packages: %w", err)
	}
	return &bodyReader{ReadCloser: b.NewReader(0), body: b}, nil
}

// bodyReader reads a Body and closes it with the reader.
type bodyReader struct {
	io.ReadCloser
	body Body
}

// Close closes the reader and the Body.
func (r *bodyReader) Close() error {
	err := r.ReadCloser.Close()
	r.body.Close()
	return err
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
