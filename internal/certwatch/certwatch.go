package certwatch

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Files names the PEM files of one TLS server.
type Files struct {
	Cert, Key string // required
	// ClientCA is a bundle of CA certificates; when set, a client that
	// presents a certificate must present one that chains to them.
	ClientCA string
	// RequireClientCert refuses clients without such a certificate; it
	// needs ClientCA.
	RequireClientCert bool
}

// settle is how long Watch waits after the last change in a directory
// before reading the files: a certificate and its key are usually written
// one after the other, and reading between the two would find a pair that
// does not match (which would keep the old pair and log an error).
const settle = 100 * time.Millisecond

// Server holds the current TLS configuration read from Files.
type Server struct {
	files Files
	base  *tls.Config
	cur   atomic.Pointer[loaded]
	mu    sync.Mutex // serialises Reload, so two reads never race to be current

	watchMu sync.Mutex // guards watcher, watched and closed
	watcher *fsnotify.Watcher
	watched map[string]bool
	closed  bool
	done    chan struct{} // closed when the watch loop has ended
}

// loaded is one reading of the files.
type loaded struct {
	conf *tls.Config
	sum  [sha256.Size]byte // of the files' contents: unchanged files are not reloaded
	leaf *x509.Certificate
}

// New reads the files once; an error names the file at fault.
func New(f Files) (*Server, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("certwatch: both a certificate and a key file are needed")
	}
	if f.RequireClientCert && f.ClientCA == "" {
		return nil, errors.New("certwatch: requiring client certificates needs a client CA file")
	}
	s := &Server{files: f}
	s.base = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().conf, nil
		},
	}
	l, err := s.read()
	if err != nil {
		return nil, err
	}
	s.cur.Store(l)
	return s, nil
}

// Config is the configuration to serve with (tls.NewListener): each
// handshake gets the files' contents as last loaded.
func (s *Server) Config() *tls.Config { return s.base }

// Files are the files s reads.
func (s *Server) Files() Files { return s.files }

// Leaf is the certificate currently served.
func (s *Server) Leaf() *x509.Certificate { return s.cur.Load().leaf }

// Reload reads the files again. When they changed and are good, new
// handshakes use them and changed is true; when reading them fails, the
// previous configuration stays and the error names the file at fault.
func (s *Server) Reload() (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.read()
	if err != nil {
		return false, err
	}
	if l.sum == s.cur.Load().sum {
		return false, nil
	}
	s.cur.Store(l)
	return true, nil
}

// read loads every file and builds the configuration they describe.
func (s *Server) read() (*loaded, error) {
	f := s.files
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	h := sha256.New()
	for _, b := range [][]byte{certPEM, {0}, keyPEM, {0}} {
		h.Write(b)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", f.Cert, f.Key, err)
	}
	l := &loaded{leaf: pair.Leaf}
	l.conf = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if f.ClientCA != "" {
		caPEM, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		h.Write(caPEM)
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate in it", f.ClientCA)
		}
		l.conf.ClientCAs = pool
		l.conf.ClientAuth = tls.VerifyClientCertIfGiven
		if f.RequireClientCert {
			l.conf.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	h.Sum(l.sum[:0])
	return l, nil
}

// Watch reloads the files whenever their directories change, until Close.
// Each reload is reported to report: changed false with a nil error means
// the files read the same as before. report is called from one goroutine.
func (s *Server) Watch(report func(changed bool, err error)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("certwatch: %w", err)
	}
	s.watchMu.Lock()
	if s.closed || s.watcher != nil {
		s.watchMu.Unlock()
		return errors.Join(errors.New("certwatch: closed or already watching"), w.Close())
	}
	s.watcher, s.watched = w, map[string]bool{}
	if err := s.watchDirsLocked(); err != nil {
		s.watcher, s.watched = nil, nil
		s.watchMu.Unlock()
		return errors.Join(err, w.Close())
	}
	s.done = make(chan struct{})
	s.watchMu.Unlock()
	go s.loop(w, report)
	return nil
}

// watchDirsLocked adds a watch on the directory of every file and, when a
// file is a symlink, on the directory of its target (where a renewal tool
// may replace the target in place). watchMu must be held.
func (s *Server) watchDirsLocked() error {
	for _, p := range []string{s.files.Cert, s.files.Key, s.files.ClientCA} {
		if p == "" {
			continue
		}
		dirs := []string{filepath.Dir(p)}
		if target, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(target))
		}
		for _, d := range dirs {
			if s.watched[d] {
				continue
			}
			if err := s.watcher.Add(d); err != nil {
				return fmt.Errorf("certwatch: watch %s: %w", d, err)
			}
			s.watched[d] = true
		}
	}
	return nil
}

func (s *Server) loop(w *fsnotify.Watcher, report func(bool, error)) {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				timer.Stop()
				return
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				// A removed directory (an old Kubernetes secret version)
				// loses its watch; it may come back under the same name.
				s.forget(ev.Name)
			}
			timer.Reset(settle)
		case err, ok := <-w.Errors:
			if !ok {
				timer.Stop()
				return
			}
			report(false, fmt.Errorf("certwatch: watching %s: %w", s.files.Cert, err))
		case <-timer.C:
			changed, err := s.Reload()
			s.watchMu.Lock()
			if !s.closed {
				if werr := s.watchDirsLocked(); werr != nil && err == nil {
					err = werr
				}
			}
			s.watchMu.Unlock()
			report(changed, err)
		}
	}
}

// forget drops a watched directory that was removed, so the next reload
// watches it again if it is back.
func (s *Server) forget(name string) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watched[name] {
		delete(s.watched, name)
	}
}

// Close stops watching; the configuration keeps serving what it loaded.
func (s *Server) Close() error {
	s.watchMu.Lock()
	w, done := s.watcher, s.done
	already := s.closed
	s.closed = true
	s.watchMu.Unlock()
	if already || w == nil {
		return nil
	}
	err := w.Close()
	<-done
	if err != nil {
		return fmt.Errorf("certwatch: %w", err)
	}
	return nil
}
