import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, screen, waitFor } from '@testing-library/react';
import { Route, Routes } from 'react-router-dom';
import { SignIn } from './SignIn';
import { App } from '../App';
import { TOKEN_KEY, REFUSED_MESSAGE, setToken } from '../api/client';
import { fakeFetch, json, renderApp } from '../test/render';

afterEach(() => vi.unstubAllGlobals());

const routes = (
  <Routes>
    <Route path="/signin" element={<SignIn />} />
    <Route path="/" element={<h1>Home page</h1>} />
  </Routes>
);

describe('SignIn', () => {
  it('checks the token with whoami, keeps it in session storage and goes on', async () => {
    const ff = fakeFetch([['/v1/whoami', () => json({ token_id: 'abc', role: 'admin' })]]);
    vi.stubGlobal('fetch', ff.fetch);
    renderApp(routes, '/signin');
    fireEvent.change(screen.getByLabelText('API token'), { target: { value: ' cc-v1-abc-secret ' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('heading', { name: 'Home page' })).toBeTruthy();
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe('cc-v1-abc-secret');
    expect(new Headers(ff.calls[0].init.headers).get('Authorization')).toBe('Bearer cc-v1-abc-secret');
    expect(ff.calls[0].url).not.toContain('secret');
  });

  it('says a refused token was refused and keeps nothing', async () => {
    vi.stubGlobal('fetch', fakeFetch([['/v1/', () => json({ code: 16, message: 'missing or invalid API token' }, 401)]]).fetch);
    renderApp(routes, '/signin');
    fireEvent.change(screen.getByLabelText('API token'), { target: { value: 'nope' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect((await screen.findByRole('alert')).textContent).toMatch(/That token was refused/);
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
    expect(screen.queryByRole('heading', { name: 'Home page' })).toBeNull();
  });

  it('finds the role without whoami: a viewer may list nodes, not read the audit trail', async () => {
    vi.stubGlobal('fetch', fakeFetch([
      ['/v1/whoami', () => json({ code: 5, message: 'Not Found' }, 404)],
      ['/v1/status', () => json({})],
      ['/v1/nodes', () => json({ nodes: [] })],
      ['/v1/audit', () => json({ code: 7, message: 'denied' }, 403)],
    ]).fetch);
    renderApp(routes, '/signin');
    fireEvent.change(screen.getByLabelText('API token'), { target: { value: 'cc-v1-0123-abc' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    await screen.findByRole('heading', { name: 'Home page' });
    expect(sessionStorage.getItem('cc.role')).toBe('viewer');
  });
});

describe('a token refused later', () => {
  it('signs out to the sign-in page with the plain message', async () => {
    setToken('cc-v1-abc-revoked');
    sessionStorage.setItem('cc.role', 'admin');
    vi.stubGlobal('fetch', fakeFetch([
      ['/readyz', () => json({ status: 'ready', checks: [] })],
      ['/v1/', () => json({ code: 16, message: 'missing or invalid API token' }, 401)],
    ]).fetch);
    renderApp(<App />, '/');
    expect(await screen.findByText(REFUSED_MESSAGE)).toBeTruthy();
    expect(screen.getByRole('heading', { level: 1, name: 'Sign in' })).toBeTruthy();
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
  });

  it('the signed-in frame has the main navigation with every page and a Sign out button', async () => {
    setToken('cc-v1-abc-ok');
    sessionStorage.setItem('cc.role', 'admin');
    vi.stubGlobal('fetch', fakeFetch([['/readyz', () => json({ status: 'ready', checks: [] })], ['/v1/', () => json({})]]).fetch);
    renderApp(<App />, '/');
    const nav = screen.getByRole('navigation', { name: 'Main' });
    const names = Array.from(nav.querySelectorAll('a')).map((a) => a.textContent);
    expect(names).toEqual(['Overview', 'Nodes', 'Services', 'Containers', 'Jobs', 'Queues', 'Images', 'Routes', 'Sites', 'Certificates', 'Volumes', 'Tokens', 'Audit', 'Settings']);
    expect(screen.getAllByRole('heading', { level: 1 }).map((h) => h.textContent)).toEqual(['Overview']);
    fireEvent.click(screen.getByRole('button', { name: 'Sign out' }));
    await waitFor(() => expect(screen.getByRole('heading', { level: 1, name: 'Sign in' })).toBeTruthy());
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
  });

  it('offers a jobs token only the pages its role may use, and says so on the others without calling the API', async () => {
    setToken('cc-v1-abc-jobs');
    sessionStorage.setItem('cc.role', 'jobs');
    const ff = fakeFetch([['/readyz', () => json({ status: 'ready', checks: [] })], ['/v1/', () => json({})]]);
    vi.stubGlobal('fetch', ff.fetch);
    renderApp(<App />, '/nodes');
    const nav = screen.getByRole('navigation', { name: 'Main' });
    expect(Array.from(nav.querySelectorAll('a')).map((a) => a.textContent)).toEqual(['Overview', 'Jobs', 'Queues']);
    expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Nodes');
    expect(screen.getByText(/role \(jobs\) may not use this page/)).toBeTruthy();
    expect(ff.calls.some((c) => c.url.startsWith('/v1/nodes'))).toBe(false);
  });
});
