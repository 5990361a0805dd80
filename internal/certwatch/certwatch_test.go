package certwatch_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/certwatch"
	"github.com/inboxmq/inboxmq/internal/testcerts"
)

// echoServer serves s's configuration on loopback and echoes lines back.
func echoServer(t *testing.T, s *certwatch.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, s.Config())
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// dial connects with conf and checks one echoed line, which fails when the
// server refused the client's certificate (TLS 1.3 reports that after the
// client's side of the handshake).
func dial(addr string, conf *tls.Config) (*tls.Conn, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return nil, err
	}
	if err := echo(c, "hello"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func echo(c *tls.Conn, line string) error {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != line+"\n" {
		return errors.New("echo mismatch: " + got)
	}
	return nil
}

func servedName(c *tls.Conn) string {
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// replace writes data to path through a temporary file and a rename, as
// certificate tools do.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	testcerts.WriteFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitServed dials until the server presents the certificate named want.
func waitServed(t *testing.T, addr string, conf *tls.Config, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := dial(addr, conf)
		if err == nil {
			got := servedName(c)
			c.Close()
			if got == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server still does not present %q (last error %v)", want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A certificate replaced on disk (rename over the old file) is served to
// new connections, and a connection made before keeps working.
func TestWatchServesReplacedCertificate(t *testing.T) {
	ca := testcerts.NewCA(t, "test CA")
	dir := t.TempDir()
	certPath, keyPath := ca.Server(t, "first").Write(t, dir, "server")
	s, err := certwatch.New(certwatch.Files{Cert: certPath, Key: keyPath})
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan error, 100)
	if err := s.Watch(func(changed bool, err error) { reports <- err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	addr := echoServer(t, s)
	client := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	old, err := dial(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if got := servedName(old); got != "first" {
		t.Fatalf("served %q, want first", got)
	}

	next := ca.Server(t, "second")
	replace(t, keyPath, next.KeyPEM)
	replace(t, certPath, next.CertPEM)
	waitServed(t, addr, client, "second")
	if err := echo(old, "still here"); err != nil {
		t.Fatalf("connection made before the rotation: %v", err)
	}
	if got := s.Leaf().Subject.CommonName; got != "second" {
		t.Errorf("Leaf = %q, want second", got)
	}
}

// Kubernetes updates a mounted secret by writing a new timestamped
// directory and renaming a symlink (..data) over the old one; the files
// the config names are symlinks through ..data and never change themselves.
func TestWatchFollowsKubernetesSecretSwap(t *testing.T) {
	ca := testcerts.NewCA(t, "test CA")
	mount := t.TempDir()
	version := func(name string) string {
		d := filepath.Join(mount, "..v-"+name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		p := ca.Server(t, name)
		testcerts.WriteFile(t, filepath.Join(d, "tls.crt"), p.CertPEM)
		testcerts.WriteFile(t, filepath.Join(d, "tls.key"), p.KeyPEM)
		return filepath.Base(d)
	}
	link := func(target string) {
		tmp := filepath.Join(mount, "..data_tmp")
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(mount, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	link(version("first"))
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(mount, f)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := certwatch.New(certwatch.Files{Cert: filepath.Join(mount, "tls.crt"), Key: filepath.Join(mount, "tls.key")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Watch(func(bool, error) {}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := echoServer(t, s)
	client := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	waitServed(t, addr, client, "first")

	old := filepath.Join(mount, "..v-first")
	link(version("second"))
	if err := os.RemoveAll(old); err != nil { // as the kubelet does
		t.Fatal(err)
	}
	waitServed(t, addr, client, "second")
}

// A reload that finds bad files keeps serving the old certificate, and
// its error names the file at fault.
func TestReloadKeepsOldOnBadFiles(t *testing.T) {
	ca := testcerts.NewCA(t, "test CA")
	other := ca.Server(t, "other")
	tests := []struct {
		name    string
		break_  func(cert, key, clientCA string)
		wantErr []string // substrings
	}{
		{"key of another certificate", func(cert, key, _ string) { replace(t, key, other.KeyPEM) },
			[]string{"server.crt", "server.key", "private key does not match"}},
		{"certificate not PEM", func(cert, key, _ string) { replace(t, cert, []byte("not a certificate")) },
			[]string{"server.crt"}},
		{"certificate removed", func(cert, key, _ string) { os.Remove(cert) },
			[]string{"server.crt", "no such file"}},
		{"client CA with no certificate", func(_, _, clientCA string) { replace(t, clientCA, []byte("junk")) },
			[]string{"clients.pem", "no PEM certificate"}},
		{"empty key", func(cert, key, _ string) { replace(t, key, nil) },
			[]string{"server.key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cert, key := ca.Server(t, "first").Write(t, dir, "server")
			clientCA := filepath.Join(dir, "clients.pem")
			testcerts.WriteFile(t, clientCA, ca.PEM)
			s, err := certwatch.New(certwatch.Files{Cert: cert, Key: key, ClientCA: clientCA})
			if err != nil {
				t.Fatal(err)
			}
			addr := echoServer(t, s)
			tt.break_(cert, key, clientCA)
			changed, err := s.Reload()
			if err == nil || changed {
				t.Fatalf("Reload = %v, %v; want an error", changed, err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			c, err := dial(addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := servedName(c); got != "first" {
				t.Errorf("served %q after a bad reload, want the old certificate", got)
			}
		})
	}
}

// Reloading files that did not change reports no change.
func TestReloadUnchanged(t *testing.T) {
	ca := testcerts.NewCA(t, "test CA")
	cert, key := ca.Server(t, "first").Write(t, t.TempDir(), "server")
	s, err := certwatch.New(certwatch.Files{Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := s.Reload(); changed || err != nil {
		t.Fatalf("Reload of unchanged files = %v, %v; want false, nil", changed, err)
	}
	ca.Server(t, "second").Write(t, filepath.Dir(cert), "server")
	if changed, err := s.Reload(); !changed || err != nil {
		t.Fatalf("Reload of new files = %v, %v; want true, nil", changed, err)
	}
}

// Client certificates: with a client CA, a certificate must chain to it;
// with RequireClientCert, a client without one is refused.
func TestClientCertificates(t *testing.T) {
	ca := testcerts.NewCA(t, "server CA")
	clientCA := testcerts.NewCA(t, "client CA")
	stranger := testcerts.NewCA(t, "another CA")
	dir := t.TempDir()
	cert, key := ca.Server(t, "server").Write(t, dir, "server")
	caPath := filepath.Join(dir, "clients.pem")
	testcerts.WriteFile(t, caPath, clientCA.PEM)
	good := clientCA.Client(t, "alice").TLS(t)
	foreign := stranger.Client(t, "mallory").TLS(t)

	tests := []struct {
		name    string
		require bool
		client  *tls.Certificate
		ok      bool
	}{
		{"required, signed by the client CA", true, &good, true},
		{"required, none", true, nil, false},
		{"required, signed by another CA", true, &foreign, false},
		{"optional, none", false, nil, true},
		{"optional, signed by the client CA", false, &good, true},
		{"optional, signed by another CA", false, &foreign, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := certwatch.New(certwatch.Files{Cert: cert, Key: key, ClientCA: caPath, RequireClientCert: tt.require})
			if err != nil {
				t.Fatal(err)
			}
			addr := echoServer(t, s)
			conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
			// Go's client sends no certificate the server's CA list does
			// not name; send it anyway, as another client would.
			conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if tt.client == nil {
					return &tls.Certificate{}, nil
				}
				return tt.client, nil
			}
			c, err := dial(addr, conf)
			if c != nil {
				c.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("connection error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestNewRefusesIncompleteFiles(t *testing.T) {
	ca := testcerts.NewCA(t, "test CA")
	cert, key := ca.Server(t, "s").Write(t, t.TempDir(), "server")
	tests := []struct {
		name  string
		files certwatch.Files
		want  string
	}{
		{"no key", certwatch.Files{Cert: cert}, "both a certificate and a key"},
		{"no certificate", certwatch.Files{Key: key}, "both a certificate and a key"},
		{"required without CA", certwatch.Files{Cert: cert, Key: key, RequireClientCert: true}, "client CA"},
		{"missing CA file", certwatch.Files{Cert: cert, Key: key, ClientCA: cert + ".missing"}, ".missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := certwatch.New(tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}
