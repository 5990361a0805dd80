package broker

import (
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/inboxmq/inboxmq/internal/certwatch"
)

// TLS listeners serve their certificate from files that are read again
// on SIGHUP (Reload) and when they change on disk, so a certificate is
// rotated without a restart and without dropping a connection.

// listen opens a TCP listener, wrapped by wrap when given, with TLS on top
// when configured.
func (b *Broker) listen(address string, t TLSConfig, wrap func(net.Listener) net.Listener) (net.Listener, error) {
	var certs *certwatch.Server
	if t.Enabled() {
		// Read the files before binding: a bad file fails the start with
		// its path, and nothing is left listening.
		var err error
		if certs, err = certwatch.New(certwatch.Files{
			Cert: t.Cert, Key: t.Key, ClientCA: t.ClientCA, RequireClientCert: t.RequireClientCert,
		}); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	if certs == nil {
		return ln, nil
	}
	b.watchCertificates(certs, t)
	return tls.NewListener(ln, certs.Config()), nil
}

// watchCertificates reloads certs when their files change, until the
// broker stops, and keeps them for Reload. Without a watch (inotify
// exhausted) SIGHUP still reloads them.
func (b *Broker) watchCertificates(certs *certwatch.Server, t TLSConfig) {
	b.certs.mu.Lock()
	b.certs.list = append(b.certs.list, certs)
	b.certs.mu.Unlock()
	err := certs.Watch(func(changed bool, err error) { b.reportCertificates(certs, changed, err, "file change") })
	if err != nil {
		b.log.Warn("TLS certificate files not watched; SIGHUP reloads them", "cert", t.Cert, "error", err)
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		<-b.stop
		if err := certs.Close(); err != nil {
			b.log.Warn("TLS certificate watch", "cert", t.Cert, "error", err)
		}
	}()
}

// reloadCertificates re-reads every TLS listener's files (a reload), and
// returns a line for each certificate replaced or not readable.
func (b *Broker) reloadCertificates() []string {
	b.certs.mu.Lock()
	list := slices.Clone(b.certs.list)
	b.certs.mu.Unlock()
	var out []string
	for _, c := range list {
		changed, err := c.Reload()
		b.reportCertificates(c, changed, err, "reload")
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("TLS certificate %s not reloaded, the previous one is still served: %v", c.Files().Cert, err))
		case changed:
			out = append(out, "TLS certificate "+c.Files().Cert+" reloaded from its file")
		}
	}
	return out
}

// certList is the TLS listeners' certificates.
type certList struct {
	mu   sync.Mutex
	list []*certwatch.Server
}

func (b *Broker) reportCertificates(c *certwatch.Server, changed bool, err error, trigger string) {
	switch {
	case err != nil:
		b.log.Error("TLS certificate not reloaded; still serving the previous one",
			"cert", c.Files().Cert, "trigger", trigger, "error", err)
	case changed:
		leaf := c.Leaf()
		b.log.Info("TLS certificate reloaded", "cert", c.Files().Cert, "trigger", trigger,
			"subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}
