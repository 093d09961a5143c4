package covettls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// DefaultACMEDirectory is the ACME directory used when ACMEConfig.Directory
// is empty: Let's Encrypt's production one.
const DefaultACMEDirectory = acme.LetsEncryptURL

// ACMEConfig turns on certificates from an ACME CA (RFC 8555) for the names
// in Domains. Its zero value is off. Setting Domains accepts the CA's terms
// of service.
type ACMEConfig struct {
	// Domains (acme_domains) are the names certificates are obtained for,
	// one certificate per name, on the first handshake that asks for it by
	// SNI. Only these names are ever ordered. Exact names only: no
	// wildcard (that needs dns-01, which is not done here), no IP address,
	// Unicode names in their xn-- form. These names are served by ACME
	// even where a PEM pair names them too. A client that cannot take
	// ECDSA gets an RSA certificate, ordered separately.
	Domains []string
	// Email (acme_email) is the account's contact address; empty: none.
	Email string
	// Directory (acme_directory) is the CA's directory URL, https;
	// empty: DefaultACMEDirectory.
	Directory string
	// CacheDir (acme_cache) holds the account key and the certificates
	// across restarts, so a restart orders nothing; empty:
	// covetpy/acme under os.UserCacheDir ($XDG_CACHE_HOME or ~/.cache).
	// Made (0700) by New.
	CacheDir string
	// RootCAs are the roots the CA's own HTTPS certificate must chain to;
	// nil: the system's. For a private or test CA.
	RootCAs *x509.CertPool
	// HTTPClient talks to the CA; nil: one with RootCAs, a 10 s connect
	// timeout and a 30 s limit per request. When set, RootCAs is unused.
	HTTPClient *http.Client
	// Log gets one line per certificate obtained or renewed, from the first
	// handshake that serves it (info), and per name that failed to get one
	// (error; repeats within a minute are counted into the next line);
	// nil: nothing is logged. A background renewal that fails is not seen
	// here: autocert retries it while the old certificate is served.
	Log *slog.Logger
}

// acmeRetry is how long autocert keeps a failed order before trying again
// (its createCertRetryAfter): handshakes in between fail at once, and are
// logged once.
const acmeRetry = time.Minute

// acmeCerts obtains, caches and serves the ACME names' certificates.
type acmeCerts struct {
	m         *autocert.Manager
	names     map[string]bool
	list      []string    // names, in the configured order
	challenge *tls.Config // served to tls-alpn-01 validation handshakes
	log       *slog.Logger

	mu      sync.Mutex
	flights map[string]*flight  // by name: the lookup running
	failed  map[string]*failure // by name: the last failure logged
	serial  map[string]string   // by name: the certificate served last
}

type failure struct {
	at      time.Time
	repeats int
}

// validateACME checks c and returns its domains lower-cased, without
// duplicates. Errors name the setting.
func validateACME(c ACMEConfig) ([]string, error) {
	seen := map[string]bool{}
	var names []string
	for i, d := range c.Domains {
		n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		if err := checkDomain(n); err != nil {
			if n == "" {
				return nil, fmt.Errorf("acme_domains: entry %d is empty", i+1)
			}
			return nil, fmt.Errorf("acme_domains: %q %w", d, err)
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		if c.Email != "" || c.Directory != "" || c.CacheDir != "" {
			return nil, errors.New("acme_domains: empty, yet acme_email, acme_directory or acme_cache is set")
		}
		return nil, nil
	}
	if c.Email != "" {
		a, err := mail.ParseAddress(c.Email)
		if err != nil || a.Name != "" || a.Address != c.Email {
			return nil, fmt.Errorf("acme_email: %q is not an e-mail address (name@example.com)", c.Email)
		}
	}
	if c.Directory != "" {
		u, err := url.Parse(c.Directory)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("acme_directory: %q is not an https URL", c.Directory)
		}
	}
	return names, nil
}

// checkDomain says what is wrong with n as a name to order, or nil.
func checkDomain(n string) error {
	switch {
	case n == "":
		return errors.New("is empty")
	case strings.Contains(n, "*"):
		return errors.New("is a wildcard: that needs the dns-01 challenge; http-01 and tls-alpn-01 (done here) cannot prove it")
	case net.ParseIP(n) != nil:
		return errors.New("is an IP address, not a domain name")
	case !strings.Contains(n, "."):
		return errors.New("has one label: a CA issues only for names with a dot")
	case len(n) > 253:
		return errors.New("is longer than 253 characters")
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("has a bad label %q", l)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("has %q: letters, digits and - only (Unicode names in their xn-- form)", r)
			}
		}
	}
	return nil
}

// newACME makes the manager for c, whose names validateACME returned.
func newACME(c ACMEConfig, names []string) (*acmeCerts, error) {
	dir := c.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("acme_cache: no default (%v): set it", err)
		}
		dir = filepath.Join(base, "covetpy", "acme")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("acme_cache: %w", err)
	}
	client := c.HTTPClient
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSClientConfig = &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12}
		client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	directory := c.Directory
	if directory == "" {
		directory = DefaultACMEDirectory
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &acmeCerts{
		m: &autocert.Manager{
			Prompt: autocert.AcceptTOS,
			Cache:  autocert.DirCache(dir),
			// Set below: the names, compared as pick does, and without a
			// port (http-01 requests reach HTTPHandler with the Host
			// header as sent, a port in it where the listener is not 80).
			HostPolicy: nil,
			Client:     &acme.Client{DirectoryURL: directory, HTTPClient: client, UserAgent: "covetpy"},
			Email:      c.Email,
		},
		names:   map[string]bool{},
		list:    names,
		log:     log,
		failed:  map[string]*failure{},
		flights: map[string]*flight{},
		serial:  map[string]string{},
	}
	for _, n := range names {
		a.names[n] = true
	}
	a.m.HostPolicy = func(_ context.Context, host string) error {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !a.names[strings.TrimSuffix(strings.ToLower(host), ".")] {
			return fmt.Errorf("acme: %q is not in acme_domains", host)
		}
		return nil
	}
	a.challenge = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{acme.ALPNProto},
		GetCertificate: a.m.GetCertificate,
	}
	return a, nil
}

// isChallenge reports whether hello is a CA's tls-alpn-01 validation: it
// offers acme-tls/1 and nothing else (RFC 8737 section 3).
func isChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto
}

// get returns name's certificate: from memory, from the cache, or ordered
// now. One lookup per name runs at a time (a flight); handshakes that come
// while it runs wait for it, each no longer than its own context
// (tls.Conn.HandshakeContext), so a CA that hangs holds one goroutine per
// name, not one per handshake. A failure is logged and fails the
// handshake; the next order for that name is tried acmeRetry later.
func (a *acmeCerts) get(name string, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	a.mu.Lock()
	f := a.flights[name]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		a.flights[name] = f
		go a.fly(name, f, hello)
	}
	a.mu.Unlock()
	ctx := hello.Context()
	if ctx == nil { // a hello not from a handshake
		ctx = context.Background()
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("acme: certificate for %s: gave up waiting: %w", name, context.Cause(ctx))
	}
	if f.err != nil {
		return nil, f.err
	}
	if hello.SupportsCertificate(f.cert) != nil {
		// A flight started by a client of the other kind (ECDSA or RSA,
		// which autocert keeps apart): this client's own lookup.
		return a.m.GetCertificate(hello)
	}
	return f.cert, nil
}

// flight is one lookup of a name's certificate; cert and err are set
// before done is closed.
type flight struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// fly runs f: autocert's lookup (memory, cache, or an order that waits up
// to autocert's 5 minutes), then the log line if any.
func (a *acmeCerts) fly(name string, f *flight, hello *tls.ClientHelloInfo) {
	c, err := a.m.GetCertificate(hello)
	a.mu.Lock()
	defer close(f.done)
	defer a.mu.Unlock()
	delete(a.flights, name)
	if err != nil {
		f.err = fmt.Errorf("acme: no certificate for %s: %w", name, err)
		last := a.failed[name]
		if last != nil && time.Since(last.at) < acmeRetry {
			last.repeats++
			return
		}
		repeats := 0
		if last != nil {
			repeats = last.repeats
		}
		a.failed[name] = &failure{at: time.Now()}
		a.log.Error("acme: no certificate", "name", name, "error", f.err.Error(), "repeats", repeats)
		return
	}
	f.cert = c
	delete(a.failed, name)
	if c.Leaf != nil {
		if s := c.Leaf.SerialNumber.String(); a.serial[name] != s {
			a.serial[name] = s
			a.log.Info("acme: certificate", "name", name, "serial", s,
				"not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
}

// HTTPHandler answers the CA's http-01 challenges (GET
// /.well-known/acme-challenge/...) and hands every other request to
// fallback; a nil fallback redirects GET and HEAD to https and refuses
// other methods with 400. It is for a cleartext listener on port 80, which
// the CA reaches by the domain's name. Calling it lets orders use http-01
// as well as tls-alpn-01 (the TLS listener answers that one by itself).
// Without ACME it returns fallback (nil stays nil).
func (s *Server) HTTPHandler(fallback http.Handler) http.Handler {
	if s.acme == nil {
		return fallback
	}
	return s.acme.m.HTTPHandler(fallback)
}

// ACMEDomains returns the names served by ACME, nil when ACME is off.
func (s *Server) ACMEDomains() []string {
	if s.acme == nil {
		return nil
	}
	return append([]string(nil), s.acme.list...)
}
