package sender

import (
	"fmt"

	"github.com/lanmirror/lanmirror/internal/rsync/wire"
)

// sendStats sends the totals the client prints with --stats: bytes read,
// bytes written, total size and, from protocol 29, the file list build
// and transfer times in milliseconds (main.c handle_stats).
func (s *session) sendStats() error {
	if err := s.out.Flush(); err != nil {
		return err
	}
	vals := []int64{s.conn.nr.Load(), s.conn.nw.Load(), s.st.TotalSize}
	if s.cfg.Protocol >= 29 {
		vals = append(vals, s.buildMs, s.xferMs)
	}
	for _, v := range vals {
		var err error
		if s.cfg.Protocol < 30 {
			err = wire.WriteLongint(s.out, v)
		} else {
			err = wire.WriteVarlong(s.out, v, 3)
		}
		if err != nil {
			return err
		}
	}
	return s.out.Flush()
}

// goodbye runs the final exchange (main.c read_final_goodbye): below 29
// the client sends -1; from 29 a done marker, which from 31 the sender
// echoes before the client's last done marker.
func (s *session) goodbye() error {
	proto := s.cfg.Protocol
	if proto < 29 {
		v, err := wire.ReadInt32(s.rd)
		if err != nil {
			return fmt.Errorf("read goodbye: %w", err)
		}
		if v != wire.NdxDone {
			return fmt.Errorf("protocol error: invalid packet at end of run (%d)", v)
		}
		return nil
	}
	in, out := s.ndxIn, s.ndxOut
	q, err := s.readRequest(in, out)
	if err != nil {
		return fmt.Errorf("read goodbye: %w", err)
	}
	if proto >= 31 && q.Ndx == wire.NdxDone {
		if err := out.Write(s.out, wire.NdxDone); err != nil {
			return err
		}
		if err := s.out.Flush(); err != nil {
			return err
		}
		if q, err = s.readRequest(in, out); err != nil {
			return fmt.Errorf("read goodbye: %w", err)
		}
	}
	if q.Ndx != wire.NdxDone {
		return fmt.Errorf("protocol error: invalid packet at end of run (%d)", q.Ndx)
	}
	return nil
}
