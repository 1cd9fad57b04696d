import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { Volume } from '../api/types';
import { can, useAuth } from '../auth';
import { confirmed, ErrorBox, Loading, Page } from '../components/common';
import { bytes, shortId, time } from '../lib/format';

export function Volumes() {
  const { role } = useAuth();
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ['volumes'], queryFn: () => api<{ volumes: Volume[] }>('/v1/volumes') });
  const [name, setName] = useState('');
  const [node, setNode] = useState('');
  const create = useMutation({ mutationFn: () => api('/v1/volumes', { method: 'POST', body: { name: name.trim(), node: node.trim() } }), onSuccess: () => { setName(''); qc.invalidateQueries({ queryKey: ['volumes'] }); } });
  const remove = useMutation({ mutationFn: (n: string) => api(`/v1/volumes/${encodeURIComponent(n)}`, { method: 'DELETE' }), onSuccess: () => qc.invalidateQueries({ queryKey: ['volumes'] }) });
  const write = can(role, 'write');
  return (
    <Page title="Volumes">
      <ErrorBox error={q.error || remove.error} />
      {q.isLoading ? <Loading /> : null}
      {q.data ? (
        <div className="table-wrap" tabIndex={0}>
          <table>
            <thead><tr><th scope="col">Name</th><th scope="col">Node</th><th scope="col">Size</th><th scope="col">Used by</th><th scope="col">Created</th>{write ? <th scope="col">Actions</th> : null}</tr></thead>
            <tbody>
              {q.data.volumes.map((v) => (
                <tr key={v.name}>
                  <td>{v.name}</td>
                  <td>{v.node_name || shortId(v.node_id)}</td>
                  <td>{Number(v.size_bytes) ? bytes(v.size_bytes) : 'no limit'}</td>
                  <td>{v.used_by.join(', ') || '—'}</td>
                  <td>{time(v.created_at)}</td>
                  {write ? <td><button type="button" className="danger small" aria-label={`Remove volume ${v.name}`} onClick={() => confirmed(`Remove volume ${v.name} and its data?`) && remove.mutate(v.name)}>Remove</button></td> : null}
                </tr>
              ))}
              {q.data.volumes.length === 0 ? <tr><td colSpan={write ? 6 : 5}>No volumes.</td></tr> : null}
            </tbody>
          </table>
        </div>
      ) : null}
      {write ? (
        <form className="form" onSubmit={(e: FormEvent) => { e.preventDefault(); if (name.trim()) create.mutate(); }} aria-labelledby="vol-form-title">
          <h2 id="vol-form-title">Create volume</h2>
          <label htmlFor="vol-name">Volume name</label>
          <input id="vol-name" required value={name} onChange={(e) => setName(e.target.value)} />
          <label htmlFor="vol-node">Node (name or id; empty: chosen for you)</label>
          <input id="vol-node" value={node} onChange={(e) => setNode(e.target.value)} />
          <button type="submit" disabled={create.isPending}>Create volume</button>
          <ErrorBox error={create.error} />
        </form>
      ) : null}
    </Page>
  );
}
