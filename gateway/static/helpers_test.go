package static

import (
	"strconv"

	"golang.org/x/sys/unix"
)

func strconvHex(n int64) string { return strconv.FormatInt(n, 16) }

func mkfifo(p string) error { return unix.Mkfifo(p, 0o644) }
