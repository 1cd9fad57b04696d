import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { useMutation } from '@tanstack/react-query';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { api, query } from '../api/client';
import type { Container, Service } from '../api/types';
import { can, useAuth } from '../auth';
import { confirmed, DL, ErrorBox, Loading, Page, StateText, StreamStatus } from '../components/common';
import { ms, sortedBy, useWatchList } from '../components/watchList';
import { LogView } from '../components/LogView';
import { enumLabel, shortId, joinCommand, splitCommand, time , shortImage } from '../lib/format';

function ServiceForm() {
  const nav = useNavigate();
  const [name, setName] = useState('');
  const [image, setImage] = useState('');
  const [command, setCommand] = useState('');
  const [replicas, setReplicas] = useState('1');
  const create = useMutation({
    mutationFn: () => api<{ service: Service }>('/v1/services', {
      method: 'POST',
      body: {
        name: name.trim(),
        spec: { task: { image: image.trim(), command: splitCommand(command) }, mode: 'SERVICE_MODE_REPLICATED', replicas: String(Math.max(0, parseInt(replicas, 10) || 0)) },
      },
    }),
    onSuccess: (r) => nav(`/services/${r.service.id}`),
  });
  const submit = (e: FormEvent) => { e.preventDefault(); if (name.trim() && image.trim()) create.mutate(); };
  return (
    <form className="form" data-testid="service-form" onSubmit={submit} aria-labelledby="svc-form-title">
      <h2 id="svc-form-title">Create service</h2>
      <label htmlFor="svc-name">Name</label>
      <input id="svc-name" required value={name} onChange={(e) => setName(e.target.value)} />
      <label htmlFor="svc-image">Image</label>
      <input id="svc-image" required value={image} onChange={(e) => setImage(e.target.value)} placeholder="cc-demo" />
      <label htmlFor="svc-command">Command</label>
      <input id="svc-command" value={command} onChange={(e) => setCommand(e.target.value)} />
      <label htmlFor="svc-replicas">Replicas</label>
      <input id="svc-replicas" type="number" min={0} inputMode="numeric" value={replicas} onChange={(e) => setReplicas(e.target.value)} />
      <button type="submit" disabled={create.isPending || !name.trim() || !image.trim()}>Create</button>
      <ErrorBox error={create.error} />
    </form>
  );
}

/** sortServices orders services by name, as GET /v1/services does. */
export const sortServices = (ss: readonly Service[]) => sortedBy(ss, (s) => s.name);

/** currentTasks keeps the tasks GET /v1/services/{id}/tasks lists (those
 * meant to run), ordered as it orders them: by slot, a global service's by
 * node, the one meant to run first, then the newest. */
export function currentTasks(ts: readonly Container[]): Container[] {
  const keyed = ts.filter((t) => t.desired === 'DESIRED_STATE_RUNNING').map((t) => ({ t, c: ms(t.created_at) }));
  keyed.sort((a, b) => {
    if (a.t.slot !== b.t.slot) return a.t.slot - b.t.slot;
    if (a.t.slot === 0 && a.t.node_id !== b.t.node_id) return a.t.node_id < b.t.node_id ? -1 : 1;
    return b.c - a.c;
  });
  return keyed.map((k) => k.t);
}

export function Services() {
  const { role } = useAuth();
  const w = useWatchList<Service>('/v1/services:watch', 'service');
  const services = useMemo(() => sortServices(w.items), [w.items]);
  return (
    <Page title="Services">
      {can(role, 'write') ? <ServiceForm /> : null}
      <h2>Services</h2>
      <StreamStatus st={w.st} what="Services" />
      {!w.synced && !w.st.error ? <Loading /> : null}
      {w.synced ? (
        <div className="table-wrap" tabIndex={0}>
          <table>
            <thead><tr><th scope="col">Name</th><th scope="col">Image</th><th scope="col">Mode</th><th scope="col">Running</th><th scope="col">Pending</th><th scope="col">Update</th></tr></thead>
            <tbody>
              {services.map((s) => (
                <tr key={s.id} data-testid="service-row">
                  <td><Link to={`/services/${s.id}`}>{s.name}</Link></td>
                  <td><code>{shortImage(s.spec?.task?.image)}</code></td>
                  <td>{enumLabel(s.spec?.mode)}</td>
                  <td>{s.counts?.running ?? 0} of {s.counts?.desired ?? 0}</td>
                  <td>{s.counts?.pending ?? 0}</td>
                  <td>{s.update && s.update.state !== 'UPDATE_STATE_UNSPECIFIED' ? <StateText value={s.update.state} /> : '—'}</td>
                </tr>
              ))}
              {services.length === 0 ? <tr><td colSpan={6}>No services yet.</td></tr> : null}
            </tbody>
          </table>
        </div>
      ) : null}
    </Page>
  );
}

export function ServiceDetail() {
  const { id = '' } = useParams();
  const { role } = useAuth();
  const nav = useNavigate();
  const path = `/v1/services/${encodeURIComponent(id)}`;
  const w = useWatchList<Service>(`/v1/services:watch${query({ id })}`, 'service');
  // all: a task that exited but is still meant to run (restarting, or
  // failed) stays listed, as on GET .../tasks; the rest are filtered here.
  const tw = useWatchList<Container>(`/v1/containers:watch${query({ service: id, all: true })}`, 'container');
  const s = w.items[0];
  const [replicas, setReplicas] = useState('');
  const [image, setImage] = useState('');
  useEffect(() => {
    if (s && replicas === '') setReplicas(String(s.spec?.replicas ?? '0'));
    if (s && image === '') setImage(s.spec?.task?.image ?? '');
  }, [s, replicas, image]);
  // The watches show what a change did: no refetch.
  const scale = useMutation({ mutationFn: (n: number) => api<{ service: Service }>(`${path}/scale`, { method: 'POST', body: { replicas: String(n) } }) });
  const update = useMutation({
    mutationFn: () => api<{ service: Service }>(path, {
      method: 'PUT',
      body: { spec: { ...s!.spec, task: { ...s!.spec!.task, image: image.trim() } }, version: s!.version },
    }),
  });
  const rollback = useMutation({ mutationFn: () => api<{ service: Service }>(`${path}/rollback`, { method: 'POST', body: {} }) });
  const remove = useMutation({ mutationFn: () => api(path, { method: 'DELETE' }), onSuccess: () => nav('/services') });
  const write = can(role, 'write');
  const submitScale = (e: FormEvent) => {
    e.preventDefault();
    const n = parseInt(replicas, 10);
    if (Number.isFinite(n) && n >= 0) scale.mutate(n);
  };
  const taskList = useMemo(() => currentTasks(tw.items), [tw.items]);
  return (
    <Page title={`Service ${s?.name || shortId(id)}`}>
      <p><Link to="/services">All services</Link></p>
      <StreamStatus st={w.st} what="Service" />
      {!w.synced && !w.st.error ? <Loading /> : null}
      {w.synced && !s ? <p className="notice" role="status">There is no service {id} (it was removed, or the name is wrong).</p> : null}
      {s ? (
        <>
          <DL items={[
            ['ID', <code key="i">{s.id}</code>],
            ['Image', <code key="im">{s.spec?.task?.image}</code>],
            ['Command', <code key="c">{joinCommand(s.spec?.task?.command)}</code>],
            ['Mode', enumLabel(s.spec?.mode)],
            ['Replicas', `${s.counts?.running ?? 0} running of ${s.counts?.desired ?? 0} desired, ${s.counts?.pending ?? 0} pending`],
            ['Version', s.version],
            ['Update', s.update && s.update.state !== 'UPDATE_STATE_UNSPECIFIED' ? <span key="u"><StateText value={s.update.state} /> {s.update.message}</span> : ''],
            ['Updated', time(s.updated_at)],
          ]} />
          {write ? (
            <section aria-labelledby="svc-actions" className="cards">
              <h2 id="svc-actions" className="visually-hidden">Actions</h2>
              <form className="form card" onSubmit={submitScale} aria-label="Scale">
                <label htmlFor="scale">Replicas</label>
                <input id="scale" data-testid="scale-input" type="number" min={0} inputMode="numeric" value={replicas} onChange={(e) => setReplicas(e.target.value)} />
                <button type="submit" disabled={scale.isPending}>Scale</button>
                <ErrorBox error={scale.error} />
              </form>
              <form className="form card" onSubmit={(e) => { e.preventDefault(); if (image.trim()) update.mutate(); }} aria-label="Update">
                <label htmlFor="svc-new-image">New image</label>
                <input id="svc-new-image" value={image} onChange={(e) => setImage(e.target.value)} />
                <div className="row">
                  <button type="submit" disabled={update.isPending}>Update</button>
                  <button type="button" className="secondary" disabled={rollback.isPending || !s.previous_spec} onClick={() => rollback.mutate()}>Roll back</button>
                  <button type="button" className="danger" disabled={remove.isPending} onClick={() => confirmed(`Remove service ${s.name} and its tasks?`) && remove.mutate()}>Remove</button>
                </div>
                <ErrorBox error={update.error || rollback.error || remove.error} />
              </form>
            </section>
          ) : null}
          <h2>Tasks</h2>
          <StreamStatus st={tw.st} what="Tasks" />
          <div className="table-wrap" tabIndex={0}>
            <table>
              <thead><tr><th scope="col">Slot</th><th scope="col">Task</th><th scope="col">State</th><th scope="col">Node</th><th scope="col">Version</th><th scope="col">Pending reason or error</th></tr></thead>
              <tbody>
                {taskList.map((t) => (
                  <tr key={t.id} data-testid="task-row">
                    <td>{t.slot}</td>
                    <td><Link to={`/containers/${t.id}`}>{t.name || shortId(t.id)}</Link></td>
                    <td><StateText value={t.status?.state ?? ''} /></td>
                    <td>{t.node_id ? <Link to={`/nodes/${t.node_id}`}>{shortId(t.node_id)}</Link> : '—'}</td>
                    <td>{t.service_version}</td>
                    <td>{t.pending_reason || t.status?.error || t.message}</td>
                  </tr>
                ))}
                {taskList.length === 0 && tw.synced ? <tr><td colSpan={6}>No tasks.</td></tr> : null}
              </tbody>
            </table>
          </div>
          <LogView key={String(s.counts?.running ?? '0')} path={`${path}/logs`} active={Number(s.counts?.running ?? 0) > 0} />
        </>
      ) : null}
    </Page>
  );
}
