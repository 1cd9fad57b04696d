import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { Route } from '../api/types';
import { can, useAuth } from '../auth';
import { confirmed, ErrorBox, Loading, Page } from '../components/common';
import { enumLabel } from '../lib/format';

export function Routes() {
  const { role } = useAuth();
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ['routes'], queryFn: () => api<{ routes: Route[] }>('/v1/routes'), refetchInterval: 10_000 });
  const [f, setF] = useState({ name: '', hosts: '', path: '/', service: '', port: '80' });
  const create = useMutation({
    mutationFn: () => api('/v1/routes', { method: 'POST', body: { name: f.name.trim(), spec: {
      hosts: f.hosts.split(',').map((s) => s.trim()).filter(Boolean), path_prefix: f.path.trim() || '/', service: f.service.trim(), port: parseInt(f.port, 10) || 0,
    } } }),
    onSuccess: () => { qc.invalidateQueries({ queryKey: ['routes'] }); setF({ name: '', hosts: '', path: '/', service: '', port: '80' }); },
  });
  const remove = useMutation({ mutationFn: (n: string) => api(`/v1/routes/${encodeURIComponent(n)}`, { method: 'DELETE' }), onSuccess: () => qc.invalidateQueries({ queryKey: ['routes'] }) });
  const write = can(role, 'write');
  return (
    <Page title="Routes">
      <ErrorBox error={q.error || remove.error} />
      {q.isLoading ? <Loading /> : null}
      {q.data ? (
        <div className="table-wrap" tabIndex={0}>
          <table>
            <thead><tr><th scope="col">Name</th><th scope="col">Hosts</th><th scope="col">Path</th><th scope="col">Target</th><th scope="col">Balancing</th><th scope="col">Endpoints</th>{write ? <th scope="col">Actions</th> : null}</tr></thead>
            <tbody>
              {q.data.routes.map((r) => (
                <tr key={r.name}>
                  <td>{r.name}</td>
                  <td>{r.spec?.hosts.join(', ') || 'any'}</td>
                  <td><code>{r.spec?.path_prefix || '/'}</code></td>
                  <td>{r.spec?.service ? `service ${r.spec.service}:${r.spec.port}` : r.spec?.upstreams.map((u) => u.address).join(', ')}</td>
                  <td>{enumLabel(r.spec?.load_balancing) || 'round robin'}</td>
                  <td>{r.endpoints.length}</td>
                  {write ? <td><button type="button" className="danger small" aria-label={`Remove route ${r.name}`} onClick={() => confirmed(`Remove route ${r.name}?`) && remove.mutate(r.name)}>Remove</button></td> : null}
                </tr>
              ))}
              {q.data.routes.length === 0 ? <tr><td colSpan={write ? 7 : 6}>No routes.</td></tr> : null}
            </tbody>
          </table>
        </div>
      ) : null}
      {write ? (
        <form className="form" onSubmit={(e: FormEvent) => { e.preventDefault(); create.mutate(); }} aria-labelledby="route-form-title">
          <h2 id="route-form-title">Create route</h2>
          <label htmlFor="route-name">Name</label>
          <input id="route-name" required value={f.name} onChange={(e) => setF({ ...f, name: e.target.value })} />
          <label htmlFor="route-hosts">Hosts (comma-separated)</label>
          <input id="route-hosts" value={f.hosts} onChange={(e) => setF({ ...f, hosts: e.target.value })} placeholder="app.example.com" />
          <label htmlFor="route-path">Path prefix</label>
          <input id="route-path" value={f.path} onChange={(e) => setF({ ...f, path: e.target.value })} />
          <label htmlFor="route-service">Service</label>
          <input id="route-service" required value={f.service} onChange={(e) => setF({ ...f, service: e.target.value })} />
          <label htmlFor="route-port">Port</label>
          <input id="route-port" type="number" min={1} max={65535} value={f.port} onChange={(e) => setF({ ...f, port: e.target.value })} />
          <button type="submit" disabled={create.isPending}>Create route</button>
          <ErrorBox error={create.error} />
        </form>
      ) : null}
    </Page>
  );
}
