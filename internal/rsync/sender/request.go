package sender

import (
	"fmt"
	"io"

	"github.com/lanmirror/lanmirror/internal/rsync/wire"
)

// Item flags (rsync.h) the sender looks at.
const (
	itemTransfer         = 1 << 15
	itemMissingData      = 1 << 16 // pre-29 implied flags do not fit 16 bits; kept internal
	itemBasisTypeFollows = 1 << 11
	itemXnameFollows     = 1 << 12
	itemIsNew            = 1 << 13
)

// ndxDelStats is the index announcing deletion stats (protocol 31).
const ndxDelStats = -3

// fnamecmpFname is the basis type "the file itself" (FNAMECMP_FNAME).
const fnamecmpFname = 0x80

// Bounds on what a receiver may ask for.
const (
	maxBlockLen  = 1 << 17   // rsync's MAX_BLOCK_SIZE
	maxBlocks    = 1 << 21   // bounds memory: 2M blocks cover a 16 GiB basis at 8 KiB
	maxStrongLen = 32        // largest strong sum length
	maxXname     = 4096 + 16 // longest xname accepted
)

// request is one file request read from the receiver.
type request struct {
	Ndx       int32
	IFlags    uint32
	BasisType byte
	Xname     string
	HasBasis  bool
	HasXname  bool
}

// readRequest reads a file index and, from protocol 29, its item flags
// and the optional basis type and xname.
func readRequest(r io.Reader, c *wire.NdxCodec, protocol int) (request, error) {
	var q request
	ndx, err := c.Read(r)
	if err != nil {
		return q, err
	}
	q.Ndx = ndx
	if protocol < 29 {
		if ndx >= 0 {
			q.IFlags = itemTransfer | itemMissingData
		}
		return q, nil
	}
	if ndx < 0 {
		// NDX_DONE, NDX_DEL_STATS and invalid indexes: the caller decides.
		return q, nil
	}
	fl, err := wire.ReadUint16(r)
	if err != nil {
		return q, fmt.Errorf("read item flags: %w", err)
	}
	q.IFlags = uint32(fl)
	if q.IFlags&itemBasisTypeFollows != 0 {
		if q.BasisType, err = wire.ReadByte(r); err != nil {
			return q, fmt.Errorf("read basis type: %w", err)
		}
		q.HasBasis = true
	}
	if q.IFlags&itemXnameFollows != 0 {
		if q.Xname, err = wire.ReadVstring(r, maxXname); err != nil {
			return q, fmt.Errorf("read xname: %w", err)
		}
		q.HasXname = true
	}
	return q, nil
}

// readSums reads a sum header and its block sums, rejecting values out
// of range so that a hostile client cannot make the server allocate
// without bound.
func readSums(r io.Reader, maxStrong int) (sumHead, []blockSum, error) {
	var h sumHead
	vals := []*int32{&h.Count, &h.BlockLen, &h.StrongLen, &h.Remainder}
	for _, p := range vals {
		v, err := wire.ReadInt32(r)
		if err != nil {
			return h, nil, fmt.Errorf("read sum header: %w", err)
		}
		*p = v
	}
	if h.Count < 0 || h.Count > maxBlocks {
		return h, nil, fmt.Errorf("invalid block count %d", h.Count)
	}
	if h.BlockLen < 0 || h.BlockLen > maxBlockLen || (h.Count > 0 && h.BlockLen == 0) {
		return h, nil, fmt.Errorf("invalid block length %d", h.BlockLen)
	}
	if h.StrongLen < 0 || h.StrongLen > int32(min(maxStrong, maxStrongLen)) {
		return h, nil, fmt.Errorf("invalid checksum length %d", h.StrongLen)
	}
	if h.Remainder < 0 || h.Remainder > h.BlockLen {
		return h, nil, fmt.Errorf("invalid remainder %d", h.Remainder)
	}
	if h.Count == 0 {
		return h, nil, nil // (a whole-file transfer: no buffer needed)
	}
	// Grow as data actually arrives instead of trusting Count up front;
	// strong sums share chunked backing arrays.
	const chunk = 4096
	sums := make([]blockSum, 0, min(int(h.Count), chunk))
	var strong []byte
	var rec [4 + maxStrongLen]byte
	for i := int32(0); i < h.Count; i++ {
		if _, err := io.ReadFull(r, rec[:4+h.StrongLen]); err != nil {
			return h, nil, fmt.Errorf("read block sum %d: %w", i, err)
		}
		if len(strong) < int(h.StrongLen) {
			strong = make([]byte, chunk*int(h.StrongLen))
		}
		s := strong[:h.StrongLen:h.StrongLen]
		strong = strong[h.StrongLen:]
		copy(s, rec[4:])
		w := uint32(rec[0]) | uint32(rec[1])<<8 | uint32(rec[2])<<16 | uint32(rec[3])<<24
		sums = append(sums, blockSum{Weak: w, Strong: s})
	}
	return h, sums, nil
}
