package status

import (
	"sync"
	"testing"
)

func TestBoard(t *testing.T) {
	var nilBoard *Board
	if s := nilBoard.Sources(); s.Cache != nil || s.Downloads != nil || s.Tree != nil || s.Rsync != nil {
		t.Fatal("a nil Board has sources")
	}
	b := &Board{}
	var wg sync.WaitGroup
	// Parts register while the page may read (-race checks the locking).
	wg.Add(2)
	go func() {
		defer wg.Done()
		b.SetCache(func() (int64, int) { return 10, 2 })
		b.SetDownloads(func() []Download { return []Download{{Name: "a", Written: 1, Size: 2}} })
	}()
	go func() {
		defer wg.Done()
		b.SetTree(func() (Tree, bool) { return Tree{Path: "/t"}, true })
		b.SetRsync(func() Rsync { return Rsync{Active: 1, Total: 3} })
	}()
	for range 100 {
		_ = b.Sources()
	}
	wg.Wait()
	s := b.Sources()
	if n, f := s.Cache(); n != 10 || f != 2 {
		t.Errorf("cache %d %d", n, f)
	}
	if d := s.Downloads(); len(d) != 1 || d[0].Name != "a" {
		t.Errorf("downloads %+v", d)
	}
	if tr, ok := s.Tree(); !ok || tr.Path != "/t" {
		t.Errorf("tree %+v %v", tr, ok)
	}
	if r := s.Rsync(); r.Active != 1 || r.Total != 3 {
		t.Errorf("rsync %+v", r)
	}
}
