package tests

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testSSHD is Debian's openssh-server, started by a test on 127.0.0.1 and a free port with a
// throwaway host key and client key, stopped at the test's end: the other host of a migration
// test. Its package is unpacked into the run's work directory (apt-get download: nothing is
// installed, the host's sshd, if any, is never touched), and it runs in a mount namespace of
// its own whose /etc/passwd also has the privilege-separation user sshd insists on.
type testSSHD struct {
	port int
	opts []string // --ssh-opt values for vpsctl migrate
	dest string   // ssh://root@127.0.0.1:PORT
}

var (
	sshdOnce sync.Once
	sshdBin  string // the unpacked sshd
	sshdLibs string // its LD_LIBRARY_PATH (libwrap0, which the host may lack)
	sshdErr  error
)

// unpackSSHD downloads and unpacks openssh-server and libwrap0 once per run.
func unpackSSHD() {
	dir := filepath.Join(workDir, "openssh")
	if sshdErr = os.MkdirAll(dir, 0o777); sshdErr != nil {
		return
	}
	os.Chmod(dir, 0o777) // apt-get download writes as _apt
	cmd := exec.Command("apt-get", "download", "openssh-server", "libwrap0")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		sshdErr = fmt.Errorf("apt-get download: %v: %s", err, out)
		return
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	for _, d := range debs {
		if out, err := exec.Command("dpkg-deb", "-x", d, filepath.Join(dir, "root")).CombinedOutput(); err != nil {
			sshdErr = fmt.Errorf("dpkg-deb -x %s: %v: %s", d, err, out)
			return
		}
	}
	sshdBin = filepath.Join(dir, "root/usr/sbin/sshd")
	sshdLibs = filepath.Join(dir, "root/usr/lib/x86_64-linux-gnu")
	if _, err := os.Stat(sshdBin); err != nil {
		sshdErr = err
	}
}

func startSSHD(t *testing.T) *testSSHD {
	t.Helper()
	sshdOnce.Do(unpackSSHD)
	if sshdErr != nil {
		t.Fatalf("openssh-server: %v", sshdErr)
	}
	dir := t.TempDir()
	for _, k := range []string{"hostkey", "clientkey"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "clientkey.pub"))
	must0(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600))
	passwd, err := os.ReadFile("/etc/passwd")
	must0(t, err)
	passwd = append(passwd, []byte("sshd:x:64998:65534:privilege separation:/run/sshd:/usr/sbin/nologin\n")...)
	must0(t, os.WriteFile(filepath.Join(dir, "passwd"), passwd, 0o644))
	// The privilege-separation directory is compiled in; a host without sshd lacks it.
	if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) {
		must0(t, os.Mkdir("/run/sshd", 0o755))
		t.Cleanup(func() { os.Remove("/run/sshd") })
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must0(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf("Port %d\nListenAddress 127.0.0.1\nHostKey %s/hostkey\nPidFile %s/sshd.pid\nAuthorizedKeysFile %s/authorized_keys\n"+
		"PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n",
		port, dir, dir, dir)
	must0(t, os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600))
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /etc/passwd && exec env LD_LIBRARY_PATH="$2" "$3" -D -e -f "$4"`, "sh",
		filepath.Join(dir, "passwd"), sshdLibs, sshdBin, filepath.Join(dir, "sshd_config"))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	must0(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("sshd log:\n%s", log.String())
		}
	})
	waitFor(t, 10*time.Second, "sshd to listen", func() bool {
		select {
		case <-exited:
			t.Fatalf("sshd exited: %s", log.String())
		default:
		}
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return &testSSHD{port: port, dest: "ssh://root@127.0.0.1:" + strconv.Itoa(port), opts: []string{
		"IdentityFile=" + filepath.Join(dir, "clientkey"), "IdentitiesOnly=yes", "BatchMode=yes",
		"UserKnownHostsFile=" + filepath.Join(dir, "known_hosts"), "StrictHostKeyChecking=accept-new", "LogLevel=ERROR"}}
}

// migrateArgs is a vpsctl migrate command line to this sshd's host, state root root2.
func (s *testSSHD) migrateArgs(id, root2 string) []string {
	args := []string{"migrate", id, s.dest, "--dest-root", root2, "--dest-vpsctl", bin}
	for _, o := range s.opts {
		args = append(args, "--ssh-opt", o)
	}
	return args
}

func must0(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// echoConn is a TCP connection from the host to an echo server in a VPS.
type echoConn struct {
	t *testing.T
	c net.Conn
	n int
}

func dialEcho(t *testing.T, addr string) *echoConn {
	t.Helper()
	var c net.Conn
	waitFor(t, 10*time.Second, "the echo server", func() bool {
		var err error
		c, err = net.DialTimeout("tcp", addr, time.Second)
		return err == nil
	})
	t.Cleanup(func() { c.Close() })
	e := &echoConn{t: t, c: c}
	e.roundTrip()
	return e
}

// roundTrip sends a numbered line and expects it back within 10 s.
func (e *echoConn) roundTrip() {
	e.t.Helper()
	e.n++
	line := fmt.Sprintf("line %d\n", e.n)
	e.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := e.c.Write([]byte(line)); err != nil {
		e.t.Fatalf("echo write %d: %v", e.n, err)
	}
	buf := make([]byte, len(line))
	if _, err := ioReadFull(e.c, buf); err != nil || string(buf) != line {
		e.t.Fatalf("echo %d: got %q, %v", e.n, buf, err)
	}
}

func ioReadFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// startEcho starts a TCP echo server on port 7 in busybox VPS id.
func startEcho(t *testing.T, id string) {
	t.Helper()
	must(t, "exec", id, "--", "sh", "-c", "nc -ll -p 7 -e cat >/dev/null 2>&1 &")
}

// otherRoot is a second state root (another "host") for a test: at the test's end VPSs ids are
// destroyed there and the LXCFS that its boots started is stopped.
func otherRoot(t *testing.T, name string, ids ...string) string {
	t.Helper()
	root2 := filepath.Join(workDir, "other-"+name)
	t.Cleanup(func() {
		for _, id := range ids {
			vpsctl2(t, root2, "destroy", "-f", id)
		}
		if out, err := exec.Command(bin, "--root", root2, "lxcfs", "stop").CombinedOutput(); err != nil {
			t.Errorf("lxcfs stop in %s: %v: %s", root2, err, out)
		}
	})
	return root2
}

// vpsctl2 runs vpsctl on a second state root (the other "host").
func vpsctl2(t testing.TB, root2 string, args ...string) result {
	t.Helper()
	return vpsctlEnv(t, nil, append([]string{"--root", root2}, args...)...)
}
