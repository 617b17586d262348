package httpd

import (
	"bytes"
	"fmt"
	"net/http"
)

// serveMirror answers the GLEP 75 mirror paths below /distfiles/:
// layout.conf, <hh>/<name> (hh must be the name's BLAKE2B directory) and
// the flat <name>, all from one cache keyed by file name. segs are the
// decoded segments after "distfiles".
func (s *Server) serveMirror(w http.ResponseWriter, r *http.Request, segs []string) {
	switch {
	case len(segs) == 1 && segs[0] == "layout.conf":
		s.serveLayoutConf(w, r)
	case len(segs) == 1 && segs[0] != "":
		s.serveDistfile(w, r, segs[0])
	case len(segs) == 2 && segs[1] != "":
		if segs[0] != hashDir(segs[1]) {
			textError(w, http.StatusNotFound, fmt.Sprintf("404 not found: %s is not in directory %s of the BLAKE2B 8 layout (it belongs in %s/)\n",
				segs[1], segs[0], hashDir(segs[1])))
			return
		}
		s.serveDistfile(w, r, segs[1])
	default:
		textError(w, http.StatusNotFound, fmt.Sprintf("404 not found: %s (distfiles are served as /distfiles/<name> or /distfiles/<hh>/<name>; no directory listing)\n", r.URL.Path))
	}
}

// serveLayoutConf serves the layout.conf describing what lanmirror serves.
func (s *Server) serveLayoutConf(w http.ResponseWriter, r *http.Request) {
	setOutcome(w, "LOCAL")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	http.ServeContent(w, r, "layout.conf", s.start, bytes.NewReader(s.opt.LayoutConf))
}

// serveDistfile serves one distfile by name from the cache (mirrors, then
// origins, on a miss).
func (s *Server) serveDistfile(w http.ResponseWriter, r *http.Request, name string, origins ...string) {
	b, out, err := s.opt.Cache.Distfile(r.Context(), name, origins...)
	if err != nil {
		setOutcome(w, "ERROR")
		cacheError(w, r, "distfile "+name, err)
		return
	}
	s.serveBody(w, r, b, out)
}
