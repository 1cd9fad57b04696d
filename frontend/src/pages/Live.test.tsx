import { afterEach, describe, expect, it, vi } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import { Route, Routes } from 'react-router-dom';
import { Services } from './Services';
import { NodeDetail } from './Nodes';
import { Containers } from './Containers';
import { edgeRate, Overview } from './Overview';
import { Queues } from './Queues';
import { fakeFetch, feed, json, put, removed, renderApp, synced } from '../test/render';

afterEach(() => vi.unstubAllGlobals());

function viewer() {
  sessionStorage.setItem('cc.token', 'cc-v1-abc-viewer');
  sessionStorage.setItem('cc.role', 'viewer');
}

const svc = (id: string, name: string, running: string, desired: string) => ({
  id, name, spec: { mode: 'SERVICE_MODE_REPLICATED', replicas: desired, task: { image: 'cc-demo' } },
  counts: { desired, running, pending: '0', updated: '0' }, update: null,
});

const rowText = () => screen.getAllByTestId('service-row').map((r) => Array.from(r.querySelectorAll('td')).slice(0, 1).concat(Array.from(r.querySelectorAll('td')).slice(3, 4)).map((td) => td.textContent).join(' '));

describe('Services', () => {
  it('follows the watch: a later PUT changes a count and a REMOVED row goes, with no refetch', async () => {
    viewer();
    const f = feed();
    const ff = fakeFetch([['/v1/services:watch', () => f.response]]);
    vi.stubGlobal('fetch', ff.fetch);
    renderApp(<Services />);
    await f.send(put('service', svc('s2', 'web', '1', '3')), put('service', svc('s1', 'api', '2', '2')), synced());
    // sorted by name, as GET /v1/services
    await waitFor(() => expect(rowText()).toEqual(['api 2 of 2', 'web 1 of 3']));
    expect(screen.getByText('Services: live')).toBeTruthy();
    await f.send(put('service', svc('s2', 'web', '3', '3')));
    await waitFor(() => expect(rowText()).toEqual(['api 2 of 2', 'web 3 of 3']));
    await f.send(removed('s1'));
    await waitFor(() => expect(rowText()).toEqual(['web 3 of 3']));
    await f.send(put('service', svc('s3', 'batch', '0', '1')));
    await waitFor(() => expect(rowText()).toEqual(['batch 0 of 1', 'web 3 of 3']));
    expect(ff.calls.map((c) => c.url)).toEqual(['/v1/services:watch']);
  });
});

describe('Containers', () => {
  it('lists the watched containers newest first and asks for all of them with the toggle', async () => {
    viewer();
    const f = feed();
    const ff = fakeFetch([['/v1/containers:watch', () => f.response]]);
    vi.stubGlobal('fetch', ff.fetch);
    renderApp(<Containers />);
    await f.send(
      put('container', { id: 'c1', name: 'old', created_at: '2026-01-01T00:00:00Z', status: { state: 'CONTAINER_STATE_RUNNING' } }),
      put('container', { id: 'c2', name: 'new', created_at: '2026-01-01T00:00:00.5Z', status: { state: 'CONTAINER_STATE_RUNNING' } }),
      synced(),
    );
    await waitFor(() => expect(screen.getAllByRole('link').map((a) => a.textContent)).toEqual(['new', 'old']));
    await f.send(removed('c2'));
    await waitFor(() => expect(screen.getAllByRole('link').map((a) => a.textContent)).toEqual(['old']));
    expect(ff.calls.map((c) => c.url)).toEqual(['/v1/containers:watch']);
    screen.getByRole('checkbox').click();
    await waitFor(() => expect(ff.calls.map((c) => c.url)).toEqual(['/v1/containers:watch', '/v1/containers:watch?all=true']));
  });
});

describe('NodeDetail', () => {
  it('shows the node and its tasks from their watches, with its edge counters', async () => {
    viewer();
    const nf = feed();
    const tf = feed();
    const ff = fakeFetch([['/v1/nodes:watch', () => nf.response], ['/v1/containers:watch', () => tf.response]]);
    vi.stubGlobal('fetch', ff.fetch);
    renderApp(<Routes><Route path="/nodes/:id" element={<NodeDetail />} /></Routes>, '/nodes/n1');
    const node = { id: 'n1', name: 'box', state: 'NODE_STATE_READY', availability: 'NODE_AVAILABILITY_ACTIVE', tasks: 1, edge: { requests: '12345', errors: '7' } };
    await nf.send(put('node', node), synced());
    await tf.send(put('container', { id: 'c1', name: 'web.1', status: { state: 'CONTAINER_STATE_RUNNING' }, node_id: 'n1' }), synced());
    await screen.findByText('12,345 requests, 7 errors since its agent started');
    await screen.findByText('web.1');
    expect(ff.calls.map((c) => c.url).sort()).toEqual(['/v1/containers:watch?node=n1', '/v1/nodes:watch?id=n1']);
    await nf.send(put('node', { ...node, availability: 'NODE_AVAILABILITY_DRAIN' }));
    await waitFor(() => expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Node box'));
    await screen.findByText('drain');
    await tf.send(removed('c1'));
    await screen.findByText('None.');
  });
});

describe('Overview', () => {
  function routes(status: unknown, nodes: ReturnType<typeof feed>, services: ReturnType<typeof feed>) {
    return fakeFetch([
      ['/v1/status:watch', () => (status instanceof Response ? status : json({ result: { status } }))],
      ['/readyz', () => json({ status: 'ready', checks: [] })],
      ['/v1/servers', () => json({ servers: [] })],
      ['/v1/nodes:watch', () => nodes.response],
      ['/v1/services:watch', () => services.response],
      ['/v1/queues:watch', () => json({ result: { queues: [{ name: 'default', max_running: 0, queued: '12', running: '1' }] } })],
      ['/v1/routes', () => json({ routes: [] })],
      ['/v1/sites', () => json({ sites: [] })],
      ['/v1/certs', () => json({ certs: [] })],
    ]);
  }
  const base = { cluster_id: 'c', version: 'v', server_id: 's', leader_id: 's', raft_state: 'LEADER', term: '1', commit_index: '5', applied_index: '5', servers: [] };

  it('shows jobs by state, edge requests and errors, and node and service counts from the watches', async () => {
    viewer();
    const nodes = feed();
    const services = feed();
    const statuses = feed();
    const ff = routes(statuses.response, nodes, services);
    vi.stubGlobal('fetch', ff.fetch);
    renderApp(<Overview />);
    await statuses.send({ status: { ...base, jobs_by_state: { JOB_STATE_QUEUED: '100000', JOB_STATE_SUCCEEDED: '3' }, edge: { requests: '1234567', errors: '89' }, edge_nodes: 2 } });
    const jobs = await screen.findByTestId('jobs-by-state');
    const lines = within(jobs).getAllByRole('listitem').map((li) => li.textContent);
    expect(lines).toEqual(['100,000 queued', '0 assigned', '0 running', '3 succeeded', '0 failed', '0 timed out', '0 cancelled']);
    const edge = await screen.findByTestId('edge-traffic');
    expect(edge.textContent).toContain('1,234,567 requests');
    expect(edge.textContent).toContain('89 errors');
    expect(edge.textContent).toContain('on 2 edge nodes');
    await nodes.send(
      put('node', { id: 'n1', name: 'a', state: 'NODE_STATE_READY', availability: 'NODE_AVAILABILITY_ACTIVE' }),
      put('node', { id: 'n2', name: 'b', state: 'NODE_STATE_DOWN', availability: 'NODE_AVAILABILITY_ACTIVE' }),
      synced(),
    );
    await screen.findByText('2 nodes');
    await services.send(put('service', svc('s1', 'web', '1', '1')), synced());
    await screen.findByText('1 service');
    await nodes.send(removed('n2'));
    await screen.findByText('1 node');
    await services.send(put('service', svc('s2', 'api', '0', '2')));
    await screen.findByText('2 services');
    expect(within(screen.getByTestId('services-summary')).getAllByRole('listitem').map((li) => li.textContent)).toEqual(['api: 0/2 running', 'web: 1/1 running']);
    // The status stream's next answer shows at once.
    await statuses.send({ status: { ...base, jobs_by_state: { JOB_STATE_QUEUED: '99999', JOB_STATE_SUCCEEDED: '4' }, edge: { requests: '1234600', errors: '89' }, edge_nodes: 2 } });
    await waitFor(() => expect(within(screen.getByTestId('jobs-by-state')).getAllByRole('listitem')[0].textContent).toBe('99,999 queued'));
    expect([...new Set(ff.calls.filter((c) => c.url.includes(':watch')).map((c) => c.url))].sort()).toEqual(['/v1/nodes:watch', '/v1/queues:watch', '/v1/services:watch', '/v1/status:watch']);
    expect(ff.calls.some((c) => c.url === '/v1/status')).toBe(false);
    expect(ff.calls.some((c) => c.url === '/v1/nodes' || c.url === '/v1/services')).toBe(false);
  });

  it('says when no node runs the edge', async () => {
    viewer();
    vi.stubGlobal('fetch', routes({ ...base, jobs_by_state: {}, edge: null, edge_nodes: 0 }, feed(), feed()).fetch);
    renderApp(<Overview />);
    expect((await screen.findByTestId('edge-traffic')).textContent).toMatch(/^No edge node/);
    const jobs = await screen.findByTestId('jobs-by-state');
    expect(within(jobs).getAllByRole('listitem')[0].textContent).toBe('0 queued');
  });
});

describe('edgeRate', () => {
  it('is the change per second between two answers, and none across a restart or a change of edge nodes', () => {
    const a = { at: 10_000, nodes: 1, requests: 100, errors: 2 };
    expect(edgeRate(null, a)).toBeNull();
    expect(edgeRate(a, { at: 15_000, nodes: 1, requests: 160, errors: 7 })).toEqual({ requests: 12, errors: 1 });
    expect(edgeRate(a, { at: 15_000, nodes: 1, requests: 10, errors: 0 })).toBeNull();
    expect(edgeRate(a, { at: 15_000, nodes: 2, requests: 300, errors: 2 })).toBeNull();
    expect(edgeRate(a, { ...a })).toBeNull();
  });
});

describe('Queues', () => {
  it('follows the queues watch: a later list replaces the counts, with no refetch', async () => {
    viewer();
    const f = feed();
    const ff = fakeFetch([['/v1/queues:watch', () => f.response]]);
    vi.stubGlobal('fetch', ff.fetch);
    renderApp(<Queues />);
    const q = (queued: string, running: string) => ({ queues: [{ name: 'default', max_running: 0, allow_network: false, queued, running }] });
    await f.send(q('5', '1'));
    const row = async (text: string) => waitFor(() => expect(screen.getAllByRole('row')[1].textContent).toBe(text));
    await row('default51no limitno');
    await f.send(q('4', '2'));
    await row('default42no limitno');
    expect(await screen.findByText('Queues: live')).toBeTruthy();
    expect(ff.calls.map((c) => c.url)).toEqual(['/v1/queues:watch']);
  });
});
