// Package sender runs the server (sender) side of one rsync session for a
// daemon connection, after the daemon has read the client's arguments:
// compatibility flags and checksum/compression negotiation, the checksum
// seed, multiplexed output, the client's filter list, the file list (one
// flat list, no incremental recursion), the transfer loop (delta or
// whole-file tokens, plain or compressed), the end-of-session phases,
// stats and goodbye, with keep-alives and the I/O timeout throughout.
package sender

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lanmirror/lanmirror/internal/rsync/checksum"
	"github.com/lanmirror/lanmirror/internal/rsync/flist"
	"github.com/lanmirror/lanmirror/internal/rsync/opts"
	"github.com/lanmirror/lanmirror/internal/rsync/token"
	"github.com/lanmirror/lanmirror/internal/rsync/wire"
)

// Config describes one session. The daemon fills it in.
type Config struct {
	Protocol   int           // negotiated, 27..31
	Args       []string      // the client's argument list as received (starting with "--server")
	Root       *os.Root      // module root; all file access goes through it
	ModuleName string        // name of the module being served
	Excludes   []string      // server-side excludes (rsyncd.conf "exclude"), module-relative patterns
	Timeout    time.Duration // 0: none; also the I/O deadline
	// SetupTimeout bounds the time spent waiting for the client (blocked
	// reads and writes, not the server's own work such as scanning the
	// tree) from the start of the session to the end of the file list:
	// a client stalling there is cut off. 0: no bound.
	SetupTimeout time.Duration
	Logger       *slog.Logger // nil: slog.Default()
	ClientInfo   string       // client address for logs
	// Seed overrides the checksum seed (0: derived from the clock); for tests.
	Seed int32
	// Lists is the module's shared file list cache, created once per
	// module by the daemon; nil: Run scans Root (with Excludes) itself.
	Lists *flist.Cache
}

// Stats are the totals of one session, as reported to the client.
type Stats struct {
	TotalRead    int64 // bytes read from the client
	TotalWritten int64 // bytes written to the client
	TotalSize    int64 // sum of the sizes of the files in the list
	Literal      int64 // literal data bytes sent
	Matched      int64 // data matched against the receiver's blocks
	Files        int   // files transferred
}

// ParseArgs parses the client's argument list without running a session,
// so that the daemon can answer "@ERROR: ..." before "@RSYNCD: OK".
func ParseArgs(args []string) (*opts.Options, error) {
	return opts.Parse(args)
}

// Compatibility flags (compat.c) sent from protocol 30. INC_RECURSE is
// never offered: the whole list goes out at once.
const (
	cfIncRecurse     = 1 << 0
	cfSymlinkTimes   = 1 << 1
	cfSafeFlist      = 1 << 3
	cfAvoidXattrOpt  = 1 << 4
	cfChksumSeedFix  = 1 << 5
	cfInplacePartial = 1 << 6
	cfVarintFlistFlg = 1 << 7
	cfID0Names       = 1 << 8
)

// session is the state of one running session.
type session struct {
	cfg      Config
	o        *opts.Options
	log      *slog.Logger
	conn     *countingRW
	in       *bufio.Reader
	rd       io.Reader // the client's stream, demultiplexed from protocol 30
	out      *wire.MuxWriter
	compat   int32
	seed     int32
	varint   bool
	seedFix  bool
	checksum string // negotiated (or implied) transfer checksum name
	compress string // negotiated compression ("" or "none": plain tokens)
	rules    []string
	// unsupported is an option the client asked for that this server
	// cannot serve; reported once output is multiplexed.
	unsupported error
	strong      checksum.Strong // block and whole-file sums
	fileSum     checksum.Strong // -c sums in the file list
	timeout     time.Duration
	files       []*flist.File
	followed    int            // entries added by following symlinks (-L, -k)
	tw          token.Writer   // the session's token stream (created at the first file)
	ndxIn       *wire.NdxCodec // file indexes from the client
	ndxOut      *wire.NdxCodec // file indexes to the client
	ioError     int32
	open        *opener   // opens source files (created at the first file)
	src         srcFile   // the file being sent
	buf         []byte    // read buffer reused from file to file
	fsum        hash.Hash // whole-file checksum, reset per file
	sum         []byte    // its digest
	st          Stats
	buildMs     int64
	xferMs      int64
}

// Run serves one client session on conn (the daemon has already written
// "@RSYNCD: OK" and read the args). It returns transfer stats and an error
// describing why the session failed, if it did. One log line at Info
// level sums up the session when it ends.
func Run(ctx context.Context, conn io.ReadWriter, cfg Config) (Stats, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("client", cfg.ClientInfo, "module", cfg.ModuleName)
	start := time.Now()
	if cfg.Protocol < 27 || cfg.Protocol > 31 {
		err := fmt.Errorf("rsync session: unsupported protocol %d", cfg.Protocol)
		log.Warn("rsync session failed", "err", err)
		return Stats{}, err
	}
	o, err := opts.Parse(cfg.Args)
	if err != nil {
		err = fmt.Errorf("rsync session: %w", err)
		log.Warn("rsync session failed", "err", err)
		return Stats{}, err
	}
	timeout := cfg.Timeout
	if o.Timeout > 0 && (timeout == 0 || o.Timeout < timeout) {
		timeout = o.Timeout
	}
	crw := newCountingRW(ctx, conn, timeout)
	defer crw.stop()
	crw.startSetup(cfg.SetupTimeout)
	crw.rate = float64(o.BwLimit) * 1024
	s := &session{cfg: cfg, o: o, log: log, conn: crw, timeout: timeout,
		ndxIn: wire.NewNdxCodec(cfg.Protocol), ndxOut: wire.NewNdxCodec(cfg.Protocol)}
	s.in = bufio.NewReaderSize(crw, 32*1024)
	err = s.run(ctx)
	if s.open != nil {
		s.open.close()
	}
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	st := s.st
	st.TotalRead, st.TotalWritten = crw.nr.Load(), crw.nw.Load()
	attrs := []any{"protocol", cfg.Protocol, "paths", o.Paths, "files", st.Files,
		"listed", len(s.files), "bytes_read", st.TotalRead, "bytes_written", st.TotalWritten,
		"literal", st.Literal, "matched", st.Matched, "duration", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		log.Warn("rsync session failed", append(attrs, "err", err)...)
	} else {
		log.Info("rsync session done", attrs...)
	}
	return st, err
}

func (s *session) run(ctx context.Context) error {
	if err := s.setup(); err != nil {
		return err
	}
	s.log.Debug("session setup", "protocol", s.cfg.Protocol, "compat", s.compat,
		"checksum", s.checksum, "compress", s.compress, "seed", s.seed)
	s.out = wire.NewMuxWriter(s.conn)
	s.conn.beforeRead = s.out.Flush
	if s.cfg.Protocol >= 31 && s.timeout > 0 {
		if err := s.out.WriteMsg(wire.MsgIOTimeout, le32(int32(s.timeout/time.Second))); err != nil {
			return err
		}
	}
	if s.unsupported != nil {
		return s.fail(s.unsupported)
	}
	stopKA := s.startKeepAlive()
	defer stopKA()
	s.rd = s.in
	if s.cfg.Protocol >= 30 {
		mr := wire.NewMuxReader(s.in)
		mr.OnMsg = s.clientMsg
		s.rd = mr
	}
	rules, err := readFilterList(s.rd)
	if err != nil {
		return s.fail(fmt.Errorf("read filter list: %w", err))
	}
	s.rules = rules
	s.log.Debug("filter list", "rules", rules)
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.sendFileList(ctx); err != nil {
		return s.fail(err)
	}
	// The list is out: from here the module's timeout (if any) applies.
	s.conn.endSetup()
	if len(s.files) == 0 {
		// Nothing to transfer: the client ends the session itself.
		if err := s.out.Flush(); err != nil {
			return err
		}
		if s.ioError != 0 {
			return errors.New("no files to send")
		}
		return nil
	}
	if err := s.sendFiles(ctx); err != nil {
		return s.fail(err)
	}
	if err := s.sendStats(); err != nil {
		return s.fail(err)
	}
	if err := s.goodbye(); err != nil {
		return s.fail(err)
	}
	return s.out.Flush()
}

// fileOpener returns the session's file opener, creating it on first use.
func (s *session) fileOpener() *opener {
	if s.open == nil {
		s.open = newOpener(s.cfg.Root)
	}
	return s.open
}

// fail tells the client why the session ends (where that is still
// possible) and returns err.
func (s *session) fail(err error) error {
	if errors.Is(err, wire.ErrClientError) {
		if s.cfg.Protocol >= 31 {
			_ = s.out.WriteMsg(wire.MsgErrorExit, nil)
		}
		_ = s.out.Flush()
		return err
	}
	if isNetErr(err) {
		return err
	}
	_ = s.out.WriteMsg(wire.MsgError, []byte(fmt.Sprintf("rsync: [sender] %v\n", err)))
	_ = s.out.Flush()
	return err
}

// isNetErr reports whether err comes from the connection itself, so that
// writing an error message to the client is pointless.
func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// clientMsg handles an out-of-band message from the client (protocol 30+).
func (s *session) clientMsg(code wire.MsgCode, payload []byte) error {
	switch code {
	case wire.MsgInfo:
		s.log.Debug("client message", "text", strings.TrimSpace(string(payload)))
	case wire.MsgWarning, wire.MsgError, wire.MsgErrorXfer:
		// The client's own complaints (e.g. a file that failed
		// verification): worth the operator's attention.
		s.log.Info("rsync client reported", "code", int(code), "text", strings.TrimSpace(string(payload)))
	case wire.MsgIOError:
		if len(payload) == 4 {
			s.log.Debug("client io error", "flags", binary.LittleEndian.Uint32(payload))
		}
	case wire.MsgNoop:
	default:
		s.log.Debug("ignored client message", "code", int(code), "len", len(payload))
	}
	return nil
}

func le32(v int32) []byte {
	return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// ourCompressions lists the compressions advertised from protocol 30:
// those the token package can actually write (a client asking for -z
// does not accept "none"), or "none" when there is nothing else.
func ourCompressions() []string {
	var l []string
	for _, n := range token.Supported() {
		if _, err := token.NewWriter(io.Discard, n, -1); err == nil {
			l = append(l, n)
		}
	}
	if len(l) == 0 {
		l = []string{"none"}
	}
	return l
}

// setup writes compatibility flags, negotiates checksum and compression
// names (30+ with the 'v' capability) and sends the checksum seed.
func (s *session) setup() error {
	w := bufio.NewWriter(s.conn)
	if s.cfg.Protocol >= 30 {
		// Incremental recursion is never offered: one flat list.
		var cf int32 = cfSymlinkTimes
		for _, c := range []struct {
			letter byte
			flag   int32
		}{{'f', cfSafeFlist}, {'x', cfAvoidXattrOpt}, {'C', cfChksumSeedFix},
			{'I', cfInplacePartial}, {'u', cfID0Names}, {'v', cfVarintFlistFlg}} {
			if s.o.HasCap(c.letter) {
				cf |= c.flag
			}
		}
		s.seedFix = cf&cfChksumSeedFix != 0
		s.varint = cf&cfVarintFlistFlg != 0
		s.compat = cf
		if err := wire.WriteVarint(w, cf); err != nil {
			return fmt.Errorf("write compat flags: %w", err)
		}
	}
	xfer, file, _ := strings.Cut(s.o.ChecksumChoice, ",")
	if file == "" {
		file = xfer
	}
	s.checksum = xfer
	if s.o.Compress {
		s.compress = "zlib"
	}
	if s.o.CompressChoice != "" {
		s.compress = s.o.CompressChoice
	}
	if s.varint {
		if err := s.negotiate(w); err != nil {
			return err
		}
		if s.o.ChecksumChoice == "" {
			file = s.checksum
		}
	}
	if s.compress == "none" {
		s.compress = ""
	}
	if s.compress != "" {
		if _, err := token.NewWriter(io.Discard, s.compress, -1); err != nil {
			s.unsupported = fmt.Errorf("compression %q is not supported by this server (try without -z)", s.compress)
		}
	}
	s.seed = s.cfg.Seed
	if s.o.ChecksumSeed != 0 {
		s.seed = s.o.ChecksumSeed
	}
	if s.seed == 0 {
		s.seed = int32(time.Now().Unix()) ^ int32(os.Getpid()<<6)
	}
	var err error
	if s.strong, err = checksum.ForName(s.checksum, s.cfg.Protocol, s.seed, s.seedFix); err != nil {
		s.unsupported = err
	}
	if s.fileSum, err = checksum.ForName(file, s.cfg.Protocol, s.seed, s.seedFix); err != nil {
		s.unsupported = err
	}
	s.checksum = string(s.strong.Kind)
	if err := wire.WriteInt32(w, s.seed); err != nil {
		return fmt.Errorf("write checksum seed: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	return nil
}

// negotiate exchanges the checksum (and with -z the compression) name
// lists (compat.c negotiate_the_strings): each side sends its lists and
// reads the other's, and both take the first name of the client's list
// that the server's list holds. Stock clients send both lists before
// reading anything, so the server reads the client's compression list
// before it sends its own: it picks by its own preference (lz4, the
// cheapest to compress, first; see token.Supported) among the names the
// client lists, and advertises that name followed only by names the
// client lists after it (or none of its list), so that the client's
// rule arrives at the same choice.
func (s *session) negotiate(w *bufio.Writer) error {
	sendCsum := s.o.ChecksumChoice == ""
	sendComp := s.o.Compress && s.o.CompressChoice == ""
	ourSums := checksum.Names()
	ourComps := ourCompressions()
	if sendCsum {
		if err := wire.WriteVstring(w, strings.Join(ourSums, " ")); err != nil {
			return fmt.Errorf("send checksum list: %w", err)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("negotiate: %w", err)
		}
		list, err := wire.ReadVstring(s.in, 1024)
		if err != nil {
			return fmt.Errorf("read checksum list: %w", err)
		}
		if s.checksum, err = choose(list, ourSums); err != nil {
			return fmt.Errorf("checksum negotiation: %w", err)
		}
	}
	if sendComp {
		list, err := wire.ReadVstring(s.in, 1024)
		if err != nil {
			return fmt.Errorf("read compression list: %w", err)
		}
		theirs := strings.Fields(list)
		pick, advertise := preferred(theirs, ourComps)
		if err := wire.WriteVstring(w, strings.Join(advertise, " ")); err != nil {
			return fmt.Errorf("send compression list: %w", err)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("negotiate: %w", err)
		}
		if pick == "" {
			return fmt.Errorf("compression negotiation: no common choice in %q", list)
		}
		s.compress = pick
	}
	return nil
}

// preferred picks our favourite (the first of ours) among the client's
// names theirs, and the list to advertise: ours without the names the
// client lists before the pick. With nothing in common it returns "" and
// our whole list.
func preferred(theirs, ours []string) (pick string, advertise []string) {
	for _, n := range ours {
		if slices.Contains(theirs, n) {
			pick = n
			break
		}
	}
	if pick == "" {
		return "", ours
	}
	before := theirs[:slices.Index(theirs, pick)]
	for _, n := range ours {
		if !slices.Contains(before, n) {
			advertise = append(advertise, n)
		}
	}
	return pick, advertise
}

// choose picks the first name of the client's list that we implement.
func choose(theirs string, ours []string) (string, error) {
	for _, n := range strings.Fields(theirs) {
		if contains(ours, n) {
			return n, nil
		}
	}
	return "", fmt.Errorf("no common choice in %q", theirs)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// maxRuleLen bounds one filter rule.
const maxRuleLen = 4096

// maxRules bounds the number of filter rules.
const maxRules = 10000

// readFilterList reads the client's filter rules: int32 length + text,
// ended by a zero length.
func readFilterList(r io.Reader) ([]string, error) {
	var rules []string
	for {
		n, err := wire.ReadInt32(r)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return rules, nil
		}
		if n < 0 || n > maxRuleLen {
			return nil, fmt.Errorf("filter rule length %d out of range", n)
		}
		if len(rules) >= maxRules {
			return nil, fmt.Errorf("more than %d filter rules", maxRules)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		rules = append(rules, string(b))
	}
}
