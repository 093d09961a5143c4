// Package covettls (the tls/ folder) is the gateway's server-side TLS: the
// certificate/key pairs from PEM files, chosen per connection by SNI (an
// exact name, then a wildcard one label deep, then the first pair as the
// default); ALPN; TLS 1.2 as the floor (1.3 negotiated whenever the client
// has it) with Go's default key exchanges left as they are, so the hybrid
// post-quantum X25519MLKEM768 is used with clients that offer it; session
// tickets under keys this package rotates; and client certificates (mTLS)
// verified against a CA bundle, in the modes none, request and require, with
// the verified client's identity (Identity).
//
// Files are read by New and again by Reload (and by Watch, when their size or
// modification time changes). A reload that fails, a file missing or
// unparsable or a key that does not match its certificate, keeps everything
// as it was and returns an error naming the file: a bad new file never takes
// a working certificate away. Handshakes after a reload use the new files;
// connections already open are not touched.
//
// ACME (Config.ACME, acme.go): for the names in acme_domains, certificates
// are obtained from an ACME CA (Let's Encrypt unless acme_directory says
// otherwise) by golang.org/x/crypto/acme/autocert, on the first handshake
// that asks for the name, kept in a cache directory (acme_cache) and renewed
// before they expire. Other names get the PEM pairs as above; with no pairs,
// they are refused. The CA proves the domain with tls-alpn-01 through the
// same TLS listener (a hello offering only acme-tls/1 gets a config of its
// own) or, where the gateway also serves Server.HTTPHandler on port 80,
// http-01. A CA that is down or a directory URL that answers nothing useful
// fails the handshakes for those names, each failure logged (ACMEConfig.Log);
// nothing else is affected.
//
// This is a leaf: it imports only the standard library and
// golang.org/x/crypto. The gateway does not serve TLS through it yet: the
// settings (tls_cert, tls_key, tls_client_ca, tls_client_auth,
// tls_min_version, acme_domains, acme_email, acme_directory, acme_cache), the
// listener, HTTP/2 and HTTP/3 are issue 20's next steps.
package covettls

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client certificate modes (Config.ClientAuth).
const (
	ClientAuthNone    = "none"    // no client certificate is asked for
	ClientAuthRequest = "request" // asked for; verified when given; optional
	ClientAuthRequire = "require" // asked for, verified, required
)

// Pair is one certificate chain and its private key, PEM files.
type Pair struct {
	CertFile, KeyFile string
}

// Config says what to serve. Pairs, ACME.Domains or both must be given; the
// first pair is the default, served to clients whose SNI names neither an
// ACME domain nor a pair.
type Config struct {
	Pairs []Pair
	// ACME obtains certificates for its domains; the zero value is off.
	ACME ACMEConfig
	// ClientCA is a PEM bundle of the CAs client certificates must chain
	// to; empty: clients are not asked for certificates.
	ClientCA string
	// ClientAuth is none, request or require; empty means require when
	// ClientCA is set and none when not.
	ClientAuth string
	// MinVersion is "1.2" (the default) or "1.3".
	MinVersion string
	// NextProtos are the ALPN protocols offered, in order of preference;
	// nil means h2 then http/1.1.
	NextProtos []string
}

// Keys is how many session ticket keys are kept: the newest encrypts, all
// decrypt, so a ticket survives Keys-1 rotations.
const Keys = 3

// Server holds the loaded files and hands out the tls.Config to serve with.
type Server struct {
	cfg     Config
	acme    *acmeCerts // nil: ACME off
	auth    tls.ClientAuthType
	min     uint16
	current atomic.Pointer[tls.Config] // rebuilt by each reload
	base    *tls.Config                // what callers get: defers to current

	mu      sync.Mutex // serialises reloads and ticket rotations
	stamps  map[string]fileStamp
	tickets [][32]byte
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

// New validates cfg and loads its files.
func New(cfg Config) (*Server, error) {
	names, err := validateACME(cfg.ACME)
	if err != nil {
		return nil, err
	}
	if len(cfg.Pairs) == 0 && len(names) == 0 {
		return nil, errors.New("tls: no certificate: tls_cert and tls_key, or acme_domains, are required")
	}
	s := &Server{cfg: cfg}
	switch cfg.MinVersion {
	case "", "1.2":
		s.min = tls.VersionTLS12
	case "1.3":
		s.min = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("tls_min_version: %q is not 1.2 or 1.3", cfg.MinVersion)
	}
	mode := cfg.ClientAuth
	if mode == "" {
		mode = ClientAuthNone
		if cfg.ClientCA != "" {
			mode = ClientAuthRequire
		}
	}
	switch mode {
	case ClientAuthNone:
		s.auth = tls.NoClientCert
	case ClientAuthRequest:
		s.auth = tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		s.auth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("tls_client_auth: %q is not none, request or require", cfg.ClientAuth)
	}
	if s.auth != tls.NoClientCert && cfg.ClientCA == "" {
		return nil, fmt.Errorf("tls_client_auth: %s needs tls_client_ca", mode)
	}
	if s.cfg.NextProtos == nil {
		s.cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	if len(names) > 0 {
		if s.acme, err = newACME(cfg.ACME, names); err != nil {
			return nil, err
		}
	}
	if err := s.rotate(); err != nil {
		return nil, err
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	s.base = &tls.Config{
		MinVersion: s.min,
		NextProtos: s.cfg.NextProtos,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if s.acme != nil && isChallenge(hello) {
				// A CA validating tls-alpn-01: its own config, with
				// acme-tls/1 and no client certificate asked for.
				return s.acme.challenge, nil
			}
			return s.current.Load(), nil
		},
	}
	return s, nil
}

// TLSConfig is the configuration to serve with (tls.NewListener, an
// http.Server's TLSConfig). Each handshake takes the files loaded last.
func (s *Server) TLSConfig() *tls.Config { return s.base }

// certSet is the loaded pairs, indexed for SNI, and the ACME names.
type certSet struct {
	exact    map[string]*tls.Certificate
	wildcard map[string]*tls.Certificate // "example.com" for "*.example.com"
	def      *tls.Certificate            // nil when there are no pairs
	acme     *acmeCerts                  // nil: ACME off
}

func (cs *certSet) pick(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if cs.acme != nil && cs.acme.names[name] {
		return cs.acme.get(name, hello)
	}
	if c, ok := cs.exact[name]; ok {
		return c, nil
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		if c, ok := cs.wildcard[rest]; ok {
			return c, nil
		}
	}
	if cs.def == nil {
		return nil, fmt.Errorf("tls: no certificate for %q: not in acme_domains and no tls_cert", name)
	}
	return cs.def, nil
}

// Reload reads every file again. On any error it changes nothing and says
// which file.
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	stamps := map[string]fileStamp{}
	set := &certSet{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}, acme: s.acme}
	for _, p := range s.cfg.Pairs {
		for _, f := range []string{p.CertFile, p.KeyFile} {
			st, err := stamp(f)
			if err != nil {
				return err
			}
			stamps[f] = st
		}
		c, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: certificate %s with key %s: %w", p.CertFile, p.KeyFile, err)
		}
		if set.def == nil {
			set.def = &c
		}
		for _, n := range c.Leaf.DNSNames {
			n = strings.ToLower(n)
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				if _, dup := set.wildcard[rest]; !dup {
					set.wildcard[rest] = &c
				}
			} else if _, dup := set.exact[n]; !dup {
				set.exact[n] = &c
			}
		}
	}
	var pool *x509.CertPool
	if s.cfg.ClientCA != "" {
		st, err := stamp(s.cfg.ClientCA)
		if err != nil {
			return err
		}
		stamps[s.cfg.ClientCA] = st
		pem, err := os.ReadFile(s.cfg.ClientCA)
		if err != nil {
			return fmt.Errorf("tls: client CA %s: %w", s.cfg.ClientCA, err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls: client CA %s: no PEM certificate in it", s.cfg.ClientCA)
		}
	}
	c := &tls.Config{
		MinVersion:     s.min,
		NextProtos:     s.cfg.NextProtos,
		GetCertificate: set.pick,
		ClientAuth:     s.auth,
		ClientCAs:      pool,
	}
	c.SetSessionTicketKeys(s.tickets)
	s.current.Store(c)
	s.stamps = stamps
	return nil
}

func stamp(f string) (fileStamp, error) {
	fi, err := os.Stat(f)
	if err != nil {
		return fileStamp{}, fmt.Errorf("tls: %w", err)
	}
	return fileStamp{fi.Size(), fi.ModTime()}, nil
}

// Changed reports whether any file's size or modification time differs from
// when it was last loaded.
func (s *Server) Changed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for f, old := range s.stamps {
		if st, err := stamp(f); err != nil || st != old {
			return true
		}
	}
	return false
}

// Watch reloads when the files change, looking every interval, until stop
// is closed. Each reload's error, or nil for a good one, goes to report.
func (s *Server) Watch(interval time.Duration, stop <-chan struct{}, report func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if s.Changed() {
				err := s.Reload()
				if err != nil {
					// Keep the stamps of the files in use, so a bad file
					// is reported once per change, not every interval.
					s.mu.Lock()
					for f := range s.stamps {
						if st, serr := stamp(f); serr == nil {
							s.stamps[f] = st
						}
					}
					s.mu.Unlock()
				}
				report(err)
			}
		}
	}
}

// RotateTickets makes a new session ticket key, the one new tickets are
// encrypted with; tickets under the Keys-1 keys before it still resume.
func (s *Server) RotateTickets() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.rotate(); err != nil {
		return err
	}
	s.current.Load().SetSessionTicketKeys(s.tickets)
	return nil
}

// rotate puts a new key first in s.tickets. Called with mu held (or before
// s is shared).
func (s *Server) rotate() error {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("tls: session ticket key: %w", err)
	}
	s.tickets = append([][32]byte{k}, s.tickets...)
	if len(s.tickets) > Keys {
		s.tickets = s.tickets[:Keys]
	}
	return nil
}

// ClientIdentity is a verified client certificate, as the worker gets it.
type ClientIdentity struct {
	Subject     string   // the subject's distinguished name, RFC 2253 style
	SANs        []string // DNS names, e-mail addresses, URIs and IP addresses
	Fingerprint string   // SHA-256 of the certificate (DER), lower-case hex
}

// Identity returns the client's verified certificate identity, or nil when
// the client sent none or it was not verified (mode none).
func Identity(cs *tls.ConnectionState) *ClientIdentity {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	leaf := cs.VerifiedChains[0][0]
	id := &ClientIdentity{Subject: leaf.Subject.String()}
	id.SANs = append(id.SANs, leaf.DNSNames...)
	id.SANs = append(id.SANs, leaf.EmailAddresses...)
	for _, u := range leaf.URIs {
		id.SANs = append(id.SANs, u.String())
	}
	for _, ip := range leaf.IPAddresses {
		id.SANs = append(id.SANs, ip.String())
	}
	sum := sha256.Sum256(leaf.Raw)
	id.Fingerprint = hex.EncodeToString(sum[:])
	return id
}
