package podcert

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func TestKeyTypes(t *testing.T) {
	for _, kt := range []string{"ECDSAP256", "ECDSAP384", "ECDSAP521", "ED25519", "RSA3072"} {
		priv, csrDER, err := generateKeyAndProof(kt)
		if err != nil {
			t.Fatalf("%s: %v", kt, err)
		}
		csr, err := x509.ParseCertificateRequest(csrDER)
		if err != nil || csr.CheckSignature() != nil {
			t.Errorf("%s: the proof does not verify: %v", kt, err)
		}
		keyPEM, err := pemEncodeKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
			t.Errorf("%s: key PEM %q", kt, keyPEM)
		}
	}
	if _, _, err := generateKeyAndProof("DSA"); err == nil || err.Error() != `unknown key type "DSA"` {
		t.Errorf("unknown key type: %v", err)
	}
}

func TestCleanChain(t *testing.T) {
	in := "text\n-----BEGIN CERTIFICATE-----\nHeader: v\n\nQUFB\n-----END CERTIFICATE-----\nmore\n-----BEGIN OTHER-----\nQkJC\n-----END OTHER-----\n"
	want := "-----BEGIN CERTIFICATE-----\nQUFB\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nQkJC\n-----END CERTIFICATE-----\n"
	if got := string(cleanChain([]byte(in))); got != want {
		t.Errorf("cleanChain = %q, want %q", got, want)
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("a config without client and node name was accepted")
	}
}
