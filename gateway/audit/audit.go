// Package audit writes the gateway's audit log: one JSON object per line for
// every authentication and authorization decision (allow or deny, and why),
// to a file, stdout or stderr (the setting audit_log).
//
// A line names the decision, the reason (a fixed word such as ok, missing,
// expired, bad_signature, insufficient_scope), the app, route, method and path,
// the token's subject when one was verified, the client address and the
// request id. It never holds the token or any part of it: a leaked audit log
// gives no one a credential.
//
// Lines are buffered and written at least every FlushInterval, and when the
// buffer fills; Close writes what is left. Writes that fail are counted and
// reported once in the gateway's log, never returned to the request that
// caused them: a full disk must not turn into 500s.
package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Config is the audit log's setting.
type Config struct {
	// Path is where the lines go: a file (opened for appending, created
	// with mode 0600), "stdout", or "stderr"; empty for no audit log.
	Path string `config:"audit_log" help:"audit log of every auth decision, JSON lines: a file path (appended), stdout or stderr; empty = none"`
}

// FlushInterval bounds how long a line may sit in the buffer.
const FlushInterval = 200 * time.Millisecond

// Entry is one decision.
type Entry struct {
	Time      time.Time `json:"time"`
	Decision  string    `json:"decision"` // allow or deny
	Reason    string    `json:"reason"`
	Status    int       `json:"status"` // what the client was answered; 0 when the request went on to the worker
	App       string    `json:"app"`
	Route     string    `json:"route"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Subject   string    `json:"subject,omitempty"`
	Client    string    `json:"client"`
	RequestID string    `json:"request_id"`
}

// Log is an open audit log. A nil *Log records nothing.
type Log struct {
	mu     sync.Mutex
	w      *bufio.Writer
	f      io.Closer // nil for stdout and stderr
	log    *slog.Logger
	failed bool // a write failed: reported once
	stop   chan struct{}
	done   chan struct{}
	line   []byte // Record's scratch, under mu
	closed sync.Once
	err    error // Close's
}

// Open opens the log cfg names; nil, nil when it names none.
func Open(cfg Config, log *slog.Logger) (*Log, error) {
	var out io.Writer
	var closer io.Closer
	switch cfg.Path {
	case "":
		return nil, nil
	case "stdout":
		out = os.Stdout
	case "stderr":
		out = os.Stderr
	default:
		f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit_log: %w", err)
		}
		out, closer = f, f
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Log{w: bufio.NewWriterSize(out, 64<<10), f: closer, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go l.flusher()
	return l, nil
}

func (l *Log) flusher() {
	defer close(l.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			if l.w.Buffered() > 0 {
				l.check(l.w.Flush())
			}
			l.mu.Unlock()
		}
	}
}

// check reports the first failed write.
func (l *Log) check(err error) {
	if err != nil && !l.failed {
		l.failed = true
		l.log.Error("audit log write failed; later failures are not reported", "err", err)
	}
}

// Record writes e as one line. Time is set when zero.
func (l *Log) Record(e Entry) {
	if l == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.mu.Lock()
	l.line = appendEntry(l.line[:0], &e)
	_, err := l.w.Write(l.line)
	l.check(err)
	l.mu.Unlock()
}

// appendEntry appends e as one JSON object and a newline: the encoding
// json.Marshal gives the Entry, without its reflection (a line is written for
// every authenticated request).
func appendEntry(b []byte, e *Entry) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "decision", e.Decision)
	b = appendField(b, "reason", e.Reason)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = appendField(b, "app", e.App)
	b = appendField(b, "route", e.Route)
	b = appendField(b, "method", e.Method)
	b = appendField(b, "path", e.Path)
	if e.Subject != "" {
		b = appendField(b, "subject", e.Subject)
	}
	b = appendField(b, "client", e.Client)
	b = appendField(b, "request_id", e.RequestID)
	return append(b, "}\n"...)
}

// appendField appends ,"name":"value" with value escaped as a JSON string
// (invalid UTF-8 becomes U+FFFD, as encoding/json does).
func appendField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":"`...)
	for i := 0; i < len(v); {
		c := v[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		} else {
			b = append(b, v[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

const hex = "0123456789abcdef"

// Close writes what is buffered and closes the file. Later calls return the
// first one's error; Record after Close records nothing.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.closed.Do(func() {
		close(l.stop)
		<-l.done
		l.mu.Lock()
		defer l.mu.Unlock()
		l.err = l.w.Flush()
		if l.f != nil {
			l.err = errors.Join(l.err, l.f.Close())
		}
		l.w.Reset(io.Discard)
	})
	return l.err
}
