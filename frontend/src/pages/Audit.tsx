import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, query } from '../api/client';
import type { AuditEvent } from '../api/types';
import { ErrorBox, Loading, Page, StateText, StreamStatus, useWatch } from '../components/common';
import { enumLabel, time } from '../lib/format';

const KEEP = 500;

export function Audit() {
  const [principal, setPrincipal] = useState('');
  const [method, setMethod] = useState('');
  const [filter, setFilter] = useState({ principal: '', method: '' });
  const [live, setLive] = useState<AuditEvent[]>([]);
  const q = useQuery({
    queryKey: ['audit', filter],
    queryFn: () => api<{ events: AuditEvent[] }>(`/v1/audit${query({ ...filter, limit: 100 })}`),
    staleTime: Infinity,
  });
  const after = q.data?.events?.[0]?.index;
  const st = useWatch<{ event: AuditEvent }>(q.data ? `/v1/audit:watch${query({ ...filter, after_index: after && after !== '0' ? after : undefined })}` : null, (r) => {
    if (r.event) setLive((l) => [r.event, ...l].slice(0, KEEP));
  });
  const events = [...live, ...(q.data?.events ?? [])];
  return (
    <Page title="Audit">
      <form className="filters" onSubmit={(e) => { e.preventDefault(); setLive([]); setFilter({ principal: principal.trim(), method: method.trim() }); }} aria-label="Filter the audit trail">
        <label>Principal (token, node or server id)<input value={principal} onChange={(e) => setPrincipal(e.target.value)} /></label>
        <label>Method<input value={method} onChange={(e) => setMethod(e.target.value)} placeholder="SubmitJob" /></label>
        <button type="submit">Filter</button>
      </form>
      <StreamStatus st={st} what="New events" />
      <ErrorBox error={q.error} />
      {q.isLoading ? <Loading /> : null}
      <div className="table-wrap" tabIndex={0}>
        <table>
          <thead><tr><th scope="col">Time</th><th scope="col">Who</th><th scope="col">Method</th><th scope="col">Target</th><th scope="col">Outcome</th><th scope="col">From</th></tr></thead>
          <tbody>
            {events.map((e, i) => (
              <tr key={`${e.index}-${e.time}-${i}`}>
                <td>{time(e.time)}</td>
                <td>{e.token_id ? `token ${e.token_id} (${enumLabel(e.role)})` : e.node_id ? `node ${e.node_id}` : e.server_id ? `server ${e.server_id}` : '—'}</td>
                <td><code>{e.method.replace('/cc.v1.', '')}</code></td>
                <td>{e.target}</td>
                <td><StateText value={e.outcome === 'ok' ? 'OK' : 'FAILED'} label={e.outcome} />{e.error ? ` — ${e.error}` : ''}</td>
                <td>{e.source}</td>
              </tr>
            ))}
            {q.data && events.length === 0 ? <tr><td colSpan={6}>No events.</td></tr> : null}
          </tbody>
        </table>
      </div>
    </Page>
  );
}
