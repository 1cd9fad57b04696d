import { useEffect, useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { api } from '../api/client';
import type { Container, Service } from '../api/types';
import { can, useAuth } from '../auth';
import { confirmed, DL, ErrorBox, Loading, Page, StateText } from '../components/common';
import { LogView } from '../components/LogView';
import { enumLabel, shortId, joinCommand, splitCommand, time , shortImage } from '../lib/format';

function ServiceForm() {
  const qc = useQueryClient();
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
    onSuccess: (r) => { qc.invalidateQueries({ queryKey: ['services'] }); nav(`/services/${r.service.id}`); },
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

export function Services() {
  const { role } = useAuth();
  const q = useQuery({ queryKey: ['services'], queryFn: () => api<{ services: Service[] }>('/v1/services'), refetchInterval: 5_000 });
  return (
    <Page title="Services">
      {can(role, 'write') ? <ServiceForm /> : null}
      <h2>Services</h2>
      <ErrorBox error={q.error} />
      {q.isLoading ? <Loading /> : null}
      {q.data ? (
        <div className="table-wrap" tabIndex={0}>
          <table>
            <thead><tr><th scope="col">Name</th><th scope="col">Image</th><th scope="col">Mode</th><th scope="col">Running</th><th scope="col">Pending</th><th scope="col">Update</th></tr></thead>
            <tbody>
              {q.data.services.map((s) => (
                <tr key={s.id}>
                  <td><Link to={`/services/${s.id}`}>{s.name}</Link></td>
                  <td><code>{shortImage(s.spec?.task?.image)}</code></td>
                  <td>{enumLabel(s.spec?.mode)}</td>
                  <td>{s.counts?.running ?? 0} of {s.counts?.desired ?? 0}</td>
                  <td>{s.counts?.pending ?? 0}</td>
                  <td>{s.update && s.update.state !== 'UPDATE_STATE_UNSPECIFIED' ? <StateText value={s.update.state} /> : '—'}</td>
                </tr>
              ))}
              {q.data.services.length === 0 ? <tr><td colSpan={6}>No services yet.</td></tr> : null}
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
  const qc = useQueryClient();
  const nav = useNavigate();
  const path = `/v1/services/${encodeURIComponent(id)}`;
  const q = useQuery({ queryKey: ['service', id], queryFn: () => api<{ service: Service }>(path), refetchInterval: 3_000 });
  const tasks = useQuery({ queryKey: ['service-tasks', id], queryFn: () => api<{ tasks: Container[] }>(`${path}/tasks`), refetchInterval: 2_000 });
  const s = q.data?.service;
  const [replicas, setReplicas] = useState('');
  const [image, setImage] = useState('');
  useEffect(() => {
    if (s && replicas === '') setReplicas(String(s.spec?.replicas ?? '0'));
    if (s && image === '') setImage(s.spec?.task?.image ?? '');
  }, [s, replicas, image]);
  const done = (r: { service: Service }) => { qc.setQueryData(['service', id], r); qc.invalidateQueries({ queryKey: ['service-tasks', id] }); qc.invalidateQueries({ queryKey: ['services'] }); };
  const scale = useMutation({ mutationFn: (n: number) => api<{ service: Service }>(`${path}/scale`, { method: 'POST', body: { replicas: String(n) } }), onSuccess: done });
  const update = useMutation({
    mutationFn: () => api<{ service: Service }>(path, {
      method: 'PUT',
      body: { spec: { ...s!.spec, task: { ...s!.spec!.task, image: image.trim() } }, version: s!.version },
    }),
    onSuccess: done,
  });
  const rollback = useMutation({ mutationFn: () => api<{ service: Service }>(`${path}/rollback`, { method: 'POST', body: {} }), onSuccess: done });
  const remove = useMutation({ mutationFn: () => api(path, { method: 'DELETE' }), onSuccess: () => { qc.invalidateQueries({ queryKey: ['services'] }); nav('/services'); } });
  const write = can(role, 'write');
  const submitScale = (e: FormEvent) => {
    e.preventDefault();
    const n = parseInt(replicas, 10);
    if (Number.isFinite(n) && n >= 0) scale.mutate(n);
  };
  const taskList = [...(tasks.data?.tasks ?? [])].sort((a, b) => a.slot - b.slot);
  return (
    <Page title={`Service ${s?.name || shortId(id)}`}>
      <p><Link to="/services">All services</Link></p>
      <ErrorBox error={q.error} />
      {q.isLoading ? <Loading /> : null}
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
          <ErrorBox error={tasks.error} />
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
                {taskList.length === 0 ? <tr><td colSpan={6}>No tasks.</td></tr> : null}
              </tbody>
            </table>
          </div>
          <LogView key={String(s.counts?.running ?? '0')} path={`${path}/logs`} active={Number(s.counts?.running ?? 0) > 0} />
        </>
      ) : null}
    </Page>
  );
}
