import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { Route, Routes } from 'react-router-dom';
import { ServiceDetail } from './Services';
import { Tokens } from './Tokens';
import { ThemeButton } from '../components/Layout';
import { setToken } from '../api/client';
import { fakeFetch, feed, json, put, removed, renderApp, synced } from '../test/render';

afterEach(() => { vi.unstubAllGlobals(); document.documentElement.removeAttribute('data-theme'); localStorage.clear(); });

function admin() {
  setToken('cc-v1-abc-admin');
  sessionStorage.setItem('cc.role', 'admin');
}

describe('ServiceDetail', () => {
  it('scales with the number given and lists a row per task (those meant to run, by slot) with its state and pending reason, live', async () => {
    admin();
    const svc = { id: 's1', name: 'web', version: '4', spec: { replicas: '1', mode: 'SERVICE_MODE_REPLICATED', task: { image: 'cc-demo', command: [] } }, counts: { desired: '1', running: '1', pending: '0' } };
    const svcFeed = feed();
    const taskFeed = feed();
    const ff = fakeFetch([
      ['/v1/services/s1/scale', (_u, init) => json({ service: { ...svc, spec: { ...svc.spec, replicas: JSON.parse(String(init.body)).replicas } } })],
      ['/v1/services:watch', () => svcFeed.response],
      ['/v1/containers:watch', () => taskFeed.response],
      ['/v1/services/s1/logs', () => new Response('', { status: 200 })],
    ]);
    vi.stubGlobal('fetch', ff.fetch);
    renderApp(<Routes><Route path="/services/:id" element={<ServiceDetail />} /></Routes>, '/services/s1');
    await svcFeed.send(put('service', svc), synced());
    await taskFeed.send(
      put('container', { id: 't2', name: 'web.2', slot: 2, desired: 'DESIRED_STATE_RUNNING', status: { state: 'CONTAINER_STATE_PENDING' }, pending_reason: 'no node has 2 CPUs free' }),
      put('container', { id: 't0', name: 'web.1 (old)', slot: 1, desired: 'DESIRED_STATE_STOPPED', status: { state: 'CONTAINER_STATE_EXITED' } }),
      put('container', { id: 't1', name: 'web.1', slot: 1, desired: 'DESIRED_STATE_RUNNING', status: { state: 'CONTAINER_STATE_RUNNING' }, node_id: 'n1' }),
      synced(),
    );
    await waitFor(() => expect(screen.getAllByTestId('task-row')).toHaveLength(2));
    const rows = screen.getAllByTestId('task-row');
    expect(rows.map((r) => r.querySelector('.state')?.textContent)).toEqual(['●running', '◐pending']);
    expect(rows[1].textContent).toContain('no node has 2 CPUs free');
    expect(ff.calls.map((c) => c.url).filter((u) => u.includes(':watch')).sort()).toEqual(['/v1/containers:watch?service=s1&all=true', '/v1/services:watch?id=s1']);
    const input = screen.getByTestId('scale-input') as HTMLInputElement;
    await waitFor(() => expect(input.value).toBe('1'));
    fireEvent.change(input, { target: { value: '3' } });
    fireEvent.click(screen.getByRole('button', { name: 'Scale' }));
    await waitFor(() => expect(ff.calls.some((c) => c.url === '/v1/services/s1/scale')).toBe(true));
    const call = ff.calls.find((c) => c.url === '/v1/services/s1/scale')!;
    expect(call.init.method).toBe('POST');
    expect(JSON.parse(String(call.init.body))).toEqual({ replicas: '3' });
    // What the scale did comes from the watches, not from a refetch.
    await svcFeed.send(put('service', { ...svc, counts: { desired: '3', running: '1', pending: '2' } }));
    await taskFeed.send(put('container', { id: 't3', name: 'web.3', slot: 3, desired: 'DESIRED_STATE_RUNNING', status: { state: 'CONTAINER_STATE_STARTING' } }));
    await waitFor(() => expect(screen.getAllByTestId('task-row')).toHaveLength(3));
    expect(screen.getByText('1 running of 3 desired, 2 pending')).toBeTruthy();
    await taskFeed.send(removed('t2'));
    await waitFor(() => expect(screen.getAllByTestId('task-row').map((r) => r.querySelector('a')?.textContent)).toEqual(['web.1', 'web.3']));
    expect(ff.calls.filter((c) => !c.init.method || c.init.method === 'GET').every((c) => c.url.includes(':watch') || c.url.includes('/logs'))).toBe(true);
  });
});

describe('Tokens', () => {
  it('shows a new token once and revokes a token by its id', async () => {
    admin();
    let tokens = [{ id: 'aaaa', role: 'ROLE_ADMIN', description: 'me', revoked: false }, { id: 'bbbb', role: 'ROLE_VIEWER', description: 'ci', revoked: false }];
    const ff = fakeFetch([
      [/^\/v1\/tokens\/bbbb$/, () => { tokens = tokens.map((t) => (t.id === 'bbbb' ? { ...t, revoked: true } : t)); return json({}); }],
      ['/v1/tokens', (_u, init) => (init.method === 'POST'
        ? json({ token: { id: 'cccc', role: JSON.parse(String(init.body)).role }, secret: 'CCAPI-1-cccc-secretpart' })
        : json({ tokens }))],
    ]);
    vi.stubGlobal('fetch', ff.fetch);
    renderApp(<Tokens />);
    const form = within(screen.getByTestId('token-form'));
    fireEvent.change(form.getByLabelText('Role'), { target: { value: 'ROLE_JOBS' } });
    fireEvent.change(form.getByLabelText('Expires after'), { target: { value: '7d' } });
    fireEvent.click(form.getByRole('button', { name: 'Create token' }));
    const secret = (await form.findByLabelText('New token')) as HTMLInputElement;
    expect(secret.value).toBe('CCAPI-1-cccc-secretpart');
    const post = ff.calls.find((c) => c.init.method === 'POST')!;
    expect(JSON.parse(String(post.init.body))).toEqual({ role: 'ROLE_JOBS', description: '', ttl: '604800s' });
    fireEvent.click(form.getByRole('button', { name: 'Done' }));
    expect(form.queryByLabelText('New token')).toBeNull();

    const revoke = await screen.findByRole('button', { name: 'Revoke token bbbb' });
    expect(screen.getAllByTestId('revoke')).toHaveLength(2);
    vi.stubGlobal('confirm', () => true);
    fireEvent.click(revoke);
    await waitFor(() => expect(screen.getAllByTestId('revoke')).toHaveLength(1));
    expect(ff.calls.some((c) => c.url === '/v1/tokens/bbbb' && c.init.method === 'DELETE')).toBe(true);
    expect(screen.getByText('revoked')).toBeTruthy();
  });
});

describe('ThemeButton', () => {
  it('switches between light and dark and remembers the choice', () => {
    renderApp(<ThemeButton />);
    const b = screen.getByRole('button', { name: 'Theme' });
    fireEvent.click(b);
    const first = document.documentElement.dataset.theme;
    expect(['light', 'dark']).toContain(first);
    expect(localStorage.getItem('cc.theme')).toBe(first);
    fireEvent.click(b);
    expect(document.documentElement.dataset.theme).toBe(first === 'dark' ? 'light' : 'dark');
  });
});
