import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, REFUSED_MESSAGE, TOKEN_KEY, api, errorFromBody, getToken, onSignedOut, parseRetryAfter, query, setToken } from './client';

function answer(status: number, body: string, headers: Record<string, string> = {}) {
  return vi.fn(async () => new Response(body, { status, headers }));
}

afterEach(() => vi.unstubAllGlobals());

describe('api', () => {
  it('sends the session token as a Bearer header and returns the JSON', async () => {
    setToken('cc-v1-abc-secret');
    const f = answer(200, '{"nodes":[]}');
    vi.stubGlobal('fetch', f);
    expect(await api('/v1/nodes')).toEqual({ nodes: [] });
    const [url, init] = f.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('/v1/nodes');
    expect(new Headers(init.headers).get('Authorization')).toBe('Bearer cc-v1-abc-secret');
  });

  it('keeps the token in session storage only', () => {
    setToken('t1');
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe('t1');
    expect(localStorage.getItem(TOKEN_KEY)).toBeNull();
  });

  it('turns the gateway JSON error into its message', async () => {
    setToken('t');
    vi.stubGlobal('fetch', answer(404, '{"code":5,"message":"container abc not found"}'));
    await expect(api('/v1/containers/abc')).rejects.toMatchObject({ status: 404, code: 5, message: 'container abc not found' });
  });

  it('signs out on 401 with the plain message', async () => {
    setToken('t');
    const seen: string[] = [];
    const off = onSignedOut((m) => seen.push(m));
    vi.stubGlobal('fetch', answer(401, '{"code":16,"message":"missing or invalid API token"}'));
    await expect(api('/v1/status')).rejects.toMatchObject({ status: 401, message: REFUSED_MESSAGE });
    off();
    expect(seen).toEqual([REFUSED_MESSAGE]);
    expect(getToken()).toBeNull();
  });

  it('says what a 403 means and keeps the session', async () => {
    setToken('t');
    vi.stubGlobal('fetch', answer(403, '{"code":7,"message":"role viewer may not call CreateContainer"}'));
    const e = (await api('/v1/containers', { method: 'POST', body: {} }).catch((x) => x)) as ApiError;
    expect(e.status).toBe(403);
    expect(e.message).toMatch(/role may not do this: role viewer may not call CreateContainer/);
    expect(getToken()).toBe('t');
  });

  it('reads Retry-After on 429', async () => {
    setToken('t');
    vi.stubGlobal('fetch', answer(429, '{"code":8,"message":"rate limited"}', { 'Retry-After': '7' }));
    const e = (await api('/v1/jobs').catch((x) => x)) as ApiError;
    expect(e.status).toBe(429);
    expect(e.retryAfter).toBe(7);
    expect(e.message).toMatch(/Try again in 7 s/);
  });

  it('says the API cannot be reached when fetch fails', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => { throw new TypeError('Failed to fetch'); }));
    await expect(api('/v1/status')).rejects.toMatchObject({ status: 0, message: expect.stringMatching(/could not be reached/) });
  });

  it('sends a JSON body', async () => {
    const f = answer(200, '{}');
    vi.stubGlobal('fetch', f);
    await api('/v1/services/x/scale', { method: 'POST', body: { replicas: '3' } });
    const init = (f.mock.calls[0] as unknown as [string, RequestInit])[1];
    expect(init.method).toBe('POST');
    expect(init.body).toBe('{"replicas":"3"}');
    expect(new Headers(init.headers).get('Content-Type')).toBe('application/json');
  });
});

describe('helpers', () => {
  it('parseRetryAfter reads seconds and dates', () => {
    expect(parseRetryAfter('3')).toBe(3);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 0)).toBe(10);
  });
  it('errorFromBody copes with a body that is not JSON', () => {
    expect(errorFromBody(502, 'Bad Gateway').message).toBe('Bad Gateway');
    expect(errorFromBody(500, '').message).toBe('The API answered 500.');
  });
  it('query skips empty values and repeats arrays', () => {
    expect(query({ state: 'JOB_STATE_QUEUED', queue: '', label: ['a=1', 'b=2'], limit: 100, all: false })).toBe('?state=JOB_STATE_QUEUED&label=a%3D1&label=b%3D2&limit=100');
    expect(query({})).toBe('');
  });
});
