package httpd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
)

// serveFetch answers fetch-through requests, which route every distfile
// fetch of a client through lanmirror with nothing but wget:
//
//	GET /fetch/<name>?uri=<original URI>
//
// <name> is the distfile name (Portage's ${FILE}; the ".__download__"
// suffix Portage adds while downloading is removed). Everything after
// "uri=" in the query is the original URI, taken verbatim (it may hold
// its own "?" and "&"; a fully percent-encoded URI is decoded once).
// lanmirror serves the cached file, else the mirrors' copy, else fetches
// the original URI itself (http or https, certificates checked), verifies
// it against the Manifest and caches it. The origin is fetched only for
// names the tree has a DIST entry for (--tree), so the route is no open
// proxy: other names are served from the cache and the mirrors only, and
// get 403 with the reason when those do not have them. A uri ending in
// "/distfiles/layout.conf" (Portage reading a mirror's layout through
// FETCHCOMMAND) gets lanmirror's own layout.conf.
//
// Client settings (make.conf; Portage splits the command into words
// before it substitutes the variables, so ${URI} stays one word even with
// "?" or "&" in it):
//
//	FETCHCOMMAND="wget -t 3 -T 60 --passive-ftp -O \"\${DISTDIR}/\${FILE}\" \"http://SERVER:8080/fetch/\${FILE}?uri=\${URI}\""
//	RESUMECOMMAND="wget -c -t 3 -T 60 --passive-ftp -O \"\${DISTDIR}/\${FILE}\" \"http://SERVER:8080/fetch/\${FILE}?uri=\${URI}\""
//
// Portage picks FETCHCOMMAND_HTTPS (and _HTTP) first when they are set;
// set them to the same values, or leave them unset.
func (s *Server) serveFetch(w http.ResponseWriter, r *http.Request, segs []string) {
	if len(segs) != 1 || segs[0] == "" {
		textError(w, http.StatusNotFound, "404 not found: fetch-through is GET /fetch/<name>?uri=<original URI>\n")
		return
	}
	name := strings.TrimSuffix(segs[0], downloadSuffix)
	if name == "" {
		textError(w, http.StatusBadRequest, "400 bad request: empty distfile name\n")
		return
	}
	uri, err := fetchURI(r.URL.RawQuery)
	if err != nil {
		textError(w, http.StatusBadRequest, fmt.Sprintf("400 bad request: %v\n", err))
		return
	}
	if uri != nil && strings.HasSuffix(uri.Path, "/distfiles/layout.conf") {
		// Portage reads each mirror's layout.conf through FETCHCOMMAND
		// (as ${FILE} .layout.conf.<host>). lanmirror answers every
		// distfile by name whatever the path, so its own layout.conf
		// is the right answer for any mirror.
		s.serveLayoutConf(w, r)
		return
	}
	known := s.knownDist(r.Context(), name)
	var origins []string
	refusal := ""
	switch {
	case uri == nil:
		refusal = "no uri= given"
	case uri.Scheme != "http" && uri.Scheme != "https":
		refusal = fmt.Sprintf("origin scheme %q is not fetched (http and https only)", uri.Scheme)
	case s.isSelf(r, uri):
		refusal = "the uri names this server"
	case !known:
		refusal = fmt.Sprintf("origin fetch refused: the tree has no DIST entry for %s (lanmirror fetches client-given URIs only for distfiles its Manifests list)", name)
	default:
		if err := s.opt.Policy.Check(r.Context(), uri); err != nil {
			refusal = fmt.Sprintf("origin fetch refused: %v", err)
		} else {
			origins = append(origins, uri.String())
		}
	}
	b, out, err := s.opt.Cache.Distfile(r.Context(), name, origins...)
	if err != nil {
		setOutcome(w, "ERROR")
		if refusal != "" && isNotFound(err) {
			setOutcome(w, "DENY")
			s.log.Info("fetch-through origin refused", "client", r.RemoteAddr, "name", name, "reason", refusal)
			textError(w, http.StatusForbidden, fmt.Sprintf("403 forbidden: %s is not on the mirrors, and %s\n", name, refusal))
			return
		}
		cacheError(w, r, "distfile "+name, err)
		return
	}
	s.serveBody(w, r, b, out)
}

// verifierWait bounds how long fetch-through waits for a DIST index that
// is still being built (at start) before it answers for a name it does not
// know yet.
const verifierWait = 30 * time.Second

// knownDist reports whether the Verifier has a DIST entry for name. A
// Verifier whose index is being built (distcache.IndexWaiter, as
// gentoo.TreeIndex) or that tells when its first build is done (Ready) is
// waited for, within verifierWait.
func (s *Server) knownDist(ctx context.Context, name string) bool {
	v := s.opt.Verifier
	if v == nil {
		return false
	}
	if _, ok := v.Lookup(name); ok {
		return true
	}
	if w, ok := v.(distcache.IndexWaiter); ok {
		// Until an index exists (also while the first pull of
		// --tree-upstream publishes the tree).
		wctx, cancel := context.WithTimeout(ctx, verifierWait)
		w.WaitIndexed(wctx)
		cancel()
	} else if rv, ok := v.(interface{ Ready() <-chan struct{} }); ok {
		t := time.NewTimer(verifierWait)
		defer t.Stop()
		select {
		case <-rv.Ready():
		case <-t.C:
		case <-ctx.Done():
		}
	}
	_, ok := v.Lookup(name)
	return ok
}

func isNotFound(err error) bool {
	return errors.Is(err, distcache.ErrNotFound)
}

// fetchURI extracts the original URI from a fetch-through query; nil when
// there is none.
func fetchURI(rawQuery string) (*url.URL, error) {
	if rawQuery == "" {
		return nil, nil
	}
	rest, ok := strings.CutPrefix(rawQuery, "uri=")
	if !ok {
		return nil, fmt.Errorf("query must be uri=<original URI>, got %q", rawQuery)
	}
	if !strings.Contains(rest, "://") {
		dec, err := url.QueryUnescape(rest)
		if err != nil {
			return nil, fmt.Errorf("uri %q: %w", rest, err)
		}
		rest = dec
	}
	u, err := url.Parse(rest)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("uri %q is not an absolute URL", rest)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	return u, nil
}
