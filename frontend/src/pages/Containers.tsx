import { useMemo, useState, type FormEvent } from 'react';
import { useMutation } from '@tanstack/react-query';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { api, query } from '../api/client';
import type { Container } from '../api/types';
import { can, useAuth } from '../auth';
import { confirmed, DL, ErrorBox, Loading, Page, StateText, StreamStatus } from '../components/common';
import { useWatchList } from '../components/watchList';
import { LogView } from '../components/LogView';
import { ago, shortId, joinCommand, splitCommand, time } from '../lib/format';
import { ContainerTable, sortContainers } from './Nodes';

export function RunForm({ onCreated }: { onCreated?: (c: Container) => void }) {
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
    onSuccess: (r) => onCreated?.(r.container),
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
  const w = useWatchList<Container>(`/v1/containers:watch${query({ all })}`, 'container');
  const containers = useMemo(() => sortContainers(w.items), [w.items]);
  return (
    <Page title="Containers">
      {can(role, 'write') ? <RunForm onCreated={(c) => nav(`/containers/${c.id}`)} /> : null}
      <h2>Containers</h2>
      <label className="inline"><input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> Show exited, failed and stopped containers too</label>
      <StreamStatus st={w.st} what="Containers" />
      {!w.synced && !w.st.error ? <Loading /> : null}
      {w.synced ? <ContainerTable containers={containers} /> : null}
    </Page>
  );
}

export function ContainerDetail() {
  const { id = '' } = useParams();
  const { role } = useAuth();
  const nav = useNavigate();
  const path = `/v1/containers/${encodeURIComponent(id)}`;
  // all: a stopped or exited container stays on show.
  const w = useWatchList<Container>(`/v1/containers:watch${query({ id, all: true })}`, 'container');
  // The watch shows what stop and start did: no refetch.
  const stop = useMutation({ mutationFn: () => api<{ container: Container }>(`${path}/stop`, { method: 'POST', body: {} }) });
  const start = useMutation({ mutationFn: () => api<{ container: Container }>(`${path}/start`, { method: 'POST', body: {} }) });
  const remove = useMutation({
    mutationFn: () => api(`${path}${query({ force: true })}`, { method: 'DELETE' }),
    onSuccess: () => nav('/containers'),
  });
  const c = w.items[0];
  const write = can(role, 'write');
  const running = c?.status?.state === 'CONTAINER_STATE_RUNNING';
  return (
    <Page title={`Container ${c?.name || shortId(id)}`}>
      <p><Link to="/containers">All containers</Link></p>
      <StreamStatus st={w.st} what="Container" />
      {!w.synced && !w.st.error ? <Loading /> : null}
      {w.synced && !c ? <p className="notice" role="status">There is no container {id} (it was removed, or the name is wrong).</p> : null}
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
