package interop

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// Paths found or built once per test binary run.
var (
	// lanmirrorBin is the lanmirror binary built in TestMain ("" if the
	// build failed: then every lanmirror test fails with buildErr).
	lanmirrorBin string
	buildErr     error
	// rsyncBin is the stock rsync binary ("" when not installed).
	rsyncBin string
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The subtests mostly wait for rsync processes on loopback (and, for
	// lanmirror, for treeSettle): run more of them at once than the
	// default GOMAXPROCS unless -parallel was given.
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given && runtime.GOMAXPROCS(0) < 4 {
		flag.Set("test.parallel", "4")
	}
	os.Exit(run(m))
}

// run builds lanmirror into a temporary directory, runs the tests and
// removes the directory.
func run(m *testing.M) int {
	rsyncBin, _ = exec.LookPath("rsync")
	dir, err := os.MkdirTemp(tempBase(), "lanmirror-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Every t.TempDir (trees, destinations, server state) goes below dir.
	os.Setenv("TMPDIR", dir)
	if rsyncBin != "" {
		lanmirrorBin, buildErr = buildLanmirror(dir)
	}
	return m.Run()
}

// tempBase is where the suite keeps its files: $LANMIRROR_INTEROP_TMP if
// set, else /dev/shm when it is a writable tmpfs with at least 2 GiB free
// (creating thousands of small files there is many times faster than on a
// disk with discard; containers often have a 64 MiB /dev/shm), else the
// default temporary directory.
func tempBase() string {
	if d := os.Getenv("LANMIRROR_INTEROP_TMP"); d != "" {
		return d
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && int64(st.Bavail)*int64(st.Bsize) >= 2<<30 {
		if f, err := os.CreateTemp("/dev/shm", "lanmirror-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// buildLanmirror compiles ./cmd/lanmirror (without -race: it is the server
// under test, not the test) into dir.
func buildLanmirror(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(dir, "lanmirror")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "github.com/lanmirror/lanmirror/cmd/lanmirror")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/lanmirror: %w\n%s", err, strings.TrimSpace(string(b)))
	}
	return out, nil
}

// needRsync fails the test (skips it with LANMIRROR_ALLOW_SKIP=1) when
// the stock rsync client is not installed (CI installs it; see .ci/run).
func needRsync(t *testing.T) {
	t.Helper()
	if rsyncBin == "" {
		testutil.MissingTool(t, "stock rsync is not installed (apt-get install rsync): the interop suite needs it as the oracle")
	}
}
