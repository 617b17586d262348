package token

// windowSize is the deflate window: how far back the receiver's inflater
// can refer.
const windowSize = 32 * 1024

// history holds the last windowSize bytes the receiver's inflater has
// seen for the current file: inflated literals and the matched blocks it
// adds to its window.
type history struct {
	buf []byte // the tail of the stream; never more than 2*windowSize
}

func (h *history) reset() { h.buf = h.buf[:0] }

// add appends p, keeping only what the window can hold.
func (h *history) add(p []byte) {
	if len(p) >= windowSize {
		h.buf = append(h.buf[:0], p[len(p)-windowSize:]...)
		return
	}
	if len(h.buf)+len(p) > 2*windowSize {
		keep := windowSize - len(p)
		n := copy(h.buf, h.buf[len(h.buf)-keep:])
		h.buf = h.buf[:n]
	}
	h.buf = append(h.buf, p...)
}

// window returns the last windowSize bytes (or fewer at a file's start).
func (h *history) window() []byte {
	if len(h.buf) > windowSize {
		return h.buf[len(h.buf)-windowSize:]
	}
	return h.buf
}
