package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// VersitygwVersion is the versitygw (github.com/versity/versitygw, a real
// S3 gateway) the object-storage tests run against.
const VersitygwVersion = "v1.8.0"

// VersitygwEnv names a variable that may give the path of a versitygw
// binary; otherwise it is built once per machine from the Go module proxy
// into a temporary directory keyed by version (.ci/run builds it before
// the tests).
const VersitygwEnv = "LANMIRROR_VERSITYGW"

// VersitygwBinary returns the versitygw binary, building it if needed
// (go install github.com/versity/versitygw/cmd/versitygw@VERSION, under
// a lock so that parallel test binaries build it once). A failed build
// is a missing tool (MissingTool).
func VersitygwBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(VersitygwEnv); p != "" {
		return p
	}
	dir := VersitygwDir()
	bin := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		MissingTool(t, "versitygw: "+err.Error())
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		MissingTool(t, "versitygw: "+err.Error())
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		MissingTool(t, "versitygw: lock: "+err.Error())
	}
	if _, err := os.Stat(bin); err == nil {
		return bin // built by another test binary meanwhile
	}
	t.Logf("building versitygw %s into %s (once per machine)", VersitygwVersion, dir)
	cmd := exec.Command("go", "install", "github.com/versity/versitygw/cmd/versitygw@"+VersitygwVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		MissingTool(t, fmt.Sprintf("versitygw %s could not be built from the Go module proxy: %v\n%s", VersitygwVersion, err, out))
	}
	return bin
}

// VersitygwDir is where the versitygw binary is cached.
func VersitygwDir() string {
	return filepath.Join(os.TempDir(), "lanmirror-tools", "versitygw-"+VersitygwVersion)
}

// S3Server is a versitygw process serving a POSIX directory as S3 on
// loopback.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Root      string // the POSIX backend's directory (buckets are its subdirectories)
	Client    *minio.Client
}

// StartS3 starts versitygw (POSIX backend in a temporary directory, test
// credentials, a free loopback port) for the test; it is stopped (by its
// PID) when the test ends.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	bin := VersitygwBinary(t)
	root := t.TempDir()
	s := &S3Server{AccessKey: "lanmirrortest", SecretKey: "lanmirror-test-secret-" + randHex(4), Root: root}
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		cmd := exec.Command(bin, "--port", addr, "--access", s.AccessKey, "--secret", s.SecretKey, "--quiet", "posix", root)
		cmd.Env = append(os.Environ(), "HOME="+root)
		logf, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		ready := waitTCP(addr, exited, 30*time.Second)
		if !ready {
			cmd.Process.Kill()
			<-exited
			logf.Close()
			out, _ := os.ReadFile(logf.Name())
			if attempt < 2 && strings.Contains(string(out), "address already in use") {
				continue
			}
			t.Fatalf("versitygw did not start on %s:\n%s", addr, out)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
			logf.Close()
		})
		s.Endpoint = "http://" + addr
		break
	}
	c, err := minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), BucketLookup: minio.BucketLookupPath,
		Transport: &http.Transport{Proxy: nil},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Client = c
	return s
}

// Bucket creates a new bucket and returns its name.
func (s *S3Server) Bucket(t testing.TB) string {
	t.Helper()
	name := "lm-" + randHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return name
}

// Keys lists every object key in bucket (leases included).
func (s *S3Server) Keys(t testing.TB, bucket string) []string {
	t.Helper()
	var out []string
	for oi := range s.Client.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if oi.Err != nil {
			t.Errorf("list %s: %v", bucket, oi.Err)
			return out
		}
		out = append(out, oi.Key)
	}
	return out
}

// Env returns the AWS environment variables that give the server's
// credentials and region to a lanmirror process.
func (s *S3Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_REGION=us-east-1"}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitTCP(addr string, exited <-chan struct{}, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
