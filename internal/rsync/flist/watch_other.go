//go:build !linux

package flist

import "errors"

// watcher is only implemented on Linux; elsewhere freshness is checked
// with one lstat per directory.
type watcher struct{}

func watchable(string) (bool, string) { return false, "no inotify" }
func newWatcher() (*watcher, error)   { return nil, errors.New("no inotify") }
func (w *watcher) add(string) error   { return errors.New("no inotify") }
func (w *watcher) changed() bool      { return true }
func (w *watcher) close()             {}
