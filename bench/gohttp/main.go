// Command gohttp answers the bench workloads with Go's net/http alone: the native
// ceiling the CovetPy gateway is compared against, over TLS too with -tls-cert and
// -tls-key (bench/tls.py). Standard library only; a module of its own so the
// repository's `go ./...` never builds it.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
	"time"
)

var (
	plaintext = []byte("Hello, World!")
	body10k   = bytes.Repeat([]byte("x"), 10*1024)
	body1m    = bytes.Repeat([]byte("x"), 1024*1024)
	slept     = []byte("slept")
)

func write(w http.ResponseWriter, ctype string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	write(w, "application/json", b)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	cert := flag.String("tls-cert", "", "PEM certificate: serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with it and -tls-key")
	key := flag.String("tls-key", "", "PEM private key of -tls-cert")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /plaintext", func(w http.ResponseWriter, r *http.Request) {
		write(w, "text/plain; charset=utf-8", plaintext)
	})
	mux.HandleFunc("GET /json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, struct {
			Message string `json:"message"`
		}{"Hello, World!"})
	})
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, struct {
			ID int64 `json:"id"`
		}{id})
	})
	mux.HandleFunc("GET /10k", func(w http.ResponseWriter, r *http.Request) {
		write(w, "application/octet-stream", body10k)
	})
	mux.HandleFunc("GET /1m", func(w http.ResponseWriter, r *http.Request) {
		write(w, "application/octet-stream", body1m)
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		write(w, "application/octet-stream", b)
	})
	mux.HandleFunc("GET /sleep", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(10 * time.Millisecond)
		write(w, "text/plain; charset=utf-8", slept)
	})
	if *cert != "" {
		log.Printf("gohttp listening on %s (TLS)", *addr)
		log.Fatal(http.ListenAndServeTLS(*addr, *cert, *key, mux))
	}
	log.Printf("gohttp listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}
