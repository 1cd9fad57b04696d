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
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
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

func (i *issuer) client() *acme.Client {
	return &acme.Client{Directory: i.directory(), HTTPClient: i.http, PollTimeout: 3 * time.Minute}
}

// challengeTypes are the challenge types the cluster answers, in the
// order it prefers them.
func (i *issuer) challengeTypes() []string {
	var out []string
	if !i.settings.GetAcmeDisableHttp01() {
		out = append(out, acme.ChallengeTypeHTTP01)
	}
	if !i.settings.GetAcmeDisableTlsAlpn01() {
		out = append(out, acme.ChallengeTypeTLSALPN01)
	}
	return out
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
func (i *issuer) account(ctx context.Context, c *acme.Client) (acme.Account, error) {
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
		if err := acct.SetExternalAccountBinding(ctx, c, acme.EAB{KeyID: kid, MACKey: i.settings.GetAcmeEabHmacKey()}); err != nil {
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

// storedOrder is an order in progress, kept in the ACME storage so that a
// new leader resumes it instead of ordering again.
type storedOrder struct {
	URL string `json:"url"`
}

func (i *issuer) orderKey(names []string) string {
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	return "acme/" + i.IssuerKey() + "/orders/" + certmagic.StorageKeys.Safe(strings.Join(sorted, ",")) + ".json"
}

// Issue implements certmagic.Issuer: one order for the CSR's names,
// driven step by step with acmez's ACME client so that its URL is in the
// cluster's storage from the moment it exists. A leader that takes over
// finds it there and carries on: a pending order is resumed (its
// authorizations presented again to the edge nodes and validated), a
// ready one finalized with this CSR. Only an order the last leader already
// finalized (whose key died with it) or one the CA gave up on is replaced
// by a new one.
func (i *issuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	c := i.client()
	if len(i.challengeTypes()) == 0 {
		return nil, errors.New("every ACME challenge type is turned off in the cluster settings")
	}
	acct, err := i.account(ctx, c)
	if err != nil {
		return nil, err
	}
	key := i.orderKey(csr.DNSNames)
	order, ok := i.resume(ctx, c, acct, key, csr.DNSNames)
	if !ok {
		ids := make([]acme.Identifier, len(csr.DNSNames))
		for n, name := range csr.DNSNames {
			ids[n] = acme.Identifier{Type: "dns", Value: name}
		}
		if order, err = c.NewOrder(ctx, acct, acme.Order{Identifiers: ids}); err != nil {
			return nil, fmt.Errorf("new order: %w", err)
		}
		raw, _ := json.Marshal(storedOrder{URL: order.Location})
		if err := i.storage.Store(ctx, key, raw); err != nil {
			return nil, err
		}
		i.log.Info("ACME: order placed", "names", csr.DNSNames, "order", order.Location)
	}
	chain, err := i.complete(ctx, c, acct, order, csr)
	if err != nil {
		if errors.Is(err, errOrderDone) {
			_ = i.storage.Delete(context.WithoutCancel(ctx), key)
		}
		return nil, err
	}
	_ = i.storage.Delete(context.WithoutCancel(ctx), key)
	return &certmagic.IssuedCertificate{Certificate: chain}, nil
}

// errOrderDone marks a failure after which the order cannot go on.
var errOrderDone = errors.New("the order failed")

// resume loads the stored order for names, if there is one the CA still
// holds as pending or ready.
func (i *issuer) resume(ctx context.Context, c *acme.Client, acct acme.Account, key string, names []string) (acme.Order, bool) {
	raw, err := i.storage.Load(ctx, key)
	if err != nil {
		return acme.Order{}, false
	}
	var so storedOrder
	if json.Unmarshal(raw, &so) != nil || so.URL == "" {
		return acme.Order{}, false
	}
	order, err := c.GetOrder(ctx, acct, acme.Order{Location: so.URL})
	if err != nil || (order.Status != acme.StatusPending && order.Status != acme.StatusReady) {
		i.log.Info("ACME: the order in storage cannot be resumed; ordering again", "order", so.URL, "status", order.Status, "err", err)
		return acme.Order{}, false
	}
	order.Location = so.URL
	i.log.Info("ACME: resuming the order of an earlier leader", "names", names, "order", so.URL, "status", order.Status)
	return order, true
}

// complete validates the order's pending authorizations through the
// cluster's solver, finalizes it with csr and downloads the chain.
func (i *issuer) complete(ctx context.Context, c *acme.Client, acct acme.Account, order acme.Order, csr *x509.CertificateRequest) ([]byte, error) {
	for _, u := range order.Authorizations {
		authz, err := c.GetAuthorization(ctx, acct, u)
		if err != nil {
			return nil, fmt.Errorf("authorization %s: %w", u, err)
		}
		if authz.Status == acme.StatusValid {
			continue
		}
		if authz.Status != acme.StatusPending {
			return nil, fmt.Errorf("%w: authorization for %s is %s", errOrderDone, authz.IdentifierValue(), authz.Status)
		}
		if err := i.validate(ctx, c, acct, authz); err != nil {
			return nil, err
		}
	}
	order, err := c.GetOrder(ctx, acct, order)
	if err != nil {
		return nil, err
	}
	if order.Status == acme.StatusReady || order.Status == acme.StatusPending {
		if order, err = c.FinalizeOrder(ctx, acct, order, csr.Raw); err != nil {
			return nil, fmt.Errorf("%w: finalize: %w", errOrderDone, err)
		}
	}
	if order.Status != acme.StatusValid || order.Certificate == "" {
		return nil, fmt.Errorf("%w: the order is %s", errOrderDone, order.Status)
	}
	certs, err := c.GetCertificateChain(ctx, acct, order.Certificate)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("the CA returned no certificate")
	}
	return certs[0].ChainPEM, nil
}

// validate answers one authorization: the first challenge type the
// cluster answers (HTTP-01, then TLS-ALPN-01) is written for the edge
// nodes, the CA is asked to check it, and the result awaited.
func (i *issuer) validate(ctx context.Context, c *acme.Client, acct acme.Account, authz acme.Authorization) error {
	var chal *acme.Challenge
	for _, typ := range i.challengeTypes() {
		for n := range authz.Challenges {
			if authz.Challenges[n].Type == typ {
				chal = &authz.Challenges[n]
				break
			}
		}
		if chal != nil {
			break
		}
	}
	if chal == nil {
		return fmt.Errorf("%w: the CA offers no challenge the cluster answers for %s (offered: %v)", errOrderDone, authz.IdentifierValue(), challengeTypes(authz))
	}
	if err := i.solver.Present(ctx, *chal); err != nil {
		return err
	}
	defer func() {
		if err := i.solver.CleanUp(ctx, *chal); err != nil {
			i.log.Debug("ACME: could not remove a challenge", "host", chal.Identifier.Value, "err", err)
		}
	}()
	if err := i.solver.Wait(ctx, *chal); err != nil {
		return err
	}
	if chal.Status == acme.StatusPending {
		if _, err := c.InitiateChallenge(ctx, acct, *chal); err != nil {
			return fmt.Errorf("%s challenge for %s: %w", chal.Type, authz.IdentifierValue(), err)
		}
	}
	if _, err := c.PollAuthorization(ctx, acct, authz); err != nil {
		return fmt.Errorf("%w: %s challenge for %s: %w", errOrderDone, chal.Type, authz.IdentifierValue(), err)
	}
	return nil
}

func challengeTypes(a acme.Authorization) []string {
	var out []string
	for _, c := range a.Challenges {
		out = append(out, c.Type)
	}
	return out
}

// GetRenewalInfo implements certmagic.RenewalInfoGetter.
func (i *issuer) GetRenewalInfo(ctx context.Context, cert certmagic.Certificate) (acme.RenewalInfo, error) {
	c := i.client()
	return c.GetRenewalInfo(ctx, cert.Leaf)
}
