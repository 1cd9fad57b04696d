import { afterEach, describe, expect, it, vi } from 'vitest';
import { render, screen, waitFor } from '@testing-library/react';
import { StreamStatus } from './common';
import { sortedBy, useWatchList } from './watchList';
import { feed, put, removed, synced, tick } from '../test/render';

afterEach(() => vi.unstubAllGlobals());

interface Item { id: string; name: string }

function Probe({ url = '/v1/nodes:watch', flushMs, onRender }: { url?: string | null; flushMs?: number; onRender?: () => void }) {
  const w = useWatchList<Item>(url, 'node', { flushMs });
  onRender?.();
  return (
    <div>
      <StreamStatus st={w.st} what="Nodes" />
      <p data-testid="synced">{String(w.synced)}</p>
      <ul>{sortedBy(w.items, (x) => x.name).map((x) => <li key={x.id}>{x.name}</li>)}</ul>
    </div>
  );
}

const names = () => screen.queryAllByRole('listitem').map((li) => li.textContent);
const status = () => screen.getAllByRole('status')[0].textContent ?? '';

/** connections answers each watch call with the next feed. */
function connections(n: number) {
  const feeds = Array.from({ length: n }, () => feed());
  const urls: string[] = [];
  let i = 0;
  vi.stubGlobal('fetch', async (u: RequestInfo | URL) => {
    urls.push(String(u));
    const f = feeds[Math.min(i++, feeds.length - 1)];
    return f.response;
  });
  return { feeds, urls, calls: () => i };
}

describe('useWatchList', () => {
  it('shows the list at SYNCED, then applies each PUT and REMOVED', async () => {
    const { feeds: [f], urls } = connections(1);
    render(<Probe flushMs={0} />);
    await f.send(put('node', { id: 'a', name: 'alpha' }), put('node', { id: 'b', name: 'bravo' }));
    // Not complete yet: nothing on show, even once other tasks ran.
    await tick(20);
    expect(names()).toEqual([]);
    expect(screen.getByTestId('synced').textContent).toBe('false');
    await f.send(synced());
    await waitFor(() => expect(names()).toEqual(['alpha', 'bravo']));
    expect(screen.getByTestId('synced').textContent).toBe('true');
    expect(status()).toBe('Nodes: live');
    await f.send(put('node', { id: 'a', name: 'zulu' }), put('node', { id: 'c', name: 'charlie' }));
    await waitFor(() => expect(names()).toEqual(['bravo', 'charlie', 'zulu']));
    await f.send(removed('b'));
    await waitFor(() => expect(names()).toEqual(['charlie', 'zulu']));
    expect(urls).toEqual(['/v1/nodes:watch']);
  });

  it('keeps the old list while reconnecting and replaces it at the new SYNCED (dropping what was removed meanwhile)', async () => {
    const { feeds: [f1, f2], calls } = connections(2);
    render(<Probe flushMs={0} />);
    await f1.send(put('node', { id: 'a', name: 'alpha' }), put('node', { id: 'b', name: 'bravo' }), synced());
    await waitFor(() => expect(names()).toEqual(['alpha', 'bravo']));
    f1.error(14, 'the server is shutting down');
    await waitFor(() => expect(status()).toContain('(reconnecting)'));
    expect(status()).toContain('the server is shutting down');
    // still the old copy while disconnected
    expect(names()).toEqual(['alpha', 'bravo']);
    await waitFor(() => expect(calls()).toBe(2));
    await waitFor(() => expect(status()).toBe('Nodes: live'));
    // The new connection's full list: b is gone, a changed, c is new.
    await f2.send(put('node', { id: 'a', name: 'alpha2' }), put('node', { id: 'c', name: 'charlie' }));
    await tick(20);
    expect(names()).toEqual(['alpha', 'bravo']);
    await f2.send(synced());
    await waitFor(() => expect(names()).toEqual(['alpha2', 'charlie']));
    // and it follows changes again
    await f2.send(removed('a'));
    await waitFor(() => expect(names()).toEqual(['charlie']));
  });

  it('keeps the old list through a lost connection too', async () => {
    const { feeds: [f1, f2], calls } = connections(2);
    render(<Probe flushMs={0} />);
    await f1.send(put('node', { id: 'a', name: 'alpha' }), synced());
    await waitFor(() => expect(names()).toEqual(['alpha']));
    f1.fail();
    await waitFor(() => expect(status()).toContain('(reconnecting)'));
    expect(names()).toEqual(['alpha']);
    await waitFor(() => expect(calls()).toBe(2));
    await f2.send(synced());
    await waitFor(() => expect(names()).toEqual([]));
    expect(screen.getByTestId('synced').textContent).toBe('true');
  });

  it('renders a few times for many changes, not once per line', async () => {
    const { feeds: [f] } = connections(1);
    let renders = 0;
    render(<Probe onRender={() => renders++} />);
    await f.send(synced());
    await waitFor(() => expect(screen.getByTestId('synced').textContent).toBe('true'));
    const before = renders;
    const n = 200;
    for (let i = 0; i < n; i++) {
      await f.send(put('node', { id: `n${i}`, name: `node-${String(i).padStart(3, '0')}` }));
      await tick(); // each line in its own task: no batching for free
    }
    await waitFor(() => expect(names()).toHaveLength(n));
    expect(renders - before).toBeLessThan(n / 4);
  });

  it('starts a new list when the url changes', async () => {
    const f1 = feed();
    const f2 = feed();
    const urls: string[] = [];
    vi.stubGlobal('fetch', async (u: RequestInfo | URL) => { urls.push(String(u)); return urls.length === 1 ? f1.response : f2.response; });
    const r = render(<Probe url="/v1/nodes:watch?id=a" flushMs={0} />);
    await f1.send(put('node', { id: 'a', name: 'alpha' }), synced());
    await waitFor(() => expect(names()).toEqual(['alpha']));
    r.rerender(<Probe url="/v1/nodes:watch?id=b" flushMs={0} />);
    expect(names()).toEqual([]);
    expect(screen.getByTestId('synced').textContent).toBe('false');
    await f2.send(put('node', { id: 'b', name: 'bravo' }), synced());
    await waitFor(() => expect(names()).toEqual(['bravo']));
    expect(urls).toEqual(['/v1/nodes:watch?id=a', '/v1/nodes:watch?id=b']);
  });
});
