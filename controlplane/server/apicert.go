package server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containercodes/cc/internal/pki"
)

// defaultCertPoll is how often the operator's certificate files are checked
// for a change.
const defaultCertPoll = 5 * time.Second

// apiCerts chooses the certificate of each handshake on the API port: the
// operator's certificate (tls_cert_file) for a client that asks for one of
// its names, the cluster certificate otherwise. Agents, peer servers, joins
// and ccctl with a pinned CA offer pki.ALPNCluster and always get the
// cluster certificate, whatever name they dialled.
type apiCerts struct {
	cluster func() *tls.Certificate          // the server certificate in use
	op      atomic.Pointer[pki.OperatorCert] // nil without tls_cert_file

	mu                sync.Mutex // guards the files and their stamp
	certFile, keyFile string
	stamp             filesStamp // of the files the last load attempt read
	log               *slog.Logger
}

// newAPICerts loads the operator's certificate when certFile is set; a bad
// pair is an error here (the configuration was validated just before).
func newAPICerts(cluster func() *tls.Certificate, certFile, keyFile string, log *slog.Logger) (*apiCerts, error) {
	a := &apiCerts{cluster: cluster, certFile: certFile, keyFile: keyFile, log: log}
	if certFile == "" {
		return a, nil
	}
	a.stamp = stampFiles(certFile, keyFile)
	op, err := pki.LoadOperatorCert(certFile, keyFile, time.Now())
	if err != nil {
		return nil, err
	}
	a.op.Store(op)
	a.log.Info("API certificate loaded", "cert_file", certFile, "names", op.Leaf.DNSNames, "not_after", op.Leaf.NotAfter)
	return a, nil
}

// getCertificate is the API listener's tls.Config.GetCertificate.
func (a *apiCerts) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if op := a.op.Load(); op != nil && !pki.OffersClusterALPN(hello) && op.Covers(hello.ServerName) &&
		hello.SupportsCertificate(&op.Cert) == nil {
		return &op.Cert, nil
	}
	return a.cluster(), nil
}

// watch reloads the operator's certificate whenever its files change, until
// ctx ends. A pair that fails to load is logged, and the one in use kept.
func (a *apiCerts) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.reloadIfChanged()
		}
	}
}

// reloadIfChanged loads the files again when their modification time or
// size changed since the last attempt, and reports whether it took a new
// certificate.
func (a *apiCerts) reloadIfChanged() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.certFile == "" {
		return false
	}
	st := stampFiles(a.certFile, a.keyFile)
	if st == a.stamp {
		return false
	}
	a.stamp = st
	op, err := pki.LoadOperatorCert(a.certFile, a.keyFile, time.Now())
	if err != nil {
		// The error names the file and the problem, never the key.
		a.log.Warn("API certificate files changed but cannot be used; still presenting the previous certificate (if they are being replaced, this clears once both are written)",
			"err", err)
		return false
	}
	a.op.Store(op)
	a.log.Info("API certificate reloaded", "cert_file", a.certFile, "names", op.Leaf.DNSNames, "not_after", op.Leaf.NotAfter)
	return true
}

// setFiles switches to other files (a reload of tls_cert_file and
// tls_key_file; both "" drop the operator's certificate). A pair that
// does not load is an error, and the certificate in use is kept.
func (a *apiCerts) setFiles(certFile, keyFile string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if certFile == a.certFile && keyFile == a.keyFile {
		return nil
	}
	if certFile == "" {
		a.certFile, a.keyFile, a.stamp = "", "", filesStamp{}
		a.op.Store(nil)
		a.log.Info("API certificate dropped: clients get the cluster certificate")
		return nil
	}
	st := stampFiles(certFile, keyFile)
	op, err := pki.LoadOperatorCert(certFile, keyFile, time.Now())
	if err != nil {
		return err
	}
	a.certFile, a.keyFile, a.stamp = certFile, keyFile, st
	a.op.Store(op)
	a.log.Info("API certificate loaded", "cert_file", certFile, "names", op.Leaf.DNSNames, "not_after", op.Leaf.NotAfter)
	return nil
}

// fileStamp is what tells that a file changed: its modification time and
// size (the zero value for a file that cannot be read).
type fileStamp struct {
	mod  int64 // nanoseconds since 1970
	size int64
}

type filesStamp struct{ cert, key fileStamp }

func stampFiles(certFile, keyFile string) filesStamp {
	return filesStamp{cert: stampFile(certFile), key: stampFile(keyFile)}
}

func stampFile(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime().UnixNano(), size: fi.Size()}
}
