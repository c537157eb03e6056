package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// identity is one client certificate the cluster's components or tests use.
type identity struct {
	file   string // DIR/<file>.crt, .key and .kubeconfig
	user   string // certificate CN = Kubernetes user name
	groups []string
}

// runPKI writes, into DIR, a CA, the API server's serving certificate, the service
// account signing key, a kubelet serving certificate and one client certificate plus
// kubeconfig per identity: `pki --dir DIR --server URL --node NAME --node-ip IP`.
func runPKI(args []string) int {
	fs := flag.NewFlagSet("pki", flag.ContinueOnError)
	dir := fs.String("dir", "", "output directory")
	server := fs.String("server", "", "API server URL written into the kubeconfigs")
	node := fs.String("node", "node-1", "name of the node")
	nodeIP := fs.String("node-ip", "127.0.0.1", "address of the node (in its serving certificate)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || *server == "" {
		fmt.Fprintln(os.Stderr, "pki: --dir and --server are required")
		return 2
	}
	ip := net.ParseIP(*nodeIP)
	if ip == nil {
		fmt.Fprintf(os.Stderr, "pki: --node-ip %q is not an IP address\n", *nodeIP)
		return 2
	}
	if err := writePKI(*dir, *server, *node, ip); err != nil {
		fmt.Fprintf(os.Stderr, "pki: %v\n", err)
		return 1
	}
	return 0
}

func writePKI(dir, server, node string, nodeIP net.IP) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := template("distarch-test-ca", nil)
	caTmpl.IsCA = true
	caTmpl.BasicConstraintsValid = true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writePair(dir, "ca", caDER, caKey); err != nil {
		return err
	}
	serving := func(file, cn string, dns []string, ips ...net.IP) error {
		t := template(cn, nil)
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		t.DNSNames = dns
		t.IPAddresses = append([]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")}, ips...)
		return issue(dir, file, t, ca, caKey)
	}
	if err := serving("apiserver", "kube-apiserver", []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}); err != nil {
		return err
	}
	if err := serving("kubelet", node, []string{node, "localhost"}, nodeIP); err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, "sa.key"), saKey); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return err
	}
	ids := []identity{
		{"admin", "distarch-test-admin", []string{"system:masters"}},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}},
		{"controller-manager", "system:kube-controller-manager", nil},
		{"scheduler", "system:kube-scheduler", nil},
		{"kubelet-client", "system:node:" + node, []string{"system:nodes"}},
		// The account the tests give only docs/kubernetes-rbac.yaml's role.
		{"distarch", "distarch", nil},
	}
	for _, id := range ids {
		t := template(id.user, id.groups)
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		if err := issue(dir, id.file, t, ca, caKey); err != nil {
			return err
		}
		if err := writeKubeconfig(dir, id.file, server, caDER); err != nil {
			return err
		}
	}
	return nil
}

func template(cn string, groups []string) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: groups},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
}

func issue(dir, file string, t, ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, t, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	return writePair(dir, file, der, key)
}

func writePair(dir, file string, der []byte, key *ecdsa.PrivateKey) error {
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, file+".crt"), crt, 0o600); err != nil {
		return err
	}
	return writeKey(filepath.Join(dir, file+".key"), key)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func writeKubeconfig(dir, file, server string, caDER []byte) error {
	read := func(ext string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, file+ext))
		return base64.StdEncoding.EncodeToString(b), err
	}
	crt, err := read(".crt")
	if err != nil {
		return err
	}
	key, err := read(".key")
	if err != nil {
		return err
	}
	ca := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
contexts:
- name: test
  context:
    cluster: test
    user: %s
    namespace: default
current-context: test
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
`, server, ca, file, file, crt, key)
	return os.WriteFile(filepath.Join(dir, file+".kubeconfig"), []byte(text), 0o600)
}
