package gentoo

// Dist is one DIST entry of a Manifest: what a distfile must be.
type Dist struct {
	Name    string
	Size    int64
	BLAKE2B []byte // 64 bytes, nil when the entry has none
	SHA512  []byte // 64 bytes, nil when the entry has none
}
