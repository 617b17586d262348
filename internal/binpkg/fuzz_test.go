package binpkg

import (
	"bytes"
	"testing"
)

// FuzzReadXpak: any bytes give metadata or an error, never a panic or an
// allocation beyond the limits.
func FuzzReadXpak(f *testing.F) {
	f.Add(xpakPackage(f, meta{"CATEGORY": "a", "PF": "b-1", "SLOT": "0"}))
	f.Add([]byte("XPAKPACK\x00\x00\x00\x00\x00\x00\x00\x00XPAKSTOP\x00\x00\x00\x18STOP"))
	f.Add([]byte("STOP"))
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := ReadXpak(bytes.NewReader(b), int64(len(b)), nil)
		if err == nil {
			for k, v := range md {
				if len(k)+len(v) > len(b) {
					t.Fatalf("entry %q larger than the input", k)
				}
			}
		}
	})
}

// FuzzReadGpkgMetadata: any bytes give metadata or an error.
func FuzzReadGpkgMetadata(f *testing.F) {
	inner := tarOf(f, []string{"metadata/PF", "metadata/SLOT"}, map[string][]byte{"metadata/PF": []byte("b-1\n"), "metadata/SLOT": []byte("0\n")})
	for _, ext := range []string{"", ".gz", ".zst"} {
		f.Add(tarOf(f, []string{"b-1/gpkg-1", "b-1/metadata.tar" + ext}, map[string][]byte{"b-1/metadata.tar" + ext: compress(f, ext, inner)}))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ReadGpkgMetadata(bytes.NewReader(b), nil)
	})
}
