package contrib

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// The init script and conf.d are valid sh and openrc-run reads them.
func TestOpenRCScriptParses(t *testing.T) {
	sh := testutil.RequireTool(t, "sh")
	openrcRun := testutil.RequireTool(t, "openrc-run")
	for _, f := range []string{"openrc/lanmirror", "openrc/lanmirror.confd"} {
		if out, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", f, err, out)
		}
	}
	out, err := exec.Command(openrcRun, "openrc/lanmirror", "describe").CombinedOutput()
	if err != nil {
		t.Fatalf("openrc-run describe: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "LAN mirror for Gentoo") {
		t.Errorf("openrc-run describe does not show the description:\n%s", out)
	}
	fi, err := os.Stat("openrc/lanmirror")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&0o111 == 0 {
		t.Error("openrc/lanmirror is not executable")
	}
}

// openrcScript runs inside a private mount namespace (unshare), with a
// fresh OpenRC state directory on a tmpfs, so that the machine's own
// /run/openrc is untouched and openrc-run works on a system OpenRC did not
// boot. It starts the service, says STARTED, reloads it for each
// "reload" line on stdin (saying RELOADED), stops it at another line or
// the end of stdin and reports its status.
const openrcScript = `set -eu
mount -t tmpfs lanmirror-openrc-test /run/openrc
for d in daemons exclusive failed hotplugged inactive options scheduled started starting stopping tmp wasinactive; do
	mkdir /run/openrc/$d
done
touch /run/openrc/softlevel
openrc-run "$1" start
echo STARTED
while read -r cmd; do
	case $cmd in
	reload) openrc-run "$1" reload && echo RELOADED ;;
	*) break ;;
	esac
done
openrc-run "$1" stop
echo STOPPED
if openrc-run "$1" status; then echo STILL-RUNNING; else echo STATUS-STOPPED; fi
`

// The init script under openrc-run: start (supervise-daemon, as nobody,
// data and log directories created by checkpath with their owner), serve
// HTTP and rsync with the settings of a config file and the conf.d, then
// reload (a module added to the file), stop.
func TestOpenRCStartStop(t *testing.T) {
	requireRoot(t)
	testutil.RequireTool(t, "openrc-run")
	testutil.RequireTool(t, "supervise-daemon")
	unshare := testutil.RequireTool(t, "unshare")
	rsync := testutil.RequireTool(t, "rsync")
	if _, err := os.Stat("/run/openrc"); err != nil {
		t.Fatalf("/run/openrc (installed by the openrc package): %v", err)
	}
	bin := lanmirrorBinary(t)
	uid, _, group := nobody(t)

	root := openDir(t)
	for _, d := range []string{"init.d", "conf.d", "tree"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "tree", "hello"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A service name of its own: openrc-run reads ../conf.d/NAME next
	// to the script.
	name := fmt.Sprintf("lanmirror-test-%d", os.Getpid())
	script, err := os.ReadFile("openrc/lanmirror")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(script), `command="/usr/bin/lanmirror"`) {
		t.Fatal(`openrc/lanmirror: no command="/usr/bin/lanmirror" line to point at the test binary`)
	}
	script = []byte(strings.Replace(string(script), `command="/usr/bin/lanmirror"`, `command="`+bin+`"`, 1))
	initd := filepath.Join(root, "init.d", name)
	if err := os.WriteFile(initd, script, 0o755); err != nil {
		t.Fatal(err)
	}
	httpAddr, rsyncAddr := freeAddr(t), freeAddr(t)
	data := filepath.Join(root, "data")
	logDir := filepath.Join(root, "log")
	// The settings in a config file, as an admin keeps them; data and
	// log in it are overridden by the conf.d's.
	toml := filepath.Join(root, "lanmirror.toml")
	settings := []byte(fmt.Sprintf(`data = "/nonexistent/overridden"
log = "/nonexistent/overridden.log"
http = %q
rsync = %q

[[module]]
name = "test"
path = %q
`, httpAddr, rsyncAddr, filepath.Join(root, "tree")))
	if err := os.WriteFile(toml, settings, 0o644); err != nil {
		t.Fatal(err)
	}
	// The shipped conf.d with the test's values appended, as an admin
	// would edit it.
	confd, err := os.ReadFile("openrc/lanmirror.confd")
	if err != nil {
		t.Fatal(err)
	}
	confd = append(confd, fmt.Sprintf(`
LANMIRROR_USER="nobody"
LANMIRROR_GROUP=%q
# Debian's openrc is built without capability support.
LANMIRROR_CAPABILITIES=""
LANMIRROR_DATA=%q
LANMIRROR_LOG=%q
LANMIRROR_ERROR_LOG=%q
LANMIRROR_OPTS="--config %s"
`, group, data, filepath.Join(logDir, "access.log"), filepath.Join(logDir, "lanmirror.log"), toml)...)
	if err := os.WriteFile(filepath.Join(root, "conf.d", name), confd, 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", openrcScript, "sh", initd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out testutil.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var exitErr error
	done := make(chan struct{})
	go func() { exitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// Closing stdin makes the script stop the service (when the
		// test ended before it did).
		stdin.Close()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
	})
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(out.String(), "\n"+want+"\n") && !strings.HasPrefix(out.String(), want+"\n") {
			select {
			case <-done:
				if strings.Contains(out.String(), want+"\n") {
					return
				}
				t.Fatalf("openrc-run script ended (%v) before %s:\n%s", exitErr, want, out.String())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s after 60 s:\n%s", want, out.String())
			}
		}
	}
	waitFor("STARTED")
	waitListening(t, httpAddr, func() bool { return true })

	code, body := get(t, "http://"+httpAddr+"/")
	if code != 200 || !strings.Contains(body, "lanmirror") {
		t.Errorf("status page through the service: %d %q", code, body)
	}
	if list := rsyncList(t, rsync, rsyncAddr); !strings.Contains(list, "test") {
		t.Errorf("rsync module list through the service lacks module test:\n%s", list)
	}
	if _, err := waitFileContains(filepath.Join(logDir, "access.log"), `GET "/"`); err != nil {
		t.Errorf("access log: %v", err)
	}
	// checkpath created the directories for the user, and lanmirror runs
	// as that user: what it creates is owned by nobody.
	for _, p := range []string{data, logDir, filepath.Join(data, "distfiles"), filepath.Join(logDir, "access.log")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%v\n%s", err, out.String())
			continue
		}
		if owner := fi.Sys().(*syscall.Stat_t).Uid; int(owner) != uid {
			t.Errorf("%s is owned by uid %d, want nobody (%d)", p, owner, uid)
		}
	}
	if _, err := waitFileContains(filepath.Join(logDir, "lanmirror.log"), "lanmirror serving"); err != nil {
		t.Errorf("error_log: %v", err)
	}

	// reload: a module added to the config file is served without a
	// restart.
	if err := os.WriteFile(toml, append(settings, []byte(fmt.Sprintf(`
[[module]]
name = "added"
path = %q
`, filepath.Join(root, "tree")))...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "reload\n"); err != nil {
		t.Fatal(err)
	}
	waitFor("RELOADED")
	for deadline := time.Now().Add(20 * time.Second); ; {
		if list := rsyncList(t, rsync, rsyncAddr); strings.Contains(list, "added") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("module added to the config file not listed 20 s after reload:\n%s\n%s", list, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	if _, err := io.WriteString(stdin, "stop\n"); err != nil {
		t.Fatal(err)
	}
	waitFor("STOPPED")
	waitFor("STATUS-STOPPED")
	select {
	case <-done:
		if exitErr != nil {
			t.Fatalf("the openrc-run script failed: %v\n%s", exitErr, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the openrc-run script does not end:\n%s", out.String())
	}
	waitClosed(t, httpAddr)
	waitClosed(t, rsyncAddr)
}
