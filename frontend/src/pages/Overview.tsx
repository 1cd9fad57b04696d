import { useEffect, useMemo, useRef, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router-dom';
import { api } from '../api/client';
import type { Cert, EdgeTraffic, Node, Readiness, Route, ServerInfo, Service, Site, Status } from '../api/types';
import { useAuth, can } from '../auth';
import { DL, ErrorBox, Loading, Page, StateText, StreamStatus } from '../components/common';
import { useQueues, useStatus, useWatchList } from '../components/watchList';
import { count, enumLabel, shortId } from '../lib/format';
import { JOB_STATES } from './Jobs';
import { sortServices } from './Services';

async function readyz(): Promise<Readiness & { code: number }> {
  const res = await fetch('/readyz', { headers: { Accept: 'application/json' } });
  const j = (await res.json().catch(() => ({ status: `HTTP ${res.status}`, checks: [] }))) as Readiness;
  return { ...j, code: res.status };
}

function countBy<T>(xs: T[], key: (x: T) => string): [string, number][] {
  const m = new Map<string, number>();
  for (const x of xs) m.set(key(x), (m.get(key(x)) ?? 0) + 1);
  return [...m.entries()].sort();
}

/** EdgeSample is the edge totals of one status answer, and when it came. */
export interface EdgeSample { at: number; nodes: number; requests: number; errors: number }

/** edgeRate is the requests and errors per second between two status
 * answers, or null when there is none to tell: the first answer, no time
 * between them, or counters that went back (an agent restarted, an edge
 * node came or went). */
export function edgeRate(prev: EdgeSample | null, cur: EdgeSample): { requests: number; errors: number } | null {
  if (!prev || cur.at <= prev.at || cur.nodes !== prev.nodes || cur.nodes === 0) return null;
  if (cur.requests < prev.requests || cur.errors < prev.errors) return null;
  const dt = (cur.at - prev.at) / 1000;
  return { requests: (cur.requests - prev.requests) / dt, errors: (cur.errors - prev.errors) / dt };
}

function sample(s: Status, at: number): EdgeSample {
  const e: EdgeTraffic | null | undefined = s.edge;
  return { at, nodes: s.edge_nodes ?? 0, requests: Number(e?.requests ?? 0), errors: Number(e?.errors ?? 0) };
}

const perSecond = (x: number) => (x >= 10 ? x.toFixed(0) : x.toFixed(1));

/** EdgeTrafficList says the edge's totals and, between two polls, its rate. */
function EdgeTrafficList({ status, at }: { status: Status; at: number }) {
  const prev = useRef<EdgeSample | null>(null);
  const [rate, setRate] = useState<{ requests: number; errors: number } | null>(null);
  useEffect(() => {
    const cur = sample(status, at);
    if (prev.current?.at === cur.at) return;
    setRate(edgeRate(prev.current, cur));
    prev.current = cur;
  }, [status, at]);
  const n = status.edge_nodes ?? 0;
  if (!n) return <p data-testid="edge-traffic">No edge node: no node with a live session runs the edge, so there are no requests to count.</p>;
  return (
    <ul className="counts" data-testid="edge-traffic">
      <li><span className="count">{count(status.edge?.requests)}</span> requests{rate ? ` (${perSecond(rate.requests)}/s)` : ''}</li>
      <li><span className="count">{count(status.edge?.errors)}</span> errors{rate ? ` (${perSecond(rate.errors)}/s)` : ''}</li>
      <li className="muted small">on {n} edge {n === 1 ? 'node' : 'nodes'}, since each agent started</li>
    </ul>
  );
}

/** JobsByState lists every job state with its count (absent means 0). */
function JobsByState({ counts }: { counts: Record<string, string> }) {
  return (
    <ul className="counts" data-testid="jobs-by-state">
      {JOB_STATES.map((st) => (
        <li key={st}><span className="count">{count(counts[st] ?? '0')}</span> <Link to={`/jobs?state=${st}`}>{enumLabel(st)}</Link></li>
      ))}
    </ul>
  );
}

export function Overview() {
  const { role } = useAuth();
  const read = can(role, 'read') || role === 'unknown';
  const status = useStatus();
  const ready = useQuery({ queryKey: ['readyz'], queryFn: readyz, refetchInterval: 10_000 });
  const servers = useQuery({ queryKey: ['servers'], queryFn: () => api<{ servers: ServerInfo[] }>('/v1/servers'), enabled: read, refetchInterval: 10_000 });
  const nodes = useWatchList<Node>(read ? '/v1/nodes:watch' : null, 'node');
  const services = useWatchList<Service>(read ? '/v1/services:watch' : null, 'service');
  const serviceList = useMemo(() => sortServices(services.items), [services.items]);
  const queues = useQueues();
  const routes = useQuery({ queryKey: ['routes'], queryFn: () => api<{ routes: Route[] }>('/v1/routes'), enabled: read, refetchInterval: 30_000 });
  const sites = useQuery({ queryKey: ['sites'], queryFn: () => api<{ sites: Site[] }>('/v1/sites'), enabled: read, refetchInterval: 30_000 });
  const certs = useQuery({ queryKey: ['certs'], queryFn: () => api<{ certs: Cert[] }>('/v1/certs'), enabled: read, refetchInterval: 30_000 });
  const soon = Date.now() + 14 * 86400_000;
  const expiring = (certs.data?.certs ?? []).filter((c) => c.not_after && Date.parse(c.not_after) < soon);
  const failing = (certs.data?.certs ?? []).filter((c) => c.renewal_state === 'RENEWAL_STATE_FAILED');
  const s = status.data;
  const queued = (queues.queues ?? []).reduce((a, q) => a + Number(q.queued), 0);
  const running = (queues.queues ?? []).reduce((a, q) => a + Number(q.running), 0);
  return (
    <Page title="Overview">
      <div className="cards">
        <section className="card" aria-labelledby="ov-cluster">
          <h2 id="ov-cluster">Cluster</h2>
          <StreamStatus st={status.st} what="Status" />
          {s ? (
            <DL items={[
              ['Cluster', <code key="c">{shortId(s.cluster_id)}</code>],
              ['Version', s.version],
              ['Leader', s.servers.find((x) => x.leader)?.id ? <code key="l">{s.leader_id}</code> : s.leader_id || 'none'],
              ['This server', `${s.server_name || s.server_id} (${s.raft_state.toLowerCase()})`],
              ['Raft term', s.term],
              ['Raft index', `${s.commit_index} committed, ${s.applied_index} applied`],
            ]} />
          ) : !status.data && !status.st.error ? <Loading /> : null}
        </section>
        <section className="card" aria-labelledby="ov-health">
          <h2 id="ov-health">Health</h2>
          {ready.data ? (
            <>
              <p><StateText value={ready.data.status === 'ready' ? 'READY' : 'FAILED'} label={ready.data.status} /></p>
              <ul className="checks">
                {ready.data.checks?.map((c) => (
                  <li key={c.name}>
                    <StateText value={c.ok ? 'OK' : c.required ? 'FAILED' : 'PENDING'} label={c.ok ? 'ok' : 'failing'} /> <strong>{c.name}</strong>{c.required ? '' : ' (advisory)'}{c.message ? `: ${c.message}` : ''}
                  </li>
                ))}
              </ul>
            </>
          ) : ready.error ? <ErrorBox error={ready.error} /> : <Loading />}
        </section>
        <section className="card" aria-labelledby="ov-nodes">
          <h2 id="ov-nodes">Nodes</h2>
          {read ? <StreamStatus st={nodes.st} what="Nodes" /> : null}
          {nodes.synced ? (
            <>
              <p><Link to="/nodes">{nodes.items.length} {nodes.items.length === 1 ? 'node' : 'nodes'}</Link></p>
              <ul className="counts" data-testid="nodes-by-state">
                {countBy(nodes.items, (n) => `${enumLabel(n.state)}${n.availability !== 'NODE_AVAILABILITY_ACTIVE' ? `, ${enumLabel(n.availability)}` : ''}`).map(([k, v]) => (
                  <li key={k}><span className="count">{v}</span> {k}</li>
                ))}
              </ul>
            </>
          ) : read ? (nodes.st.error ? null : <Loading />) : <p className="muted">Your token's role may not list nodes.</p>}
        </section>
        <section className="card" aria-labelledby="ov-services">
          <h2 id="ov-services">Services</h2>
          {read ? <StreamStatus st={services.st} what="Services" /> : null}
          {services.synced ? (
            <>
              <p><Link to="/services">{serviceList.length} {serviceList.length === 1 ? 'service' : 'services'}</Link></p>
              <ul className="counts" data-testid="services-summary">
                {serviceList.slice(0, 8).map((x) => (
                  <li key={x.id}><Link to={`/services/${x.id}`}>{x.name}</Link>: {x.counts?.running ?? 0}/{x.counts?.desired ?? 0} running</li>
                ))}
              </ul>
            </>
          ) : read ? (services.st.error ? null : <Loading />) : <p className="muted">Your token's role may not list services.</p>}
        </section>
        <section className="card" aria-labelledby="ov-jobs">
          <h2 id="ov-jobs">Jobs</h2>
          {s?.jobs_by_state ? <JobsByState counts={s.jobs_by_state} /> : queues.queues ? (
            // A server without jobs_by_state: what the queues tell.
            <ul className="counts">
              <li><span className="count">{queued}</span> <Link to="/jobs?state=JOB_STATE_QUEUED">queued</Link></li>
              <li><span className="count">{running}</span> <Link to="/jobs?state=JOB_STATE_RUNNING">running</Link></li>
            </ul>
          ) : !status.data && !status.st.error ? <Loading /> : null}
          {queues.queues ? <p>in {queues.queues.length} <Link to="/queues">{queues.queues.length === 1 ? 'queue' : 'queues'}</Link></p> : null}
        </section>
        <section className="card" aria-labelledby="ov-edge">
          <h2 id="ov-edge">Edge</h2>
          <h3 className="small">Requests and errors</h3>
          {s ? <EdgeTrafficList status={s} at={status.at} /> : !status.data && !status.st.error ? <Loading /> : null}
          {read ? (
            <>
              <ErrorBox error={routes.error || sites.error || certs.error} />
              <ul className="counts">
                <li><span className="count">{routes.data?.routes.length ?? '…'}</span> <Link to="/routes">{routes.data?.routes.length === 1 ? 'route' : 'routes'}</Link>, {(routes.data?.routes ?? []).reduce((a, r) => a + r.endpoints.length, 0)} endpoints</li>
                <li><span className="count">{sites.data?.sites.length ?? '…'}</span> <Link to="/sites">{sites.data?.sites.length === 1 ? 'site' : 'sites'}</Link></li>
                <li><span className="count">{certs.data?.certs.length ?? '…'}</span> <Link to="/certificates">{certs.data?.certs.length === 1 ? 'certificate' : 'certificates'}</Link>
                  {expiring.length ? <>, <StateText value="PENDING" label={`${expiring.length} expiring within 14 days`} /></> : null}
                  {failing.length ? <>, <StateText value="FAILED" label={`${failing.length} failing renewal`} /></> : null}
                </li>
              </ul>
            </>
          ) : null}
        </section>
        <section className="card" aria-labelledby="ov-servers">
          <h2 id="ov-servers">Servers</h2>
          <ErrorBox error={servers.error} />
          {servers.data ? (
            <table>
              <caption className="visually-hidden">Control-plane servers</caption>
              <thead><tr><th scope="col">Server</th><th scope="col">Role</th><th scope="col">Index</th><th scope="col">Health</th></tr></thead>
              <tbody>
                {servers.data.servers.map((x) => (
                  <tr key={x.id}>
                    <td>{x.name || shortId(x.id)}{x.leader ? ' (leader)' : ''}</td>
                    <td>{x.raft_role}</td>
                    <td>{x.last_index}</td>
                    <td><StateText value={x.healthy && x.ready ? 'HEALTHY' : x.healthy ? 'PENDING' : 'UNHEALTHY'} label={x.healthy && x.ready ? 'healthy' : x.healthy ? 'not ready' : 'unhealthy'} /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : read ? <Loading /> : null}
        </section>
      </div>
    </Page>
  );
}
