package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"volplane/internal/logging"
)

// The key under which etcd remembers the CA of the PKI that first used it.
const pkiFingerprintKey = "/volplane/pki/ca-sha256"

// maxSocketPath is the longest unix socket path the kernel accepts.
const maxSocketPath = 107

// embeddedEtcd is etcd running in this process on unix sockets under the
// data dir: nothing listens on the network, and only users who can enter
// the data dir (0700) reach it.
type embeddedEtcd struct {
	e        *embed.Etcd
	endpoint string
}

func startEmbeddedEtcd(ctx context.Context, dataDir, runDir string) (*embeddedEtcd, error) {
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	clientSock := filepath.Join(runDir, "etcd.sock")
	peerSock := filepath.Join(runDir, "etcd-peer.sock")
	if len(peerSock) > maxSocketPath {
		return nil, fmt.Errorf("etcd: data dir path too long for a unix socket (%s is %d bytes, at most %d)", peerSock, len(peerSock), maxSocketPath)
	}
	for _, s := range []string{clientSock, peerSock} {
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("etcd: %w", err)
		}
	}
	clientURL := url.URL{Scheme: "unix", Path: clientSock}
	// etcd listens for peers on the URL's host alone: a path there makes
	// it a socket file in runDir, where an empty host would make it an
	// abstract socket that any local user could reach.
	// The advertised peer URL only names the member; nobody dials it.
	peerListen := url.URL{Scheme: "unix", Host: peerSock}
	peerURL := url.URL{Scheme: "unix", Path: peerSock}

	cfg := embed.NewConfig()
	cfg.Name = "volplane"
	cfg.Dir = dataDir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerListen}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ListenMetricsUrls = nil
	// Keep the database small on a long-lived single machine, as
	// Kubernetes distributions do: compaction is the API server's job,
	// defragmentation and quota are etcd's.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(&zapToSlog{log: logging.Upstream().With("component", "etcd")}))

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("etcd: not ready after 60s")
	}
	return &embeddedEtcd{e: e, endpoint: clientURL.String()}, nil
}

func (e *embeddedEtcd) Close() { e.e.Close() }

// checkEtcd connects to endpoints and makes sure they hold this PKI's
// data: on a fresh etcd it records the CA fingerprint; on one that holds
// another CA's fingerprint, or Kubernetes objects but no fingerprint, it
// fails, so that a server never serves objects (service account tokens,
// CA bundles) signed by keys it does not have.
func checkEtcd(ctx context.Context, endpoints []string, fingerprint string) error {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("etcd %s unreachable: %w", strings.Join(endpoints, ","), err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()

	resp, err := cli.Get(ctx, pkiFingerprintKey)
	if err != nil {
		return fmt.Errorf("etcd %s unreachable: %w", strings.Join(endpoints, ","), err)
	}
	if len(resp.Kvs) > 0 {
		if got := string(resp.Kvs[0].Value); got != fingerprint {
			return caMismatch(fingerprint, got)
		}
		return nil
	}
	objs, err := cli.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("etcd %v: %w", endpoints, err)
	}
	if objs.Count > 0 {
		return fmt.Errorf("data dir PKI does not match its etcd: etcd %v holds %d Kubernetes objects from a cluster this PKI did not make", endpoints, objs.Count)
	}
	// First start on this etcd: record the CA, unless another server did
	// so a moment ago.
	txn, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(pkiFingerprintKey), "=", 0)).
		Then(clientv3.OpPut(pkiFingerprintKey, fingerprint)).
		Else(clientv3.OpGet(pkiFingerprintKey)).
		Commit()
	if err != nil {
		return fmt.Errorf("etcd %v: %w", endpoints, err)
	}
	if !txn.Succeeded {
		kvs := txn.Responses[0].GetResponseRange().Kvs
		if len(kvs) > 0 && string(kvs[0].Value) != fingerprint {
			return caMismatch(fingerprint, string(kvs[0].Value))
		}
	}
	return nil
}

// caMismatch is the error for an etcd made with another CA than the data
// dir's.
func caMismatch(fingerprint, etcdFingerprint string) error {
	return fmt.Errorf("data dir PKI does not match its etcd: pki CA sha256 %.16s…, etcd was made with CA sha256 %.16s…", fingerprint, etcdFingerprint)
}

// zapToSlog is a zap core that writes into slog, so etcd's logs join
// everyone else's, filtered as every upstream component's are. It takes
// etcd's records from info up, etcd's own default level (--log-level), at
// every -v: etcd's debug records carry the requests it applies, the value
// of every Secret written among them ("Apply" raftReq=...), and -v is the
// verbosity of the Kubernetes components, which never log those.
type zapToSlog struct {
	log    *slog.Logger
	fields []zapcore.Field
}

func (c *zapToSlog) Enabled(l zapcore.Level) bool {
	return l >= zapcore.InfoLevel && c.log.Enabled(context.Background(), slogLevel(l))
}

func (c *zapToSlog) With(fields []zapcore.Field) zapcore.Core {
	return &zapToSlog{log: c.log, fields: append(append([]zapcore.Field(nil), c.fields...), fields...)}
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l >= zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

func (c *zapToSlog) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *zapToSlog) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]any, 0, 2*len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, k, v)
	}
	c.log.Log(context.Background(), slogLevel(e.Level), e.Message, attrs...)
	return nil
}

func (c *zapToSlog) Sync() error { return nil }
