// Package sender runs the server (sender) side of one rsync session for a
// daemon connection, after the daemon has read the client's arguments:
// compatibility flags and checksum/compression negotiation, the checksum
// seed, multiplexed output, the client's filter list, the file list and
// the transfer loop.
package sender

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lanmirror/lanmirror/internal/rsync/opts"
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
	Logger     *slog.Logger  // nil: slog.Default()
	ClientInfo string        // client address for logs
	// Seed overrides the checksum seed (0: derived from the clock); for tests.
	Seed int32
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

// Compatibility flags (compat.c) sent from protocol 30.
const (
	cfIncRecurse     = 1 << 0
	cfSymlinkTimes   = 1 << 1
	cfSafeFlist      = 1 << 3
	cfChksumSeedFix  = 1 << 5
	cfVarintFlistFlg = 1 << 7
)

// countingRW counts the bytes that cross the connection.
type countingRW struct {
	r        io.Reader
	w        io.Writer
	nr, nw   int64
	deadline func()
}

func (c *countingRW) Read(p []byte) (int, error) {
	if c.deadline != nil {
		c.deadline()
	}
	n, err := c.r.Read(p)
	c.nr += int64(n)
	return n, err
}

func (c *countingRW) Write(p []byte) (int, error) {
	if c.deadline != nil {
		c.deadline()
	}
	n, err := c.w.Write(p)
	c.nw += int64(n)
	return n, err
}

// session is the state of one running session.
type session struct {
	cfg      Config
	o        *opts.Options
	log      *slog.Logger
	conn     *countingRW
	in       *bufio.Reader
	out      *wire.MuxWriter
	compat   int32
	seed     int32
	varint   bool
	seedFix  bool
	checksum string
	compress string
	rules    []string
}

// Run serves one client session on conn (the daemon has already written
// "@RSYNCD: OK" and read the args). It returns transfer stats and an error
// describing why the session failed, if it did.
func Run(ctx context.Context, conn io.ReadWriter, cfg Config) (Stats, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Protocol < 27 || cfg.Protocol > 31 {
		return Stats{}, fmt.Errorf("rsync session: unsupported protocol %d", cfg.Protocol)
	}
	o, err := opts.Parse(cfg.Args)
	if err != nil {
		return Stats{}, fmt.Errorf("rsync session: %w", err)
	}
	crw := &countingRW{r: conn, w: conn}
	if dl, ok := conn.(interface{ SetDeadline(time.Time) error }); ok {
		timeout := cfg.Timeout
		if o.Timeout > 0 && (timeout == 0 || o.Timeout < timeout) {
			timeout = o.Timeout
		}
		if timeout > 0 {
			crw.deadline = func() { _ = dl.SetDeadline(time.Now().Add(timeout)) }
		}
		stop := context.AfterFunc(ctx, func() { _ = dl.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	s := &session{cfg: cfg, o: o, log: log.With("client", cfg.ClientInfo, "module", cfg.ModuleName), conn: crw}
	s.in = bufio.NewReaderSize(crw, 32*1024)
	err = s.run(ctx)
	st := Stats{TotalRead: crw.nr, TotalWritten: crw.nw}
	if err != nil {
		s.log.Warn("rsync session failed", "err", err)
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
	if s.cfg.Protocol >= 31 && s.o.Timeout > 0 {
		if err := s.out.WriteMsg(wire.MsgIOTimeout, le32(int32(s.o.Timeout/time.Second))); err != nil {
			return err
		}
	}
	var in io.Reader = s.in
	if s.cfg.Protocol >= 30 {
		in = wire.NewMuxReader(s.in)
	}
	rules, err := readFilterList(in)
	if err != nil {
		return fmt.Errorf("read filter list: %w", err)
	}
	s.rules = rules
	s.log.Debug("filter list", "rules", rules)
	if err := ctx.Err(); err != nil {
		return err
	}
	// The file list and transfer loop come next; until they are in place
	// the session ends with a clear error for the client.
	msg := "rsync: file list not available on this server yet\n"
	_ = s.out.WriteMsg(wire.MsgError, []byte(msg))
	_ = s.out.Flush()
	return errors.New("file list not implemented")
}

func le32(v int32) []byte {
	return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// Our preference order; only what is implemented is advertised.
var ourChecksums = []string{"md5", "md4"}
var ourCompressions = []string{"zlib"}

// setup writes compatibility flags, negotiates checksum and compression
// names (30+ with the 'v' capability) and sends the checksum seed.
func (s *session) setup() error {
	w := bufio.NewWriter(s.conn)
	if s.cfg.Protocol >= 30 {
		var cf int32
		if s.o.HasCap('L') {
			cf |= cfSymlinkTimes
		}
		if s.o.HasCap('f') {
			cf |= cfSafeFlist
		}
		if s.o.HasCap('C') {
			cf |= cfChksumSeedFix
			s.seedFix = true
		}
		if s.o.HasCap('v') {
			cf |= cfVarintFlistFlg
			s.varint = true
		}
		s.compat = cf
		var err error
		if s.varint {
			err = wire.WriteVarint(w, cf)
		} else {
			err = wire.WriteByte(w, byte(cf))
		}
		if err != nil {
			return fmt.Errorf("write compat flags: %w", err)
		}
	}
	s.checksum = "md4"
	if s.cfg.Protocol >= 30 {
		s.checksum = "md5"
	}
	if s.o.Compress {
		s.compress = "zlib"
	}
	if s.varint {
		if err := s.negotiate(w); err != nil {
			return err
		}
	}
	s.seed = s.cfg.Seed
	if s.o.ChecksumSeed != 0 {
		s.seed = s.o.ChecksumSeed
	}
	if s.seed == 0 {
		s.seed = int32(time.Now().Unix()) ^ int32(os.Getpid()<<6)
	}
	if err := wire.WriteInt32(w, s.seed); err != nil {
		return fmt.Errorf("write checksum seed: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	return nil
}

// negotiate exchanges the checksum (and with -z the compression) name
// lists: both sides send first, then read the other's list.
func (s *session) negotiate(w *bufio.Writer) error {
	sendCsum := s.o.ChecksumChoice == ""
	sendComp := s.o.Compress && s.o.CompressChoice == ""
	if sendCsum {
		if err := wire.WriteVstring(w, strings.Join(ourChecksums, " ")); err != nil {
			return fmt.Errorf("send checksum list: %w", err)
		}
	} else {
		s.checksum = s.o.ChecksumChoice
	}
	if sendComp {
		if err := wire.WriteVstring(w, strings.Join(ourCompressions, " ")); err != nil {
			return fmt.Errorf("send compression list: %w", err)
		}
	} else if s.o.CompressChoice != "" {
		s.compress = s.o.CompressChoice
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("negotiate: %w", err)
	}
	if sendCsum {
		list, err := wire.ReadVstring(s.in, 1024)
		if err != nil {
			return fmt.Errorf("read checksum list: %w", err)
		}
		if s.checksum, err = choose(list, ourChecksums); err != nil {
			return fmt.Errorf("checksum negotiation: %w", err)
		}
	}
	if sendComp {
		list, err := wire.ReadVstring(s.in, 1024)
		if err != nil {
			return fmt.Errorf("read compression list: %w", err)
		}
		if s.compress, err = choose(list, ourCompressions); err != nil {
			return fmt.Errorf("compression negotiation: %w", err)
		}
	}
	if !contains(ourChecksums, s.checksum) {
		return fmt.Errorf("checksum %q is not supported", s.checksum)
	}
	if s.compress != "" && s.compress != "none" && !contains(ourCompressions, s.compress) {
		return fmt.Errorf("compression %q is not supported", s.compress)
	}
	return nil
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
