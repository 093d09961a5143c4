// Command nouring runs a program with io_uring refused, as Docker's default seccomp
// profile refuses it: io_uring_setup, io_uring_enter and io_uring_register fail with
// EPERM, every other system call is allowed.
//
//	go build -o /tmp/nouring ./integration/nouring
//	/tmp/nouring bin/covet-gateway --engine auto ...
//
// It sets PR_SET_NO_NEW_PRIVS (so that an unprivileged process may install a
// filter), installs a classic-BPF seccomp filter on all its threads
// (SECCOMP_FILTER_FLAG_TSYNC), then execs its arguments; the program run and its
// children inherit the filter. The integration tests use it to show that
// covet-gateway falls back to the netpoll engine when io_uring is refused.
//
// The filter checks the system call's architecture first. A call made with another
// architecture's convention (a 32-bit compat call on a 64-bit kernel) kills the
// process with SIGSYS: nothing the tests run makes one, and letting it through
// unchecked would leave io_uring reachable under other numbers. On x86-64, calls in
// the x32 range (number with bit 30 set) get EPERM, for the same reason. Only
// amd64 and arm64 are supported; elsewhere nouring exits 2 without running anything.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nouring program [argument ...]")
		os.Exit(2)
	}
	// The filter goes on every thread (TSYNC); locking also keeps the exec on the
	// thread that installed it, whatever the kernel does with the others.
	runtime.LockOSThread()
	path, err := exec.LookPath(os.Args[1])
	if err == nil {
		err = denyIOUring()
	}
	if err == nil {
		err = syscall.Exec(path, os.Args[1:], os.Environ())
	}
	fmt.Fprintln(os.Stderr, "nouring:", err)
	os.Exit(2)
}

// x32SyscallBit marks the x32 ABI's system call numbers on x86-64
// (__X32_SYSCALL_BIT).
const x32SyscallBit = 0x40000000

// Offsets in struct seccomp_data, the record the filter reads.
const (
	offNr   = 0 // int nr
	offArch = 4 // __u32 arch
)

// denyIOUring installs the filter on every thread of this process, for good.
func denyIOUring() error {
	prog, err := filter(runtime.GOARCH)
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): %w", errno)
	}
	return nil
}

// filter is the BPF program for goarch: kill a call of a foreign architecture,
// EPERM for io_uring_setup, io_uring_enter, io_uring_register (and, on amd64, any
// x32 call), allow the rest.
func filter(goarch string) ([]unix.SockFilter, error) {
	var arch uint32
	switch goarch {
	case "amd64":
		arch = unix.AUDIT_ARCH_X86_64
	case "arm64":
		arch = unix.AUDIT_ARCH_AARCH64
	default:
		return nil, fmt.Errorf("no seccomp filter for GOARCH %s (amd64 and arm64 only)", goarch)
	}
	denied := []uint32{unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER}

	// The program, r being the index of the first return; a jump's offsets count
	// the instructions skipped after it:
	//   0      ld  [arch]
	//   1      jeq #arch, next, kill
	//   2      ld  [nr]
	//   (3     jge #x32bit, deny, next)        amd64 only
	//   ...    jeq #nr, deny, next             one per denied call
	//   r      ret ALLOW
	//   r+1    ret ERRNO|EPERM
	//   r+2    ret KILL_PROCESS
	const (
		retAllow = iota
		retDeny
		retKill
	)
	var p []unix.SockFilter
	stmt := func(code uint16, k uint32) { p = append(p, unix.SockFilter{Code: code, K: k}) }
	r := 3 + len(denied)
	if goarch == "amd64" {
		r++
	}
	// to is the offset from the jump about to be appended to return ret.
	to := func(ret int) uint8 { return uint8(r + ret - len(p) - 1) }
	stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArch)
	p = append(p, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: arch, Jt: 0, Jf: to(retKill)})
	stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offNr)
	if goarch == "amd64" {
		p = append(p, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: x32SyscallBit, Jt: to(retDeny), Jf: 0})
	}
	for _, nr := range denied {
		p = append(p, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: nr, Jt: to(retDeny), Jf: 0})
	}
	stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_ALLOW)
	stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM))
	stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_KILL_PROCESS)
	return p, nil
}
