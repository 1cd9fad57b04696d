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
