import type { ReactElement } from 'react';
import { render } from '@testing-library/react';
import { MemoryRouter } from 'react-router-dom';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { AuthProvider } from '../auth';

/** renderApp renders ui inside the app's providers, at path. */
export function renderApp(ui: ReactElement, path = '/') {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={qc}>
      <MemoryRouter initialEntries={[path]}>
        <AuthProvider>{ui}</AuthProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

type Handler = (url: string, init: RequestInit) => Response | Promise<Response>;

/** fakeFetch answers each call by the first route whose prefix matches. */
export function fakeFetch(routes: [string | RegExp, Handler][]) {
  const calls: { url: string; init: RequestInit }[] = [];
  const f = async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = String(input);
    calls.push({ url, init });
    for (const [m, h] of routes) {
      if (typeof m === 'string' ? url.startsWith(m) : m.test(url)) return h(url, init);
    }
    return new Response('{"code":5,"message":"no such path"}', { status: 404 });
  };
  return { fetch: f, calls };
}

export const json = (v: unknown, status = 200) => new Response(JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json' } });

/**
 * feed is a streamed response a test writes to line by line, as a watch
 * stream's server would. sent resolves once the reader has taken in what
 * was sent (it asks for more), so a test knows the lines were handled.
 */
export function feed() {
  const enc = new TextEncoder();
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;
  let asked: (() => void)[] = [];
  const body = new ReadableStream<Uint8Array>({
    start(c) { ctrl = c; },
    pull() { const a = asked; asked = []; a.forEach((f) => f()); },
  }, { highWaterMark: 0 });
  const send = (...results: unknown[]) => {
    const next = new Promise<void>((r) => asked.push(r));
    ctrl.enqueue(enc.encode(results.map((r) => JSON.stringify({ result: r }) + '\n').join('')));
    return next;
  };
  return {
    response: new Response(body, { status: 200 }),
    /** send writes each result as one line, in one chunk. */
    send,
    /** error ends the stream with an error line (a server's Unavailable: 14). */
    error: (code: number, message: string) => { ctrl.enqueue(enc.encode(JSON.stringify({ error: { code, message } }) + '\n')); ctrl.close(); },
    /** fail breaks the connection. */
    fail: () => ctrl.error(new TypeError('network connection lost')),
    end: () => ctrl.close(),
  };
}

/** put, removed and synced are the lines of a watch stream. */
export const put = <T extends { id: string }>(field: string, obj: T) => ({ event: 'WATCH_EVENT_PUT', id: obj.id, [field]: obj });
export const removed = (id: string) => ({ event: 'WATCH_EVENT_REMOVED', id });
export const synced = () => ({ event: 'WATCH_EVENT_SYNCED', id: '' });

/** tick lets timers and other tasks run once (a macrotask). */
export const tick = (ms = 0) => new Promise<void>((r) => setTimeout(r, ms));
