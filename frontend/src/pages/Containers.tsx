import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { api, query } from '../api/client';
import type { Container } from '../api/types';
import { can, useAuth } from '../auth';
import { confirmed, DL, ErrorBox, Loading, Page, StateText } from '../components/common';
import { LogView } from '../components/LogView';
import { ago, shortId, joinCommand, splitCommand, time } from '../lib/format';
import { ContainerTable } from './Nodes';

export function RunForm({ onCreated }: { onCreated?: (c: Container) => void }) {
  const qc = useQueryClient();
  const [image, setImage] = useState('');
  const [command, setCommand] = useState('');
  const [name, setName] = useState('');
  const [env, setEnv] = useState('');
  const run = useMutation({
    mutationFn: () => api<{ container: Container }>('/v1/containers', {
      method: 'POST',
      body: {
        name: name.trim(),
        spec: { image: image.trim(), command: splitCommand(command), env: env.split('\n').map((s) => s.trim()).filter(Boolean) },
      },
    }),
    onSuccess: (r) => { qc.invalidateQueries({ queryKey: ['containers'] }); onCreated?.(r.container); },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!image.trim()) return;
    run.mutate();
  };
  return (
    <form className="form" data-testid="run-form" onSubmit={submit} aria-labelledby="run-title">
      <h2 id="run-title">Run container</h2>
      <label htmlFor="run-image">Image</label>
      <input id="run-image" required value={image} onChange={(e) => setImage(e.target.value)} placeholder="cc-demo" />
      <label htmlFor="run-command">Command</label>
      <input id="run-command" value={command} onChange={(e) => setCommand(e.target.value)} placeholder="/bin/busybox sh -c 'echo hello'" aria-describedby="run-command-help" />
      <p id="run-command-help" className="muted small">Words split as a shell would; empty runs the image's own command.</p>
      <label htmlFor="run-name">Name</label>
      <input id="run-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="optional" />
      <label htmlFor="run-env">Environment</label>
      <textarea id="run-env" rows={2} value={env} onChange={(e) => setEnv(e.target.value)} placeholder="KEY=value, one a line" />
      <button type="submit" disabled={run.isPending || !image.trim()}>Run</button>
      <ErrorBox error={run.error} />
    </form>
  );
}

export function Containers() {
  const { role } = useAuth();
  const nav = useNavigate();
  const [all, setAll] = useState(false);
  const q = useQuery({ queryKey: ['containers', { all }], queryFn: () => api<{ containers: Container[] }>(`/v1/containers${query({ all })}`), refetchInterval: 5_000 });
  return (
    <Page title="Containers">
      {can(role, 'write') ? <RunForm onCreated={(c) => nav(`/containers/${c.id}`)} /> : null}
      <h2>Containers</h2>
      <label className="inline"><input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> Show exited, failed and stopped containers too</label>
      <ErrorBox error={q.error} />
      {q.isLoading ? <Loading /> : null}
      {q.data ? <ContainerTable containers={q.data.containers} /> : null}
    </Page>
  );
}

export function ContainerDetail() {
  const { id = '' } = useParams();
  const { role } = useAuth();
  const nav = useNavigate();
  const qc = useQueryClient();
  const path = `/v1/containers/${encodeURIComponent(id)}`;
  const q = useQuery({ queryKey: ['container', id], queryFn: () => api<{ container: Container }>(path), refetchInterval: 3_000 });
  const stop = useMutation({ mutationFn: () => api<{ container: Container }>(`${path}/stop`, { method: 'POST', body: {} }), onSuccess: (r) => qc.setQueryData(['container', id], r) });
  const start = useMutation({ mutationFn: () => api<{ container: Container }>(`${path}/start`, { method: 'POST', body: {} }), onSuccess: (r) => qc.setQueryData(['container', id], r) });
  const remove = useMutation({
    mutationFn: () => api(`${path}${query({ force: true })}`, { method: 'DELETE' }),
    onSuccess: () => { qc.invalidateQueries({ queryKey: ['containers'] }); nav('/containers'); },
  });
  const c = q.data?.container;
  const write = can(role, 'write');
  const running = c?.status?.state === 'CONTAINER_STATE_RUNNING';
  return (
    <Page title={`Container ${c?.name || shortId(id)}`}>
      <p><Link to="/containers">All containers</Link></p>
      <ErrorBox error={q.error} />
      {q.isLoading ? <Loading /> : null}
      {c ? (
        <>
          {write ? (
            <div className="row" role="group" aria-label="Actions">
              {c.desired === 'DESIRED_STATE_RUNNING'
                ? <button type="button" className="secondary" disabled={stop.isPending} onClick={() => stop.mutate()}>Stop</button>
                : <button type="button" className="secondary" disabled={start.isPending} onClick={() => start.mutate()}>Start</button>}
              <button type="button" className="danger" disabled={remove.isPending} onClick={() => confirmed(`Remove container ${c.name || c.id}?`) && remove.mutate()}>Remove</button>
              {can(role, 'exec') && running ? <Link className="button" to={`/containers/${c.id}/exec`}>Terminal</Link> : null}
            </div>
          ) : null}
          <ErrorBox error={stop.error || start.error || remove.error} />
          <DL items={[
            ['ID', <code key="i">{c.id}</code>],
            ['State', <StateText key="s" value={c.status?.state ?? ''} />],
            ['Desired', <StateText key="d" value={c.desired} />],
            ['Image', <code key="im">{c.spec?.image}</code>],
            ['Image digest', <code key="dg">{c.image_digest}</code>],
            ['Command', <code key="c">{joinCommand(c.spec?.command)}</code>],
            ['Node', c.node_id ? <Link key="n" to={`/nodes/${c.node_id}`}>{shortId(c.node_id)}</Link> : ''],
            ['Service', c.service_id ? <Link key="sv" to={`/services/${c.service_id}`}>{shortId(c.service_id)}</Link> : ''],
            ['Job', c.job_id ? <Link key="j" to={`/jobs/${c.job_id}`}>{shortId(c.job_id)}</Link> : ''],
            ['IP', c.status?.ip],
            ['Exit code', c.status?.state === 'CONTAINER_STATE_EXITED' || c.status?.state === 'CONTAINER_STATE_FAILED' ? String(c.status?.exit_code ?? '') : ''],
            ['Restarts', c.status?.restart_count],
            ['Health', c.status?.health && c.status.health !== 'HEALTH_STATE_UNSPECIFIED' ? <StateText key="h" value={c.status.health} /> : ''],
            ['Pending', c.pending_reason],
            ['Error', c.status?.error || c.message],
            ['Started', c.status?.started_at ? `${time(c.status.started_at)} (${ago(c.status.started_at)})` : ''],
            ['Finished', time(c.status?.finished_at)],
          ]} />
          <LogView key={c.status?.state ?? ''} path={`${path}/logs`} active={running} />
        </>
      ) : null}
    </Page>
  );
}
