import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { Cert } from '../api/types';
import { can, useAuth } from '../auth';
import { ErrorBox, Loading, Page, StateText } from '../components/common';
import { ago, enumLabel, time } from '../lib/format';

export function Certificates() {
  const { role } = useAuth();
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ['certs'], queryFn: () => api<{ certs: Cert[] }>('/v1/certs'), refetchInterval: 30_000 });
  const renew = useMutation({ mutationFn: (n: string) => api(`/v1/certs/${encodeURIComponent(n)}/renew`, { method: 'POST', body: {} }), onSuccess: () => qc.invalidateQueries({ queryKey: ['certs'] }) });
  const write = can(role, 'write');
  return (
    <Page title="Certificates">
      <ErrorBox error={q.error || renew.error} />
      {q.isLoading ? <Loading /> : null}
      {q.data ? (
        <div className="table-wrap" tabIndex={0}>
          <table>
            <thead><tr><th scope="col">Name</th><th scope="col">Hosts</th><th scope="col">Source</th><th scope="col">Expires</th><th scope="col">Renewal</th><th scope="col">Used by</th>{write ? <th scope="col">Actions</th> : null}</tr></thead>
            <tbody>
              {q.data.certs.map((c) => (
                <tr key={c.name}>
                  <td>{c.name}</td>
                  <td>{c.hosts.join(', ')}</td>
                  <td>{enumLabel(c.source)}</td>
                  <td>{time(c.not_after)} ({ago(c.not_after)})</td>
                  <td><StateText value={c.renewal_state} />{c.last_error ? ` — ${c.last_error}` : ''}</td>
                  <td>{c.used_by.join(', ')}</td>
                  {write ? <td>{c.source === 'CERT_SOURCE_ACME' ? <button type="button" className="secondary small" aria-label={`Renew ${c.name}`} onClick={() => renew.mutate(c.name)}>Renew</button> : null}</td> : null}
                </tr>
              ))}
              {q.data.certs.length === 0 ? <tr><td colSpan={write ? 7 : 6}>No certificates. Routes with <code>tls</code> hosts get ACME certificates.</td></tr> : null}
            </tbody>
          </table>
        </div>
      ) : null}
    </Page>
  );
}
