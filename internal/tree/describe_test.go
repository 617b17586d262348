package tree

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	if _, ok := Describe(filepath.Join(dir, "current")); ok {
		t.Fatal("a missing tree is described")
	}
	snap := filepath.Join(dir, "snapshots", "20261203-000001")
	if err := os.MkdirAll(filepath.Join(snap, "metadata"), 0o755); err != nil {
		t.Fatal(err)
	}
	stamp := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	if err := os.WriteFile(filepath.Join(snap, "metadata", "timestamp.chk"), []byte(stamp.Format(TimestampLayout)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	if err := os.Symlink("snapshots/20261203-000001", filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	got, ok := Describe(filepath.Join(dir, "current"))
	if !ok || got.Snapshot != "20261203-000001" || !got.Timestamp.Equal(stamp) || got.Published.Before(before) || got.Published.After(time.Now().Add(time.Second)) {
		t.Errorf("Describe(current) = %+v, %v", got, ok)
	}
	// A plain directory: no snapshot, no publication.
	got, ok = Describe(snap)
	if !ok || got.Snapshot != "" || !got.Published.IsZero() || !got.Timestamp.Equal(stamp) {
		t.Errorf("Describe(plain dir) = %+v, %v", got, ok)
	}
}
