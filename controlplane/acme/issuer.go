package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// LetsEncrypt is the default ACME directory.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// issuer obtains certificates from an ACME directory with acmez, the ACME
// client CertMagic itself uses, solving challenges through the cluster
// (solver). The cluster's one account lives in the ACME storage, so a new
// leader uses the same account. It implements certmagic.Issuer and
// certmagic.RenewalInfoGetter (ACME renewal information, where the CA
// offers it).
type issuer struct {
	settings *ccv1.EdgeSettings
	storage  certmagic.Storage
	solver   *solver
	http     *http.Client
	log      *slog.Logger
}

var (
	_ certmagic.Issuer            = (*issuer)(nil)
	_ certmagic.RenewalInfoGetter = (*issuer)(nil)
)

func newIssuer(st *ccv1.EdgeSettings, storage certmagic.Storage, sv *solver, log *slog.Logger) (*issuer, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	if pemRoots := st.GetAcmeCaRootsPem(); pemRoots != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(pemRoots)) {
			return nil, errors.New("ACME CA roots: no PEM certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &issuer{settings: st, storage: storage, solver: sv, http: &http.Client{Transport: tr, Timeout: time.Minute}, log: log}, nil
}

func (i *issuer) directory() string {
	if d := i.settings.GetAcmeDirectory(); d != "" {
		return d
	}
	return LetsEncrypt
}

// IssuerKey implements certmagic.Issuer: the directory's host and path,
// so that certificates of two CAs do not mix.
func (i *issuer) IssuerKey() string {
	u, err := url.Parse(i.directory())
	if err != nil {
		return "acme"
	}
	key := u.Host + strings.ReplaceAll(u.Path, "/", "-")
	return certmagic.StorageKeys.Safe(key)
}

func (i *issuer) client() *acmez.Client {
	c := &acmez.Client{
		Client:           &acme.Client{Directory: i.directory(), HTTPClient: i.http, PollTimeout: 3 * time.Minute},
		ChallengeSolvers: map[string]acmez.Solver{},
	}
	if !i.settings.GetAcmeDisableHttp01() {
		c.ChallengeSolvers[acme.ChallengeTypeHTTP01] = i.solver
	}
	if !i.settings.GetAcmeDisableTlsAlpn01() {
		c.ChallengeSolvers[acme.ChallengeTypeTLSALPN01] = i.solver
	}
	return c
}

// storedAccount is the account as kept in the ACME storage.
type storedAccount struct {
	Location string `json:"location"`
	KeyPEM   string `json:"key_pem"`
	Contact  string `json:"contact"`
}

func (i *issuer) accountKey() string { return "acme/" + i.IssuerKey() + "/account.json" }

// account loads the cluster's account for this directory, or registers
// one (agreeing to the CA's terms, with the external account binding when
// set) and stores it.
func (i *issuer) account(ctx context.Context, c *acmez.Client) (acme.Account, error) {
	contact := ""
	if m := i.settings.GetAcmeEmail(); m != "" {
		contact = "mailto:" + m
	}
	raw, err := i.storage.Load(ctx, i.accountKey())
	if err == nil {
		var sa storedAccount
		if err := json.Unmarshal(raw, &sa); err != nil {
			return acme.Account{}, fmt.Errorf("stored ACME account: %w", err)
		}
		blk, _ := pem.Decode([]byte(sa.KeyPEM))
		if blk == nil {
			return acme.Account{}, errors.New("stored ACME account: no key")
		}
		key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return acme.Account{}, fmt.Errorf("stored ACME account key: %w", err)
		}
		if sa.Contact == contact {
			return acme.Account{Location: sa.Location, PrivateKey: key.(crypto.Signer), Status: acme.StatusValid}, nil
		}
		// The email changed: update the account's contact.
		acct := acme.Account{Location: sa.Location, PrivateKey: key.(crypto.Signer), Contact: contacts(contact)}
		acct, err = c.UpdateAccount(ctx, acct)
		if err != nil {
			return acme.Account{}, fmt.Errorf("update the ACME account's contact: %w", err)
		}
		return acct, i.saveAccount(ctx, acct, contact)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return acme.Account{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return acme.Account{}, err
	}
	acct := acme.Account{Contact: contacts(contact), TermsOfServiceAgreed: true, PrivateKey: key}
	if kid := i.settings.GetAcmeEabKeyId(); kid != "" {
		if err := acct.SetExternalAccountBinding(ctx, c.Client, acme.EAB{KeyID: kid, MACKey: i.settings.GetAcmeEabHmacKey()}); err != nil {
			return acme.Account{}, fmt.Errorf("ACME external account binding: %w", err)
		}
	}
	acct, err = c.NewAccount(ctx, acct)
	if err != nil {
		return acme.Account{}, fmt.Errorf("register an ACME account at %s: %w", i.directory(), err)
	}
	i.log.Info("ACME account registered", "directory", i.directory(), "account", acct.Location)
	return acct, i.saveAccount(ctx, acct, contact)
}

func contacts(c string) []string {
	if c == "" {
		return nil
	}
	return []string{c}
}

func (i *issuer) saveAccount(ctx context.Context, acct acme.Account, contact string) error {
	der, err := x509.MarshalPKCS8PrivateKey(acct.PrivateKey)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(storedAccount{Location: acct.Location, Contact: contact,
		KeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	if err != nil {
		return err
	}
	return i.storage.Store(ctx, i.accountKey(), raw)
}

// Issue implements certmagic.Issuer: one order for the CSR's names.
func (i *issuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	c := i.client()
	if len(c.ChallengeSolvers) == 0 {
		return nil, errors.New("every ACME challenge type is turned off in the cluster settings")
	}
	acct, err := i.account(ctx, c)
	if err != nil {
		return nil, err
	}
	params, err := acmez.OrderParametersFromCSR(acct, csr)
	if err != nil {
		return nil, err
	}
	certs, err := c.ObtainCertificate(ctx, params)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("the CA returned no certificate")
	}
	return &certmagic.IssuedCertificate{Certificate: certs[0].ChainPEM}, nil
}

// GetRenewalInfo implements certmagic.RenewalInfoGetter.
func (i *issuer) GetRenewalInfo(ctx context.Context, cert certmagic.Certificate) (acme.RenewalInfo, error) {
	c := i.client()
	return c.GetRenewalInfo(ctx, cert.Leaf)
}
