package flist

import (
	"bufio"
	"fmt"
	"io"

	"github.com/lanmirror/lanmirror/internal/rsync/wire"
)

// Transmission flag bits of a file list entry.
const (
	xmitTopDir       = 1 << 0
	xmitSameMode     = 1 << 1
	xmitExtended     = 1 << 2
	xmitSameUID      = 1 << 3
	xmitSameGID      = 1 << 4
	xmitSameName     = 1 << 5
	xmitLongName     = 1 << 6
	xmitSameTime     = 1 << 7
	xmitNoContentDir = 1 << 8
	xmitModNsec      = 1 << 13
)

// EncodeOptions select the entry encoding for one session.
type EncodeOptions struct {
	Protocol     int
	VarintFlags  bool // compat flag VARINT_FLIST_FLAGS negotiated
	Perms        bool
	Times        bool
	Links        bool
	UIDs, GIDs   bool
	Devices      bool
	OmitDirTimes bool
	Recursive    bool                          // directories carry their contents (protocol 30+ flag)
	Checksum     func(f *File) ([]byte, error) // -c: whole-file checksum of regular files
	ChecksumLen  int
	IOError      int32
	ID0Names     bool // compat flag ID0_NAMES: the id lists end with the name of id 0
	NumericIDs   bool // --numeric-ids: no id name lists after the entries
	// UserName and GroupName name the ids in the id lists (the receiver
	// maps names to its own ids); nil or "": the id is sent by number.
	UserName, GroupName func(id uint32) string
}

// Encode writes the file list: every entry, the end marker, the uid/gid
// name lists and, below protocol 30, the io_error word.
func (l *List) Encode(w io.Writer, o EncodeOptions) error {
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriterSize(w, 32*1024)
	}
	e := encoder{w: bw, o: o}
	// Symlinks are listed without -l too (without their target), as
	// stock rsync does: the receiver skips them, --list-only shows them.
	for _, f := range l.Files {
		if err := e.entry(f); err != nil {
			return fmt.Errorf("encoding %q: %w", f.Name, err)
		}
	}
	if err := e.end(); err != nil {
		return err
	}
	if !ok {
		return bw.Flush()
	}
	return nil
}

type encoder struct {
	w        *bufio.Writer
	o        EncodeOptions
	lastName string
	mode     uint32
	mtime    int64
	uid, gid uint32
	uids     []uint32 // distinct non-zero ids, in order of appearance
	gids     []uint32
	seenU    map[uint32]bool
	seenG    map[uint32]bool
	first    bool
	started  bool
	sumZero  []byte
}

func (e *encoder) entry(f *File) error {
	o := e.o
	proto := o.Protocol
	var x int32
	if f.IsDir() && f.Implied {
		// An implied directory (-R): no contents; from 30 flagged as
		// XMIT_TOP_DIR|XMIT_NO_CONTENT_DIR as stock rsync does.
		if proto >= 30 {
			x = xmitTopDir | xmitNoContentDir
		}
	} else if f.IsDir() {
		if proto >= 30 {
			// A top directory has its contents in the list (also the "."
			// of -d); without -r other directories do not.
			if f.TopDir {
				x = xmitTopDir
			} else if !o.Recursive {
				x = xmitNoContentDir
			}
		} else if f.TopDir {
			x = xmitTopDir
		}
	}
	if f.Mode == e.mode {
		x |= xmitSameMode
	} else {
		e.mode = f.Mode
	}
	if o.UIDs && f.UID != 0 && !e.seenU[f.UID] {
		if e.seenU == nil {
			e.seenU = map[uint32]bool{}
		}
		e.seenU[f.UID] = true
		e.uids = append(e.uids, f.UID)
	}
	if o.GIDs && f.GID != 0 && !e.seenG[f.GID] {
		if e.seenG == nil {
			e.seenG = map[uint32]bool{}
		}
		e.seenG[f.GID] = true
		e.gids = append(e.gids, f.GID)
	}
	if !o.UIDs || (f.UID == e.uid && e.started) {
		x |= xmitSameUID
	} else {
		e.uid = f.UID
	}
	if !o.GIDs || (f.GID == e.gid && e.started) {
		x |= xmitSameGID
	} else {
		e.gid = f.GID
	}
	if f.ModTime == e.mtime {
		x |= xmitSameTime
	} else {
		e.mtime = f.ModTime
	}
	if f.ModNsec != 0 && proto >= 31 {
		x |= xmitModNsec
	}
	l1 := 0
	for l1 < len(f.Name) && l1 < len(e.lastName) && l1 < 255 && f.Name[l1] == e.lastName[l1] {
		l1++
	}
	l2 := len(f.Name) - l1
	if l1 > 0 {
		x |= xmitSameName
	}
	if l2 > 255 {
		x |= xmitLongName
	}
	w := e.w
	switch {
	case o.VarintFlags:
		if x == 0 {
			x = xmitExtended
		}
		if err := wire.WriteVarint(w, x); err != nil {
			return err
		}
	case proto >= 28:
		if x == 0 && !f.IsDir() {
			x |= xmitTopDir
		}
		if x&0xFF00 != 0 || x == 0 {
			x |= xmitExtended
			if err := wire.WriteUint16(w, uint16(x)); err != nil {
				return err
			}
		} else if err := w.WriteByte(byte(x)); err != nil {
			return err
		}
	default:
		if x&0xFF == 0 {
			if f.IsDir() {
				x |= xmitLongName
			} else {
				x |= xmitTopDir
			}
		}
		if err := w.WriteByte(byte(x)); err != nil {
			return err
		}
	}
	if x&xmitSameName != 0 {
		w.WriteByte(byte(l1))
	}
	if x&xmitLongName != 0 {
		if err := writeVarint30(w, int32(l2), proto); err != nil {
			return err
		}
	} else {
		w.WriteByte(byte(l2))
	}
	w.WriteString(f.Name[l1:])
	if err := wire.WriteInt64(w, f.Size, proto); err != nil {
		return err
	}
	if x&xmitSameTime == 0 {
		if proto >= 30 {
			wire.WriteVarlong(w, f.ModTime, 4)
		} else {
			wire.WriteInt32(w, int32(f.ModTime))
		}
	}
	if x&xmitModNsec != 0 {
		wire.WriteVarint(w, f.ModNsec)
	}
	if x&xmitSameMode == 0 {
		wire.WriteInt32(w, int32(f.Mode))
	}
	if o.UIDs && x&xmitSameUID == 0 {
		if proto < 30 {
			wire.WriteInt32(w, int32(f.UID))
		} else {
			wire.WriteVarint(w, int32(f.UID))
		}
	}
	if o.GIDs && x&xmitSameGID == 0 {
		if proto < 30 {
			wire.WriteInt32(w, int32(f.GID))
		} else {
			wire.WriteVarint(w, int32(f.GID))
		}
	}
	if o.Links && f.IsLink() {
		writeVarint30(w, int32(len(f.LinkTarget)), proto)
		w.WriteString(f.LinkTarget)
	}
	if o.Checksum != nil && (f.IsRegular() || proto < 28) {
		var sum []byte
		if f.IsRegular() {
			s, err := o.Checksum(f)
			if err != nil {
				return err
			}
			sum = s
		}
		if len(sum) != o.ChecksumLen {
			if e.sumZero == nil {
				e.sumZero = make([]byte, o.ChecksumLen)
			}
			n := min(len(sum), o.ChecksumLen)
			padded := make([]byte, 0, o.ChecksumLen)
			sum = append(append(padded, sum[:n]...), e.sumZero[n:]...)
		}
		w.Write(sum)
	}
	e.lastName = f.Name
	e.started = true
	return nil
}

// end writes the end-of-list marker, id lists and io_error as the
// protocol requires.
func (e *encoder) end() error {
	w := e.w
	o := e.o
	if o.VarintFlags {
		wire.WriteVarint(w, 0)
		wire.WriteVarint(w, o.IOError)
	} else {
		w.WriteByte(0)
	}
	// Id name lists: id, name length, name for each named id, ended by
	// id 0 (with its name when ID0_NAMES was negotiated).
	lists := []struct {
		on   bool
		ids  []uint32
		name func(uint32) string
	}{{o.UIDs, e.uids, o.UserName}, {o.GIDs, e.gids, o.GroupName}}
	for _, l := range lists {
		if !l.on || o.NumericIDs {
			continue
		}
		for _, id := range l.ids {
			if l.name == nil {
				break
			}
			if n := l.name(id); n != "" {
				writeIDName(w, id, n, o.Protocol)
			}
		}
		if o.ID0Names {
			n := "root"
			if l.name != nil && l.name(0) != "" {
				n = l.name(0)
			}
			writeIDName(w, 0, n, o.Protocol)
		} else {
			writeVarint30(w, 0, o.Protocol)
		}
	}
	if o.Protocol < 30 {
		return wire.WriteInt32(w, o.IOError)
	}
	return nil
}

// writeVarint30 writes an int32 below protocol 30, a varint from 30.
func writeVarint30(w io.Writer, v int32, proto int) error {
	if proto < 30 {
		return wire.WriteInt32(w, v)
	}
	return wire.WriteVarint(w, v)
}

// writeIDName writes one id list entry: the id, a length byte and the
// name (at most 255 bytes).
func writeIDName(w *bufio.Writer, id uint32, name string, proto int) {
	if len(name) > 255 {
		name = name[:255]
	}
	writeVarint30(w, int32(id), proto)
	w.WriteByte(byte(len(name)))
	w.WriteString(name)
}
