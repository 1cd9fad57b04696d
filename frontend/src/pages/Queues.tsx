import { useState, type FormEvent } from 'react';
import { useMutation } from '@tanstack/react-query';
import { Link } from 'react-router-dom';
import { api, query } from '../api/client';
import { can, useAuth } from '../auth';
import { ErrorBox, Loading, Page, StreamStatus } from '../components/common';
import { useQueues } from '../components/watchList';

export function Queues() {
  const { role } = useAuth();
  const q = useQueues();
  const [name, setName] = useState('');
  const [max, setMax] = useState('0');
  const [net, setNet] = useState(false);
  const set = useMutation({
    mutationFn: () => api(`/v1/queues/${encodeURIComponent(name.trim())}`, { method: 'PUT', body: { max_running: Math.max(0, parseInt(max, 10) || 0), allow_network: net } }),
    // The watch shows the new limits.
    onSuccess: () => setName(''),
  });
  return (
    <Page title="Queues">
      <StreamStatus st={q.st} what="Queues" />
      {q.queues === null && !q.st.error ? <Loading /> : null}
      {q.queues ? (
        <div className="table-wrap" tabIndex={0}>
          <table>
            <thead><tr><th scope="col">Queue</th><th scope="col">Queued</th><th scope="col">Running</th><th scope="col">Max running</th><th scope="col">Network allowed</th></tr></thead>
            <tbody>
              {q.queues.map((x) => (
                <tr key={x.name}>
                  <td><Link to={`/jobs${query({ queue: x.name })}`}>{x.name}</Link></td>
                  <td>{x.queued}</td>
                  <td>{x.running}</td>
                  <td>{x.max_running || 'no limit'}</td>
                  <td>{x.allow_network ? 'yes' : 'no'}</td>
                </tr>
              ))}
              {q.queues.length === 0 ? <tr><td colSpan={5}>No queues yet: a job's queue is made when first used.</td></tr> : null}
            </tbody>
          </table>
        </div>
      ) : null}
      {can(role, 'write') ? (
        <form className="form" onSubmit={(e: FormEvent) => { e.preventDefault(); if (name.trim()) set.mutate(); }} aria-labelledby="queue-form-title">
          <h2 id="queue-form-title">Set a queue's limits</h2>
          <label htmlFor="queue-name">Queue name</label>
          <input id="queue-name" required value={name} onChange={(e) => setName(e.target.value)} />
          <label htmlFor="queue-max">Max running (0: no limit)</label>
          <input id="queue-max" type="number" min={0} value={max} onChange={(e) => setMax(e.target.value)} />
          <label className="inline"><input type="checkbox" checked={net} onChange={(e) => setNet(e.target.checked)} /> Allow jobs tokens to submit jobs with network</label>
          <button type="submit" disabled={set.isPending}>Save queue</button>
          <ErrorBox error={set.error} />
        </form>
      ) : null}
    </Page>
  );
}
