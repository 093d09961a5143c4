package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// probeEnv makes the test binary, run again, the probe: it makes each io_uring
// system call once and prints what came back, one "name: result" line each.
const probeEnv = "NOURING_TEST_PROBE"

func TestMain(m *testing.M) {
	if os.Getenv(probeEnv) == "1" {
		probe()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// notOpen is a file descriptor number no test process has open.
const notOpen = 1 << 30

// ioUringParams is struct io_uring_params (120 bytes); zero asks for the defaults.
type ioUringParams [120]byte

func probe() {
	var params ioUringParams
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)), 0)
	report("setup", errno)
	if errno == 0 {
		unix.Close(int(fd))
	}
	// On a descriptor not open: EBADF where the call is let through. (Not -1:
	// io_uring_register takes -1 for ring-less operations on recent kernels.)
	_, _, errno = unix.Syscall6(unix.SYS_IO_URING_ENTER, notOpen, 0, 0, 0, 0, 0)
	report("enter", errno)
	_, _, errno = unix.Syscall6(unix.SYS_IO_URING_REGISTER, notOpen, 0, 0, 0, 0, 0)
	report("register", errno)
	if runtime.GOARCH == "amd64" {
		_, _, errno = unix.Syscall(x32SyscallBit|unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)), 0)
		report("x32 setup", errno)
	}
	// Everything else goes through: a socket, a file.
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.Close(s)
	}
	report("socket", errOf(err))
	f, err := os.Open("/proc/self/status")
	if err == nil {
		f.Close()
	}
	report("open", errOf(err))
}

func errOf(err error) unix.Errno {
	var errno unix.Errno
	if err == nil {
		return 0
	} else if errors.As(err, &errno) {
		return errno
	}
	return unix.EINVAL
}

func report(name string, errno unix.Errno) {
	res := "ok"
	if errno != 0 {
		res = unix.ErrnoName(errno)
	}
	os.Stdout.WriteString(name + ": " + res + "\n")
}

// runProbe runs the probe, under argv0 ... when given, and returns its lines by name.
func runProbe(t *testing.T, wrap ...string) map[string]string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append(wrap, self)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), probeEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v; output:\n%s", argv, err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, res, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("probe printed %q; output:\n%s", line, out)
		}
		got[name] = res
	}
	return got
}

// buildNouring builds this command into a temporary directory.
func buildNouring(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nouring")
	// go test puts its own go first on PATH.
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestNouringDeniesIOUring(t *testing.T) {
	if _, err := filter(runtime.GOARCH); err != nil {
		t.Skip(err)
	}
	bin := buildNouring(t)
	under := runProbe(t, bin)
	want := map[string]string{"setup": "EPERM", "enter": "EPERM", "register": "EPERM", "socket": "ok", "open": "ok"}
	if runtime.GOARCH == "amd64" {
		want["x32 setup"] = "EPERM"
	}
	for name, res := range want {
		if under[name] != res {
			t.Errorf("under nouring, %s: %q, want %q (all: %v)", name, under[name], res, under)
		}
	}

	// Without it the same calls get through to the kernel.
	host := runProbe(t)
	for _, name := range []string{"enter", "register"} {
		if host[name] != "EBADF" {
			t.Errorf("without nouring, %s on a descriptor not open: %q, want EBADF (all: %v)", name, host[name], host)
		}
	}
	if host["setup"] != "ok" {
		t.Skipf("io_uring_setup fails on this host without the filter too (%s): nothing to contrast EPERM with", host["setup"])
	}
}

func TestNouringUsage(t *testing.T) {
	bin := buildNouring(t)
	out, err := exec.Command(bin).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "usage: nouring") {
		t.Errorf("nouring with no program: %v, output %q; want exit 2 and the usage", err, out)
	}
	out, err = exec.Command(bin, "/nonexistent/program").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "/nonexistent/program") {
		t.Errorf("nouring /nonexistent/program: %v, output %q; want exit 2 naming it", err, out)
	}
}

func TestFilterArches(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		p, err := filter(arch)
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		// The last three instructions are the returns; every jump lands in range.
		for i, ins := range p[:len(p)-3] {
			if ins.Code&0x07 != unix.BPF_JMP {
				continue
			}
			for _, off := range []uint8{ins.Jt, ins.Jf} {
				if dst := i + 1 + int(off); dst >= len(p) {
					t.Errorf("%s: instruction %d jumps to %d, past the end (%d)", arch, i, dst, len(p))
				}
			}
		}
		if last := p[len(p)-1]; last.Code != unix.BPF_RET|unix.BPF_K || last.K != unix.SECCOMP_RET_KILL_PROCESS {
			t.Errorf("%s: last instruction %+v, want ret KILL_PROCESS", arch, last)
		}
	}
	if _, err := filter("riscv64"); err == nil {
		t.Error("filter(riscv64): no error; only amd64 and arm64 are written")
	}
}
