// Package opts parses the server argument list that a stock rsync client
// sends to a daemon (e.g. "--server --sender -vlWtprze.iLsfxCIvu
// --timeout=180 --safe-links . gentoo-portage/") into the options the
// sender needs. lanmirror is read only: anything but a sender request is
// refused.
package opts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrReadOnly is returned when the client asks the server to receive files.
var ErrReadOnly = errors.New("this module is read only")

// Options is what the sender needs to know from the client's arguments.
type Options struct {
	Verbose      int
	Quiet        bool
	DryRun       bool
	Recursive    bool
	Dirs         bool // -d
	Links        bool // -l
	Perms        bool // -p
	Times        bool // -t
	OmitDirTimes bool // -O
	Owner        bool // -o
	Group        bool // -g
	Devices      bool // -D
	WholeFile    bool // -W
	Checksum     bool // -c
	Compress     bool // -z
	CompressLvl  int  // --compress-level, -1 when unset
	Relative     bool // -R
	OneFS        bool // -x
	NumericIDs   bool
	ListOnly     bool
	Inplace      bool
	// CopyLinks (-L) sends the referents of symlinks, CopyDirLinks (-k)
	// those of symlinks to directories, CopyUnsafeLinks those of links
	// pointing outside the transfer (never outside the module).
	CopyLinks, CopyDirLinks, CopyUnsafeLinks bool
	// NoImpliedDirs: with -R, the directories leading to a source path
	// are not sent (--no-implied-dirs).
	NoImpliedDirs bool
	// IgnoreMissingArgs: a source path that does not exist is skipped
	// silently (--ignore-missing-args).
	IgnoreMissingArgs bool
	SafeLinks         bool
	Timeout           time.Duration
	BwLimit           int   // --bwlimit in KiB per second, 0: none
	ChecksumSeed      int32 // --checksum-seed, 0 when unset
	// CompressChoice and ChecksumChoice are set when the client names them
	// explicitly (--compress-choice / --checksum-choice).
	CompressChoice string
	ChecksumChoice string
	// Capabilities is the string after "e." in the short option group
	// (e.g. "iLsfxCIvu"); HasCaps tells whether it was present.
	Capabilities string
	HasCaps      bool
	// Paths are the source arguments after ".", module name included
	// (e.g. "gentoo-portage/" or "gentoo-portage/metadata/timestamp.chk").
	Paths []string
}

// HasCap reports whether the client advertised capability letter c.
func (o *Options) HasCap(c byte) bool {
	return strings.IndexByte(o.Capabilities, c) >= 0
}

// ignoredLong are long options that only matter to the receiving side or
// are harmless for a read-only sender.
var ignoredLong = map[string]bool{
	"--safe-links": true, "--inplace": true, "--numeric-ids": true,
	"--ignore-errors": true, "--partial": true,
	"--delay-updates": true, "--size-only": true, "--ignore-times": true,
	"--munge-links": true, "--append": true,
	"--append-verify": true, "--existing": true, "--ignore-existing": true,
	"--delete": true, "--delete-before": true, "--delete-during": true,
	"--delete-after": true, "--delete-delay": true, "--delete-excluded": true,
	"--force": true, "--stats": true, "--no-whole-file": true, "--no-W": true,
	"--mkpath": true, "--msgs2stderr": true, "--no-msgs2stderr": true,
	// Devices and specials are never listed; the rest is receiver-side
	// or does not change what a sender of a plain tree sends.
	"--specials": true, "--no-specials": true, "--devices": true,
	"--no-devices": true, "--copy-devices": true, "--write-devices": true,
	"--use-qsort": true, "--open-noatime": true, "--preallocate": true,
	"--fsync": true, "--super": true, "--no-super": true, "--sparse": true,
}

// valueLong are long options with an argument that a sender may ignore.
var valueLong = map[string]bool{
	"--max-size": true, "--min-size": true,
	"--modify-window": true, "--info": true, "--debug": true,
	"--max-alloc": true, "--block-size": true, "--stop-after": true,
	"--stop-at": true, "--skip-compress": true, "--log-format": true,
	"--partial-dir": true, "--temp-dir": true, "--backup-dir": true,
	"--suffix": true, "--max-delete": true, "--usermap": true,
	"--groupmap": true, "--only-write-batch": true,
}

// Parse parses args as received from the client; args[0] must be "--server".
func Parse(args []string) (*Options, error) {
	if len(args) == 0 || args[0] != "--server" {
		return nil, errors.New("protocol error: argument list does not start with --server")
	}
	o := &Options{CompressLvl: -1}
	sender := false
	i := 1
	for ; i < len(args); i++ {
		a := args[i]
		if a == "." {
			i++
			break
		}
		switch {
		case a == "--sender":
			sender = true
		case a == "--list-only":
			o.ListOnly = true
		case a == "--inplace":
			o.Inplace = true
		case a == "--safe-links":
			o.SafeLinks = true
		case a == "--numeric-ids":
			o.NumericIDs = true
		case a == "--copy-unsafe-links":
			o.CopyUnsafeLinks = true
		case a == "--no-implied-dirs":
			o.NoImpliedDirs = true
		case a == "--ignore-missing-args":
			o.IgnoreMissingArgs = true
		case a == "--no-relative":
			o.Relative = false
		case a == "--no-r", a == "--no-recursive":
			o.Recursive = false
		case a == "--remove-source-files", a == "--remove-sent-files":
			return nil, fmt.Errorf("%s cannot be used with a read-only module", a)
		case a == "--delete-missing-args":
			return nil, fmt.Errorf("option %s is not supported by this server", a)
		case a == "--old-compress": // --compress-choice=zlib, as clients send it
			o.Compress, o.CompressChoice = true, "zlib"
		case a == "--new-compress": // --compress-choice=zlibx
			o.Compress, o.CompressChoice = true, "zlibx"
		case a == "--no-compress", a == "--no-z":
			o.Compress, o.CompressChoice = false, ""
		case ignoredLong[a]:
		case strings.HasPrefix(a, "--"):
			name, val, ok := strings.Cut(a, "=")
			if !ok {
				return nil, fmt.Errorf("unknown option %q", a)
			}
			if err := o.longValue(name, val); err != nil {
				return nil, err
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			if err := o.shortGroup(a[1:]); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("protocol error: unexpected argument %q before \".\"", a)
		}
	}
	if !sender {
		return nil, ErrReadOnly
	}
	o.Paths = append([]string(nil), args[i:]...)
	if len(o.Paths) == 0 {
		return nil, errors.New("no source path given")
	}
	return o, nil
}

func (o *Options) longValue(name, val string) error {
	num := func() (int, error) {
		n, err := strconv.Atoi(val)
		if err != nil {
			return 0, fmt.Errorf("invalid value for %s: %q", name, val)
		}
		return n, nil
	}
	switch name {
	case "--timeout":
		n, err := num()
		if err != nil || n < 0 {
			return fmt.Errorf("invalid value for --timeout: %q", val)
		}
		o.Timeout = time.Duration(n) * time.Second
	case "--bwlimit":
		// Clients send KiB per second as a plain number.
		n, err := num()
		if err != nil || n < 0 {
			return fmt.Errorf("invalid value for --bwlimit: %q", val)
		}
		o.BwLimit = n
	case "--compress-level":
		n, err := num()
		if err != nil || n < -1 || n > 22 {
			return fmt.Errorf("invalid value for --compress-level: %q", val)
		}
		o.CompressLvl = n
	case "--checksum-seed":
		n, err := strconv.ParseInt(val, 10, 32)
		if err != nil {
			return fmt.Errorf("invalid value for --checksum-seed: %q", val)
		}
		o.ChecksumSeed = int32(n)
	case "--compress-choice", "--zc":
		o.CompressChoice = val
		o.Compress = val != "none"
	case "--checksum-choice", "--cc":
		o.ChecksumChoice = val
	case "--files-from", "--from0", "--iconv":
		return fmt.Errorf("option %s is not supported by this server", name)
	default:
		if valueLong[name] {
			return nil
		}
		return fmt.Errorf("unknown option %q", name+"="+val)
	}
	return nil
}

func (o *Options) shortGroup(g string) error {
	for j := 0; j < len(g); j++ {
		c := g[j]
		switch c {
		case 'v':
			o.Verbose++
		case 'q':
			o.Quiet = true
		case 'n':
			o.DryRun = true
		case 'r':
			o.Recursive = true
		case 'd':
			o.Dirs = true
		case 'l':
			o.Links = true
		case 'p':
			o.Perms = true
		case 't':
			o.Times = true
		case 'O':
			o.OmitDirTimes = true
		case 'o':
			o.Owner = true
		case 'g':
			o.Group = true
		case 'D':
			o.Devices = true
		case 'W':
			o.WholeFile = true
		case 'c':
			o.Checksum = true
		case 'z':
			o.Compress = true
		case 'R':
			o.Relative = true
		case 'x':
			o.OneFS = true
		case 'L':
			o.CopyLinks = true
		case 'k':
			o.CopyDirLinks = true
		case 'I', 'u', 'b', 'K', 'm', 'y', 'J', 'i', 'C', 'S':
			// Options that only affect the receiver/generator, or that a
			// sender of a plain tree can ignore.
		case 'H', 'A', 'X', 'E':
			return fmt.Errorf("option -%c is not supported by this server", c)
		case 'U', 'N':
			// --atimes and --crtimes add fields to every file-list entry;
			// this server does not send them.
			return fmt.Errorf("option -%c (--%s) is not supported by this server", c, map[byte]string{'U': "atimes", 'N': "crtimes"}[c])
		case 'e':
			// "-e.xxx": the rest of the group is the capability string.
			rest := g[j+1:]
			o.HasCaps = true
			if strings.HasPrefix(rest, ".") {
				rest = rest[1:]
			}
			o.Capabilities = rest
			return nil
		case 'B':
			// "-B<n>" (--block-size): the receiver's sum header carries
			// the block length; the sender only checks the value.
			if _, err := strconv.ParseUint(g[j+1:], 10, 31); err != nil {
				return fmt.Errorf("invalid value for -B: %q", g[j+1:])
			}
			return nil
		case 's':
			return errors.New("option -s (protect-args) is not supported by this server")
		default:
			return fmt.Errorf("unknown option -%c", c)
		}
	}
	return nil
}
