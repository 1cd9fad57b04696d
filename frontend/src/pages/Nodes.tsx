import { useMemo, useState, type FormEvent } from 'react';
import { useMutation } from '@tanstack/react-query';
import { Link, useParams } from 'react-router-dom';
import { api, query } from '../api/client';
import type { Container, Node } from '../api/types';
import { can, useAuth } from '../auth';
import { DL, ErrorBox, Labels, Loading, Page, StateText, StreamStatus } from '../components/common';
import { ms, sortedBy, useWatchList } from '../components/watchList';
import { ago, bytes, count, cpu, parseLabels, shortId, time , shortImage } from '../lib/format';

/** sortNodes orders nodes by name, as GET /v1/nodes does. */
export const sortNodes = (ns: readonly Node[]) => sortedBy(ns, (n) => n.name);

/** sortContainers orders containers newest first, as GET /v1/containers does. */
export const sortContainers = (cs: readonly Container[]) => sortedBy(cs, (c) => ms(c.created_at), true);

export function Nodes() {
  const w = useWatchList<Node>('/v1/nodes:watch', 'node');
  const nodes = useMemo(() => sortNodes(w.items), [w.items]);
  return (
    <Page title="Nodes">
      <StreamStatus st={w.st} what="Nodes" />
      {!w.synced && !w.st.error ? <Loading /> : null}
      {w.synced ? (
        <div className="table-wrap" tabIndex={0}>
          <table>
            <thead>
              <tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">Availability</th><th scope="col">Address</th><th scope="col">CPU</th><th scope="col">Memory</th><th scope="col">Tasks</th><th scope="col">Last seen</th></tr>
            </thead>
            <tbody>
              {nodes.map((n) => (
                <tr key={n.id}>
                  <td><Link to={`/nodes/${n.id}`}>{n.name || shortId(n.id)}</Link></td>
                  <td><StateText value={n.state} /></td>
                  <td><StateText value={n.availability} /></td>
                  <td>{n.address}</td>
                  <td>{cpu(n.allocated?.cpu_millis)} / {cpu(n.resources?.cpu_millis)}</td>
                  <td>{bytes(n.allocated?.memory_bytes)} / {bytes(n.resources?.memory_bytes)}</td>
                  <td>{n.tasks}</td>
                  <td>{ago(n.last_seen)}</td>
                </tr>
              ))}
              {nodes.length === 0 ? <tr><td colSpan={8}>No nodes have joined. Join one with <code>cc-agent --join</code>.</td></tr> : null}
            </tbody>
          </table>
        </div>
      ) : null}
    </Page>
  );
}

export function NodeDetail() {
  const { id = '' } = useParams();
  const { role } = useAuth();
  const w = useWatchList<Node>(`/v1/nodes:watch${query({ id })}`, 'node');
  const tw = useWatchList<Container>(`/v1/containers:watch${query({ node: id })}`, 'container');
  const tasks = useMemo(() => sortContainers(tw.items), [tw.items]);
  // What the watch shows is the answer: no refetch after a change.
  const update = useMutation({
    mutationFn: (body: { availability?: string; add_labels?: Record<string, string>; remove_labels?: string[] }) =>
      api<{ node: Node }>(`/v1/nodes/${encodeURIComponent(id)}`, { method: 'PATCH', body }),
  });
  const [addLabels, setAddLabels] = useState('');
  const [removeLabels, setRemoveLabels] = useState('');
  const n = w.items[0];
  const write = can(role, 'write');
  const submitLabels = (e: FormEvent) => {
    e.preventDefault();
    update.mutate({ add_labels: parseLabels(addLabels), remove_labels: removeLabels.split(',').map((s) => s.trim()).filter(Boolean) },
      { onSuccess: () => { setAddLabels(''); setRemoveLabels(''); } });
  };
  return (
    <Page title={`Node ${n?.name || shortId(id)}`}>
      <p><Link to="/nodes">All nodes</Link></p>
      <StreamStatus st={w.st} what="Node" />
      {!w.synced && !w.st.error ? <Loading /> : null}
      {w.synced && !n ? <p className="notice" role="status">There is no node {id} (it left the cluster, or the name is wrong).</p> : null}
      {n ? (
        <>
          <DL items={[
            ['ID', <code key="i">{n.id}</code>],
            ['State', <StateText key="s" value={n.state} />],
            ['Availability', <StateText key="a" value={n.availability} />],
            ['Address', n.address],
            ['Version', n.version],
            ['CPU', `${cpu(n.allocated?.cpu_millis)} reserved of ${cpu(n.resources?.cpu_millis)}`],
            ['Memory', `${bytes(n.allocated?.memory_bytes)} reserved of ${bytes(n.resources?.memory_bytes)}`],
            ['Tasks', n.tasks],
            ['Last seen', `${time(n.last_seen)} (${ago(n.last_seen)})`],
            ['Edge', n.edge ? `${count(n.edge.requests)} requests, ${count(n.edge.errors)} errors since its agent started` : ''],
            ['Certificate expires', time(n.cert_not_after)],
            ['Labels (agent)', <Labels key="l" labels={n.labels} />],
            ['Labels (user)', <Labels key="u" labels={n.user_labels} />],
          ]} />
          {write ? (
            <section aria-labelledby="node-actions">
              <h2 id="node-actions">Availability</h2>
              <div className="row" role="group" aria-label="Set availability">
                <button type="button" disabled={update.isPending || n.availability === 'NODE_AVAILABILITY_ACTIVE'} onClick={() => update.mutate({ availability: 'NODE_AVAILABILITY_ACTIVE' })}>Activate</button>
                <button type="button" className="secondary" disabled={update.isPending || n.availability === 'NODE_AVAILABILITY_PAUSE'} onClick={() => update.mutate({ availability: 'NODE_AVAILABILITY_PAUSE' })}>Pause</button>
                <button type="button" className="danger" disabled={update.isPending || n.availability === 'NODE_AVAILABILITY_DRAIN'} onClick={() => update.mutate({ availability: 'NODE_AVAILABILITY_DRAIN' })}>Drain</button>
              </div>
              <p className="muted small">Pause: no new tasks. Drain: no new tasks, and its tasks move to other nodes.</p>
              <h2>Labels</h2>
              <form onSubmit={submitLabels} className="form">
                <label>Add labels <span className="muted">(key=value, comma-separated)</span>
                  <input value={addLabels} onChange={(e) => setAddLabels(e.target.value)} placeholder="zone=a, disk=ssd" /></label>
                <label>Remove labels <span className="muted">(keys, comma-separated)</span>
                  <input value={removeLabels} onChange={(e) => setRemoveLabels(e.target.value)} /></label>
                <button type="submit" disabled={update.isPending}>Update labels</button>
              </form>
              <ErrorBox error={update.error} />
            </section>
          ) : <p className="muted">Your token's role may read this node, not change it.</p>}
          <h2>Tasks</h2>
          <StreamStatus st={tw.st} what="Tasks" />
          {tw.synced ? <ContainerTable containers={tasks} /> : null}
        </>
      ) : null}
    </Page>
  );
}

const PAGE = 200;

/** ContainerTable lists containers, the first 200 at first (a cluster may
 * run 100,000: the rest on request, so that each update stays cheap). */
export function ContainerTable({ containers, testId }: { containers: Container[]; testId?: string }) {
  const [shown, setShown] = useState(PAGE);
  if (!containers.length) return <p className="muted">None.</p>;
  const rows = containers.length > shown ? containers.slice(0, shown) : containers;
  return (
    <>
      <div className="table-wrap" tabIndex={0}>
        <table>
          <thead><tr><th scope="col">Name</th><th scope="col">Image</th><th scope="col">State</th><th scope="col">Node</th><th scope="col">Note</th></tr></thead>
          <tbody>
            {rows.map((c) => (
              <tr key={c.id} data-testid={testId}>
                <td><Link to={`/containers/${c.id}`}>{c.name || shortId(c.id)}</Link></td>
                <td><code>{shortImage(c.spec?.image)}</code></td>
                <td><StateText value={c.status?.state ?? ''} /></td>
                <td>{c.node_id ? <Link to={`/nodes/${c.node_id}`}>{shortId(c.node_id)}</Link> : '—'}</td>
                <td>{c.pending_reason || c.status?.error || c.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {rows.length < containers.length ? (
        <p className="row">
          <span className="muted">Showing {rows.length} of {containers.length}.</span>
          <button type="button" className="secondary" onClick={() => setShown((n) => n + PAGE * 5)}>Show more</button>
        </p>
      ) : null}
    </>
  );
}
