package httpd

import (
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/lanmirror/lanmirror/internal/config"
)

// aliasDir is a local directory served read-only under /NAME/. Every file
// access goes through an os.Root, so neither ".." nor symlinks can reach
// outside the directory.
type aliasDir struct {
	name string
	root *os.Root
}

func openAlias(a config.Alias) (*aliasDir, error) {
	root, err := os.OpenRoot(a.Dir)
	if err != nil {
		return nil, fmt.Errorf("httpd: alias %s: %w", a.Name, err)
	}
	return &aliasDir{name: a.Name, root: root}, nil
}

// serve answers a request for the decoded segments below /NAME/: files
// with Range and If-Modified-Since support (http.ServeContent), directories
// with a plain index.
func (d *aliasDir) serve(w http.ResponseWriter, r *http.Request, segs []string) {
	setOutcome(w, "ALIAS")
	dirWanted := len(segs) == 0 || segs[len(segs)-1] == ""
	if dirWanted && len(segs) > 0 {
		segs = segs[:len(segs)-1]
	}
	name := "."
	if len(segs) > 0 {
		name = strings.Join(segs, "/")
	}
	f, err := d.root.Open(name)
	if err != nil {
		aliasError(w, r, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		aliasError(w, r, err)
		return
	}
	switch {
	case fi.IsDir():
		if !dirWanted {
			http.Redirect(w, r, (&url.URL{Path: r.URL.Path + "/"}).String(), http.StatusMovedPermanently)
			return
		}
		d.index(w, r, f)
	case fi.Mode().IsRegular():
		if dirWanted {
			notFound(w, r)
			return
		}
		http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
	default:
		notFound(w, r)
	}
}

func aliasError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		notFound(w, r)
		return
	}
	if errors.Is(err, fs.ErrPermission) {
		textError(w, http.StatusForbidden, fmt.Sprintf("403 forbidden: %s\n", r.URL.Path))
		return
	}
	// Escapes from the root (symlinks pointing outside) land here too.
	textError(w, http.StatusNotFound, fmt.Sprintf("404 not found: %s (%v)\n", r.URL.Path, pathlessError(err)))
}

// pathlessError hides local file system paths from clients.
func pathlessError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// index writes a simple HTML listing of dir, streamed in batches so a
// large directory (All/) costs bounded memory.
func (d *aliasDir) index(w http.ResponseWriter, r *http.Request, dir *os.File) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	title := html.EscapeString(r.URL.Path)
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>Index of %s</title></head><body>\n<h1>Index of %s</h1>\n<pre>\n", title, title)
	for {
		ents, err := dir.ReadDir(256)
		for _, e := range ents {
			n := e.Name()
			if e.IsDir() {
				n += "/"
			}
			size := ""
			if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
				size = fmt.Sprint(info.Size())
			}
			fmt.Fprintf(w, "<a href=\"%s\">%s</a> %s\n", html.EscapeString((&url.URL{Path: "./" + n}).String()), html.EscapeString(n), size)
		}
		if err == io.EOF || len(ents) == 0 {
			break
		}
		if err != nil {
			break
		}
	}
	io.WriteString(w, "</pre></body></html>\n")
}
