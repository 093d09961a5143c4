package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestWSSettings: the WebSocket settings' defaults (compression on), their
// flags and environment variables, and a bad value named in the error.
func TestWSSettings(t *testing.T) {
	cfg, _, err := parseFlags([]string{"--worker-cmd", "x"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Server
	if !s.WSCompression || s.WSMaxMessageBytes != 1<<20 || s.WSPingInterval != 30*time.Second || s.WSIdleTimeout != 120*time.Second {
		t.Errorf("defaults: compression %v, max %d, ping %v, idle %v", s.WSCompression, s.WSMaxMessageBytes, s.WSPingInterval, s.WSIdleTimeout)
	}
	cfg, _, err = parseFlags([]string{"--worker-cmd", "x", "--ws-compression=false", "--ws-max-message-bytes", "65536", "--ws-ping-interval", "-1s"},
		[]string{"COVET_WS_IDLE_TIMEOUT=45s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s = cfg.Server
	if s.WSCompression || s.WSMaxMessageBytes != 65536 || s.WSPingInterval != -time.Second || s.WSIdleTimeout != 45*time.Second {
		t.Errorf("set: compression %v, max %d, ping %v, idle %v", s.WSCompression, s.WSMaxMessageBytes, s.WSPingInterval, s.WSIdleTimeout)
	}
	for _, v := range []string{"-1", "1073741824"} {
		_, _, err = parseFlags([]string{"--worker-cmd", "x", "--ws-max-message-bytes", v}, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "WSMaxMessageBytes") {
			t.Errorf("ws_max_message_bytes %s: error %v, want it to name WSMaxMessageBytes", v, err)
		}
	}
}
