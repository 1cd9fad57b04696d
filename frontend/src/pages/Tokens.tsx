import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { Token } from '../api/types';
import { can, useAuth } from '../auth';
import { confirmed, ErrorBox, Loading, Page, StateText } from '../components/common';
import { enumLabel, time } from '../lib/format';

const ROLES = ['ROLE_VIEWER', 'ROLE_JOBS', 'ROLE_METRICS', 'ROLE_ADMIN', 'ROLE_AGENT', 'ROLE_SERVER'];

/** ttlSeconds reads "24h", "30m", "7d", "90s" or a number of hours. */
export function ttlSeconds(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$/i.exec(s);
  if (!m) return NaN;
  const n = parseFloat(m[1]);
  const unit = { s: 1, m: 60, h: 3600, d: 86400, '': 3600 }[m[2].toLowerCase() as 's' | 'm' | 'h' | 'd' | ''];
  return Math.round(n * unit);
}

function TokenForm() {
  const qc = useQueryClient();
  const [role, setRole] = useState('ROLE_VIEWER');
  const [description, setDescription] = useState('');
  const [ttl, setTtl] = useState('');
  const [secret, setSecret] = useState<{ id: string; secret: string } | null>(null);
  const [copied, setCopied] = useState(false);
  const create = useMutation({
    mutationFn: () => {
      const secs = ttl.trim() ? ttlSeconds(ttl) : 0;
      if (Number.isNaN(secs)) throw new Error('Expires after: write a duration such as 24h, 30m or 7d.');
      return api<{ token: Token; secret: string }>('/v1/tokens', { method: 'POST', body: { role, description: description.trim(), ...(secs ? { ttl: `${secs}s` } : {}) } });
    },
    onSuccess: (r) => { setSecret({ id: r.token.id, secret: r.secret }); setCopied(false); setDescription(''); qc.invalidateQueries({ queryKey: ['tokens'] }); },
  });
  return (
    <form className="form" data-testid="token-form" onSubmit={(e: FormEvent) => { e.preventDefault(); setSecret(null); create.mutate(); }} aria-labelledby="token-form-title">
      <h2 id="token-form-title">Create token</h2>
      <label htmlFor="token-role">Role</label>
      <select id="token-role" value={role} onChange={(e) => setRole(e.target.value)}>
        {ROLES.map((r) => <option key={r} value={r}>{enumLabel(r)}</option>)}
      </select>
      <label htmlFor="token-desc">Description</label>
      <input id="token-desc" value={description} onChange={(e) => setDescription(e.target.value)} placeholder="what it is for" />
      <label htmlFor="token-ttl">Expires after</label>
      <input id="token-ttl" value={ttl} onChange={(e) => setTtl(e.target.value)} placeholder="never (or 24h, 7d)" />
      <button type="submit" disabled={create.isPending}>Create token</button>
      <ErrorBox error={create.error} />
      {secret ? (
        <div className="secret" role="status">
          <p><strong>Token {secret.id} created.</strong> Copy its secret now: it is not stored and cannot be shown again.</p>
          <label htmlFor="token-secret">New token</label>
          <input id="token-secret" readOnly value={secret.secret} onFocus={(e) => e.currentTarget.select()} />
          <div className="row">
            <button type="button" className="secondary" onClick={() => navigator.clipboard?.writeText(secret.secret).then(() => setCopied(true)).catch(() => {})}>Copy</button>
            <button type="button" className="secondary" onClick={() => setSecret(null)}>Done</button>
            {copied ? <span role="status">Copied.</span> : null}
          </div>
        </div>
      ) : null}
    </form>
  );
}

export function Tokens() {
  const { role, tokenId } = useAuth();
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ['tokens'], queryFn: () => api<{ tokens: Token[] }>('/v1/tokens'), refetchInterval: 10_000 });
  const revoke = useMutation({
    mutationFn: (id: string) => api(`/v1/tokens/${encodeURIComponent(id)}`, { method: 'DELETE' }),
    onSettled: () => qc.invalidateQueries({ queryKey: ['tokens'] }),
  });
  const write = can(role, 'write');
  return (
    <Page title="Tokens">
      {write ? <TokenForm /> : null}
      <h2>Tokens</h2>
      <ErrorBox error={q.error || revoke.error} />
      {q.isLoading ? <Loading /> : null}
      {q.data ? (
        <div className="table-wrap" tabIndex={0}>
          <table>
            <thead><tr><th scope="col">ID</th><th scope="col">Role</th><th scope="col">Description</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">State</th>{write ? <th scope="col">Actions</th> : null}</tr></thead>
            <tbody>
              {q.data.tokens.map((t) => (
                <tr key={t.id}>
                  <td><code>{t.id}</code>{t.id === tokenId ? ' (yours)' : ''}</td>
                  <td>{enumLabel(t.role)}</td>
                  <td>{t.description}</td>
                  <td>{time(t.created_at)}</td>
                  <td>{time(t.expires_at) || 'never'}</td>
                  <td><StateText value={t.revoked ? 'REVOKED_FAILED' : 'ACTIVE'} label={t.revoked ? 'revoked' : 'active'} /></td>
                  {write ? (
                    <td>
                      {!t.revoked ? (
                        <button type="button" className="danger small" data-testid="revoke" aria-label={`Revoke token ${t.id}`}
                          disabled={revoke.isPending}
                          onClick={() => confirmed(t.id === tokenId ? 'Revoke the token you are signed in with? You will be signed out.' : `Revoke token ${t.id}?`) && revoke.mutate(t.id)}>
                          Revoke
                        </button>
                      ) : null}
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </Page>
  );
}
