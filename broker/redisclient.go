package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// newRedisClient builds the go-redis client the store, the cluster signals
// and the event channels share.
//
// Two of go-redis's defaults work against "a request is either stored or
// the client knows":
//   - It retries a command whose reply was lost and reports only the last
//     attempt's error, so a refused retry would hide that the first attempt
//     may have been stored. MaxRetries -1: the store and its callers decide.
//   - After PoolSize failed dials its pool stops dialling and returns the
//     last dial error, probing Redis once a second: for up to a second after
//     Redis is back every request fails. The dialer below keeps trying
//     every pollDial until its context ends instead of failing at the first
//     refusal, so a request waiting for Redis gets a connection within
//     pollDial of its return, and the pool's probe (bounded by the pool's
//     DialTimeout, a minute) ends as soon as Redis accepts. Requests still
//     give up at their own deadline (redis.timeout), and each dial attempt
//     at redis.dial_timeout.
//
// stop ends the dialer's polling: close it when the client closes, or
// go-redis's probe would keep a goroutine polling for up to a minute.
//
// With redis.tls the dialer also does the TLS handshake: go-redis applies
// its TLSConfig only in its own dialer, which ours replaces.
func newRedisClient(r RedisConfig, stop <-chan struct{}) (redis.UniversalClient, error) {
	tlsConf, err := r.TLS.clientConfig()
	if err != nil {
		return nil, fmt.Errorf("redis.tls: %w", err)
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 r.Addresses,
		IsClusterMode:         r.Cluster,
		MasterName:            r.MasterName,
		Username:              r.Username,
		Password:              r.Password,
		DB:                    r.DB,
		TLSConfig:             tlsConf,
		Dialer:                pollingDialer(r.DialTimeout, stop, tlsConf),
		DialTimeout:           time.Minute,
		DialerRetries:         1,
		ReadTimeout:           r.Timeout,
		WriteTimeout:          r.Timeout,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
	}), nil
}

// clientConfig builds the TLS configuration of the connections to Redis,
// nil when TLS is off.
func (t RedisTLSConfig) clientConfig() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", t.CAFile)
		}
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file %s with key_file %s: %w", t.CertFile, t.KeyFile, err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}

// pollDial is how often a dial to a Redis that refused is tried again.
const pollDial = 25 * time.Millisecond

// pollingDialer dials until it connects, ctx ends or stop closes, each
// attempt bounded by attempt; it returns the last attempt's error (a
// *net.OpError of op "dial": the store counts such a failure as "nothing
// sent").
//
// With tlsConf it returns a TLS connection after its handshake. A failed
// handshake (a certificate refused, a server not speaking TLS) is not
// tried again, as a refused connection is: polling would not fix it. It is
// returned as a dial error, which it is: no command was sent.
func pollingDialer(attempt time.Duration, stop <-chan struct{}, tlsConf *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: attempt, KeepAlive: 5 * time.Minute}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		for {
			conn, err := d.DialContext(ctx, network, addr)
			if err == nil && tlsConf != nil {
				return handshake(ctx, conn, network, addr, attempt, tlsConf)
			}
			if err == nil {
				return conn, nil
			}
			var op *net.OpError
			if ctx.Err() != nil || !errors.As(err, &op) {
				return nil, err
			}
			t := time.NewTimer(pollDial)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, err
			case <-stop:
				t.Stop()
				return nil, err
			case <-t.C:
			}
		}
	}
}

// handshake runs the client side of TLS on conn, bounded by attempt. A
// config without ServerName verifies the certificate against the host of
// addr, as go-redis's own dialer does.
func handshake(ctx context.Context, conn net.Conn, network, addr string, attempt time.Duration, conf *tls.Config) (net.Conn, error) {
	if conf.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			conn.Close()
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
		conf = conf.Clone()
		conf.ServerName = host
	}
	ctx, cancel := context.WithTimeout(ctx, attempt)
	defer cancel()
	tc := tls.Client(conn, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Addr: conn.RemoteAddr(), Err: fmt.Errorf("tls handshake: %w", err)}
	}
	return tc, nil
}
