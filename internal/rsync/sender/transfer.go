package sender

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"runtime"

	"github.com/lanmirror/lanmirror/internal/rsync/token"
	"github.com/lanmirror/lanmirror/internal/rsync/wire"
)

// yieldEvery is how many files the transfer loop sends between two
// yields to the scheduler. A session sending small files makes about
// four system calls per file and, while the client keeps up, never
// blocks: to the runtime it is one goroutine running for seconds. Its
// monitor thread then preempts it every 10 ms, takes its P away when it
// finds it in a system call (the goroutine then resumes on another
// thread) and goes back to polling every 20 µs. On an initial sync of
// the Gentoo tree that cost about 6% of the server's CPU; yielding every
// 128 files (about 2 ms) halves it. A yield costs a few microseconds (it
// wakes another thread), hence not more often.
const yieldEvery = 128

// sendFiles is the sender's transfer loop: it answers the receiver's
// requests until the last phase ends (sender.c send_files).
func (s *session) sendFiles(ctx context.Context) error {
	proto := s.cfg.Protocol
	inCodec, outCodec := s.ndxIn, s.ndxOut
	maxPhase := 1
	if proto >= 29 {
		maxPhase = 2
	}
	phase := 0
	savedIOErr := s.ioError
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		q, err := s.readRequest(inCodec, outCodec)
		if err != nil {
			return err
		}
		if q.Ndx == wire.NdxDone {
			phase++
			if phase > maxPhase {
				break
			}
			if err := outCodec.Write(s.out, wire.NdxDone); err != nil {
				return err
			}
			if err := s.out.Flush(); err != nil {
				return err
			}
			continue
		}
		// Protocol 29 keep-alive: an index one past the list, "new".
		if proto == 29 && int(q.Ndx) == len(s.files) && q.IFlags == itemIsNew {
			continue
		}
		if int(q.Ndx) >= len(s.files) {
			return fmt.Errorf("protocol error: invalid file index %d (list has %d)", q.Ndx, len(s.files))
		}
		f := s.files[q.Ndx]
		if q.IFlags&itemTransfer == 0 {
			if err := s.writeAttrs(outCodec, q); err != nil {
				return err
			}
			continue
		}
		if !f.IsRegular() {
			return fmt.Errorf("protocol error: transfer requested for non-regular file %q", f.Name)
		}
		if phase == 2 {
			return fmt.Errorf("protocol error: transfer request for %q in phase 2", f.Name)
		}
		if s.o.DryRun {
			s.st.Files++
			if err := s.writeAttrs(outCodec, q); err != nil {
				return err
			}
			continue
		}
		h, sums, err := readSums(s.rd, s.strong.Len())
		if err != nil {
			return fmt.Errorf("file %q: %w", f.Name, err)
		}
		inplace := s.o.Inplace && (proto < 29 || !q.HasBasis || q.BasisType == fnamecmpFname)
		if err := s.sendOne(outCodec, q, f.Path, f.Name, f.Size, h, sums, inplace); err != nil {
			return err
		}
		s.st.Files++
		if s.st.Files%yieldEvery == 0 {
			runtime.Gosched()
		}
	}
	if s.ioError != savedIOErr && proto >= 30 {
		if err := s.out.WriteMsg(wire.MsgIOError, le32(s.ioError)); err != nil {
			return err
		}
	}
	if err := outCodec.Write(s.out, wire.NdxDone); err != nil {
		return err
	}
	return s.out.Flush()
}

// readRequest reads the next request, answering deletion stats (protocol
// 31) on the way, and rejects negative indexes other than NDX_DONE.
func (s *session) readRequest(in, out *wire.NdxCodec) (request, error) {
	for {
		q, err := readRequest(s.rd, in, s.cfg.Protocol)
		if err != nil {
			return q, err
		}
		switch {
		case q.Ndx >= 0 || q.Ndx == wire.NdxDone:
			return q, nil
		case q.Ndx == ndxDelStats && s.cfg.Protocol >= 31:
			if err := s.echoDelStats(out); err != nil {
				return q, err
			}
		default:
			return q, fmt.Errorf("protocol error: invalid file index %d", q.Ndx)
		}
	}
}

// echoDelStats reads the receiver's deletion counts and sends them back
// (the client prints them in its stats).
func (s *session) echoDelStats(out *wire.NdxCodec) error {
	var vals [5]int32
	for i := range vals {
		v, err := wire.ReadVarint(s.rd)
		if err != nil {
			return fmt.Errorf("read deletion stats: %w", err)
		}
		if v < 0 || v > 1<<28 {
			return fmt.Errorf("protocol error: deletion count %d out of range", v)
		}
		vals[i] = v
	}
	if err := out.Write(s.out, ndxDelStats); err != nil {
		return err
	}
	for _, v := range vals {
		if err := wire.WriteVarint(s.out, v); err != nil {
			return err
		}
	}
	return nil
}

// writeAttrs echoes an index with its item flags, basis type and xname.
func (s *session) writeAttrs(out *wire.NdxCodec, q request) error {
	if err := out.Write(s.out, q.Ndx); err != nil {
		return err
	}
	if s.cfg.Protocol < 29 {
		return nil
	}
	if err := wire.WriteUint16(s.out, uint16(q.IFlags)); err != nil {
		return err
	}
	if q.HasBasis {
		if err := wire.WriteByte(s.out, q.BasisType); err != nil {
			return err
		}
	}
	if q.HasXname {
		if err := wire.WriteVstring(s.out, q.Xname); err != nil {
			return err
		}
	}
	return nil
}

// sendOne sends one file (size bytes long in the file list): the echoed
// request and sum header, the tokens and the whole-file checksum. A file
// that cannot be opened is reported (MSG_NO_SEND from protocol 30) and
// the session goes on.
func (s *session) sendOne(out *wire.NdxCodec, q request, path, name string, size int64, h sumHead, sums []blockSum, inplace bool) error {
	fh := &s.src
	err := s.fileOpener().openListed(path, size, fh)
	if err != nil {
		code := wire.MsgErrorXfer
		var msg string
		if errors.Is(err, fs.ErrNotExist) {
			s.ioError |= ioErrVanished
			code = wire.MsgWarning
			if s.cfg.Protocol < 28 {
				code = wire.MsgError
			}
			msg = fmt.Sprintf("file has vanished: %q (in %s)\n", name, s.cfg.ModuleName)
		} else {
			s.ioError |= ioErrGeneral
			msg = fmt.Sprintf("rsync: [sender] send_files failed to open %q (in %s): %v\n", name, s.cfg.ModuleName, err)
		}
		s.log.Info("rsync file not sent", "path", path, "err", err)
		if err := s.out.WriteMsg(code, []byte(msg)); err != nil {
			return err
		}
		if s.cfg.Protocol >= 30 {
			return s.out.WriteMsg(wire.MsgNoSend, le32(q.Ndx))
		}
		return nil
	}
	defer fh.Close()
	if err := s.writeAttrs(out, q); err != nil {
		return err
	}
	var hdr [16]byte
	for i, v := range [4]int32{h.Count, h.BlockLen, h.StrongLen, h.Remainder} {
		binary.LittleEndian.PutUint32(hdr[4*i:], uint32(v))
	}
	if _, err := s.out.Write(hdr[:]); err != nil {
		return err
	}
	if s.tw == nil {
		// One token writer serves the whole session: compressed streams
		// keep state from file to file as the receiver does.
		tw, err := token.NewWriterProtocol(s.out, s.compress, s.o.CompressLvl, s.cfg.Protocol)
		if err != nil {
			return fmt.Errorf("token writer: %w", err)
		}
		s.tw = tw
	}
	tw := s.tw
	if s.fsum == nil {
		s.fsum = s.strong.NewFile()
	} else {
		s.strong.ResetFile(s.fsum)
	}
	fsum := s.fsum
	ms, err := matchFileBuf(fh, h, sums, s.strong, tw, fsum, inplace, &s.buf)
	s.st.Literal += ms.Literal
	s.st.Matched += ms.Matched
	if err != nil {
		var re *readError
		if !errors.As(err, &re) {
			return err
		}
		// A read error mid-file: end the file, then send a checksum that
		// cannot match so that the receiver discards (and retries) it.
		s.ioError |= ioErrGeneral
		s.log.Warn("rsync read error", "path", path, "err", err)
		if err := tw.End(); err != nil {
			return err
		}
		msg := fmt.Sprintf("rsync: [sender] read errors mapping %q (in %s): %v\n", name, s.cfg.ModuleName, re.err)
		sum := badSum(fsum.Sum(s.sum[:0]))
		if _, err := s.out.Write(sum); err != nil {
			return err
		}
		return s.out.WriteMsg(wire.MsgErrorXfer, []byte(msg))
	}
	s.sum = fsum.Sum(s.sum[:0])
	_, err = s.out.Write(s.sum)
	return err
}

// badSum returns a checksum of the same length that differs from sum.
func badSum(sum []byte) []byte {
	b := make([]byte, len(sum))
	if string(b) == string(sum) {
		b[len(b)-1] = 1
	}
	return b
}

// readError marks a failure reading the local file (as opposed to
// writing to the client).
type readError struct{ err error }

func (e *readError) Error() string { return "read file: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }
