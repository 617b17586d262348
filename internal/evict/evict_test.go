package evict

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) time.Time { return now.Add(-d) }

func names(vs []Victim) string {
	var s []string
	for _, v := range vs {
		s = append(s, v.Name+":"+string(v.Reason))
	}
	return strings.Join(s, " ")
}

func TestPlanSizeCapServedOrder(t *testing.T) {
	day := 24 * time.Hour
	files := []File{
		{Name: "a", Size: 100, ModTime: ago(100 * day), LastServed: ago(1 * day)},
		{Name: "b", Size: 100, ModTime: ago(1 * day), LastServed: ago(10 * day)}, // recent mtime, served long ago
		{Name: "c", Size: 100, ModTime: ago(5 * day)},                            // never served: mtime counts
		{Name: "d", Size: 100, ModTime: ago(200 * day), LastServed: ago(2 * day)},
		{Name: "e", Size: 100, ModTime: ago(3 * day), LastServed: ago(3 * day)},
	}
	p := MakePlan(files, Policy{MaxSize: 250, Now: now})
	if got := names(p.Victims); got != "b:size-cap c:size-cap e:size-cap" {
		t.Errorf("victims = %s", got)
	}
	if p.Before != 500 || p.After != 200 || p.Freed() != 300 || p.Files != 5 {
		t.Errorf("plan = %+v", p)
	}
	// Under the cap: nothing.
	if p := MakePlan(files, Policy{MaxSize: 500, Now: now}); len(p.Victims) != 0 {
		t.Errorf("under cap: %s", names(p.Victims))
	}
	// No cap, no tree: nothing.
	if p := MakePlan(files, Policy{Now: now}); len(p.Victims) != 0 {
		t.Errorf("no policy: %s", names(p.Victims))
	}
}

func TestPlanUnreferencedAfterGrace(t *testing.T) {
	day := 24 * time.Hour
	files := []File{
		{Name: "ref-old", Size: 10, ModTime: ago(400 * day)},                              // referenced: kept
		{Name: "unref-old", Size: 20, ModTime: ago(40 * day)},                             // unreferenced, unused 40d: removed
		{Name: "unref-new", Size: 30, ModTime: ago(2 * day)},                              // within grace: kept
		{Name: "unref-served", Size: 40, ModTime: ago(90 * day), LastServed: ago(day)},    // served recently: kept
		{Name: "unref-stale", Size: 50, ModTime: ago(1 * day), LastServed: ago(31 * day)}, // served long ago: removed
	}
	ref := func(n string) bool { return strings.HasPrefix(n, "ref-") }
	p := MakePlan(files, Policy{Referenced: ref, Grace: 30 * day, Now: now})
	if got := names(p.Victims); got != "unref-old:unreferenced unref-stale:unreferenced" {
		t.Errorf("victims = %s", got)
	}
	if p.Freed() != 70 {
		t.Errorf("freed = %d", p.Freed())
	}
	// Both rules: unreferenced first, then the cap on what is left.
	p = MakePlan(files, Policy{Referenced: ref, Grace: 30 * day, MaxSize: 45, Now: now})
	if got := names(p.Victims); got != "unref-old:unreferenced unref-stale:unreferenced ref-old:size-cap unref-new:size-cap" {
		t.Errorf("victims with cap = %s", got)
	}
	if p.After != 40 {
		t.Errorf("after = %d", p.After)
	}
}

// TestCleanStore runs Clean against a real Store: the served order comes
// from MarkServed, dry run changes nothing, a real run removes exactly the
// plan.
func TestCleanStore(t *testing.T) {
	dir := t.TempDir()
	st, err := distcache.OpenStore(filepath.Join(dir, "data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	old := time.Now().Add(-time.Hour)
	for _, n := range []string{"one", "two", "three", "four"} {
		src := filepath.Join(dir, n)
		os.WriteFile(src, []byte(strings.Repeat("x", 1000)), 0o644)
		os.Chtimes(src, old, old)
		if err := st.Add(distcache.DistfilesPrefix+n, src, false); err != nil {
			t.Fatal(err)
		}
	}
	// Served order: three, one, four, two (two most recent).
	for _, n := range []string{"three", "one", "four", "two"} {
		st.MarkServed(distcache.DistfilesPrefix + n)
		time.Sleep(2 * time.Millisecond)
	}
	pol := Policy{MaxSize: 2000}
	res, err := Clean(context.Background(), st, pol, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Victims); got != "three:size-cap one:size-cap" || res.Removed != 0 || res.Freed() != 2000 {
		t.Errorf("dry run = %s removed %d freed %d", got, res.Removed, res.Freed())
	}
	if ents, _ := st.Entries(distcache.DistfilesPrefix); len(ents) != 4 {
		t.Fatalf("dry run removed files: %d left", len(ents))
	}
	res, err = Clean(context.Background(), st, pol, false)
	if err != nil || res.Removed != 2 || res.RemovedBytes != 2000 {
		t.Fatalf("clean = %+v, %v", res, err)
	}
	ents, _ := st.Entries(distcache.DistfilesPrefix)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name)
	}
	if strings.Join(left, " ") != "four two" {
		t.Errorf("left = %v", left)
	}
}
