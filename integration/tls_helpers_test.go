package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// certPair is a certificate made for a test, with its key: self-signed, or issued by
// another certPair (a CA).
type certPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// certSpec says what makeCertPair makes.
type certSpec struct {
	cn     string           // the subject's common name, also a DNS SAN unless isCA
	usage  x509.ExtKeyUsage // server or client authentication; unused when isCA
	isCA   bool             // a CA that issues the others
	issuer *certPair        // nil = self-signed
	sans   []string         // more DNS SANs
	uris   []string         // URI SANs (a SPIFFE ID, say)
	ips    []net.IP         // IP SANs; server certificates also get 127.0.0.1
	expiry time.Duration    // from now; 0 = an hour
}

// makeCertPair makes an ECDSA P-256 certificate per spec, with a random serial.
func makeCertPair(t testing.TB, spec certSpec) *certPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	expiry := spec.expiry
	if expiry == 0 {
		expiry = time.Hour
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(expiry),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if spec.isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{spec.usage}
		tmpl.DNSNames = append([]string{spec.cn}, spec.sans...)
		tmpl.IPAddresses = spec.ips
		if spec.usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IPv4(127, 0, 0, 1))
		}
	}
	for _, u := range spec.uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	parent, signer := tmpl, key
	if spec.issuer != nil {
		parent, signer = spec.issuer.cert, spec.issuer.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certPair{cert: cert, key: key}
}

// selfSignedServer is a self-signed server certificate for localhost and 127.0.0.1.
func selfSignedServer(t testing.TB) *certPair {
	return makeCertPair(t, certSpec{cn: "localhost", usage: x509.ExtKeyUsageServerAuth})
}

// certPEM and keyPEM are c's certificate and key in PEM.
func (c *certPair) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
}

func (c *certPair) keyPEM(t testing.TB) []byte {
	der, err := x509.MarshalECPrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// write puts c's certificate and key in dir as name.crt and name.key (replacing
// them atomically, by rename, when they exist) and returns their paths.
func (c *certPair) write(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeFileAtomic(t, certFile, c.certPEM())
	writeFileAtomic(t, keyFile, c.keyPEM(t))
	return certFile, keyFile
}

// writeFileAtomic writes b to name through a temporary file and a rename.
func writeFileAtomic(t testing.TB, name string, b []byte) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

// pool is a pool that trusts the certificates given.
func pool(certs ...*certPair) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c.cert)
	}
	return p
}

// tlsCert is c as a client certificate for a tls.Config.
func (c *certPair) tlsCert() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.cert.Raw}, PrivateKey: c.key, Leaf: c.cert}
}

// fingerprint is the hex SHA-256 of c's DER, as covettls.Identity gives it.
func (c *certPair) fingerprint() string {
	sum := sha256.Sum256(c.cert.Raw)
	return hex.EncodeToString(sum[:])
}
