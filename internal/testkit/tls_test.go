package testkit

import (
	"crypto/x509"
	"testing"
)

func TestSelfSignedCertVerifiesForItsNames(t *testing.T) {
	cert := SelfSignedCert(t, "app", "app.example.com", "www.example.com")
	if cert.Leaf == nil || len(cert.Certificate) != 1 {
		t.Fatalf("got %d DER certificates, leaf %v; want 1 and a parsed leaf", len(cert.Certificate), cert.Leaf)
	}
	if got := cert.Leaf.Subject.CommonName; got != "app" {
		t.Fatalf("common name %q; want app", got)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	for _, name := range []string{"app.example.com", "www.example.com"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: roots}); err == nil {
		t.Error("verified for other.example.com, a name it does not carry")
	}
}
