package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	covettls "github.com/covetpy/covetpy/tls"
)

// tlsSettings are the TLS, HTTP/3 and ACME settings (covettls does the work).
type tlsSettings struct {
	Cert       []string `config:"tls_cert" help:"PEM certificate chain to serve HTTPS with; several (each with its tls_key, in the same order) are chosen by SNI, the first being the default; empty (and no acme_domains) = cleartext HTTP"`
	Key        []string `config:"tls_key" help:"PEM private key of the tls_cert at the same position"`
	ClientCA   string   `config:"tls_client_ca" help:"PEM bundle of the CAs client certificates must chain to (mTLS); empty = none"`
	ClientAuth string   `config:"tls_client_auth" help:"client certificates: none, request (verified when given) or require; empty = require with tls_client_ca, else none"`
	MinVersion string   `config:"tls_min_version" help:"oldest TLS version accepted: 1.2 or 1.3"`
	HTTP3      bool     `config:"http3" help:"also serve HTTP/3 (QUIC) on UDP at the listen port (needs TLS), advertised with Alt-Svc"`

	ACMEDomains   []string `config:"acme_domains" help:"names to get certificates for from an ACME CA (tls-alpn-01 on the TLS listener)"`
	ACMEEmail     string   `config:"acme_email" help:"contact address of the ACME account; empty = none"`
	ACMEDirectory string   `config:"acme_directory" help:"ACME directory URL; empty = Let's Encrypt production"`
	ACMECache     string   `config:"acme_cache" help:"directory keeping the ACME account and certificates across restarts; empty = covetpy/acme under the user's cache directory"`
}

// on reports whether TLS is configured.
func (t *tlsSettings) on() bool { return len(t.Cert) > 0 || len(t.Key) > 0 || len(t.ACMEDomains) > 0 }

// validate checks what covettls.New cannot: how the settings go together.
func (t *tlsSettings) validate(earlyData bool) error {
	switch {
	case earlyData && !t.HTTP3:
		return errors.New("http3_early_data: needs http3")
	case len(t.Cert) != len(t.Key):
		return fmt.Errorf("tls_key: %d given for %d tls_cert; each certificate needs its key, in the same order", len(t.Key), len(t.Cert))
	case !t.on() && t.HTTP3:
		return errors.New("http3: needs TLS (tls_cert and tls_key, or acme_domains)")
	case !t.on() && (t.ClientCA != "" || t.ClientAuth != "" || t.MinVersion != ""):
		return errors.New("tls_client_ca, tls_client_auth and tls_min_version need tls_cert and tls_key (or acme_domains)")
	case !t.on() && (t.ACMEEmail != "" || t.ACMEDirectory != "" || t.ACMECache != ""):
		return errors.New("acme_email, acme_directory and acme_cache need acme_domains")
	}
	return nil
}

// certReloadEvery is how often the certificate files are looked at;
// ticketsEvery how often a new session ticket key is made (tickets resume
// across covettls.Keys keys: three hours).
const (
	certReloadEvery = 2 * time.Second
	ticketsEvery    = time.Hour
)

// setupTLS loads the certificates, then reloads them when their files
// change and on SIGHUP, logging each reload (a bad new file keeps the old
// certificate), and rotates the session ticket key hourly. nil when TLS is
// off. stop ends the reloading.
func setupTLS(t *tlsSettings, http2 bool, log *slog.Logger) (ts *covettls.Server, stop func(), err error) {
	if !t.on() {
		return nil, func() {}, nil
	}
	cfg := covettls.Config{
		ClientCA:   t.ClientCA,
		ClientAuth: t.ClientAuth,
		MinVersion: t.MinVersion,
		ACME: covettls.ACMEConfig{
			Domains:   t.ACMEDomains,
			Email:     t.ACMEEmail,
			Directory: t.ACMEDirectory,
			CacheDir:  t.ACMECache,
			Log:       log.With("component", "acme"),
		},
	}
	for i := range t.Cert {
		cfg.Pairs = append(cfg.Pairs, covettls.Pair{CertFile: t.Cert[i], KeyFile: t.Key[i]})
	}
	if !http2 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	ts, err = covettls.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	report := func(why string) func(error) {
		return func(err error) {
			if err != nil {
				log.Error("certificates not reloaded; serving the previous ones", "trigger", why, "err", err)
				return
			}
			log.Info("certificates reloaded", "trigger", why)
		}
	}
	go ts.Watch(certReloadEvery, done, report("file changed"))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		tick := time.NewTicker(ticketsEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-hup:
				report("SIGHUP")(ts.Reload())
			case <-tick.C:
				if err := ts.RotateTickets(); err != nil {
					log.Error("session ticket key not rotated", "err", err)
				}
			}
		}
	}()
	return ts, func() { signal.Stop(hup); close(done) }, nil
}
