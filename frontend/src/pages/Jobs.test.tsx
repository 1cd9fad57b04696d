import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { act, fireEvent, screen, waitFor } from '@testing-library/react';
import { JobsList, PAGE_SIZE } from './Jobs';
import { fakeFetch, json, renderApp } from '../test/render';
import type { Job } from '../api/types';

// jsdom has no layout: give every element a 1000x600 box, so the list's
// window holds about 600/36 rows.
const desc = {
  h: Object.getOwnPropertyDescriptor(Element.prototype, 'clientHeight'),
  w: Object.getOwnPropertyDescriptor(Element.prototype, 'clientWidth'),
};
beforeAll(() => {
  Object.defineProperty(Element.prototype, 'clientHeight', { configurable: true, get: () => 600 });
  Object.defineProperty(Element.prototype, 'clientWidth', { configurable: true, get: () => 1000 });
});
afterAll(() => {
  if (desc.h) Object.defineProperty(Element.prototype, 'clientHeight', desc.h);
  if (desc.w) Object.defineProperty(Element.prototype, 'clientWidth', desc.w);
});
afterEach(() => vi.unstubAllGlobals());

function job(i: number): Job {
  return { id: `${String(i).padStart(12, '0')}abcd`, state: 'JOB_STATE_SUCCEEDED', spec: { image: 'cc-demo', queue: 'q' } } as unknown as Job;
}

/** A server of 100,000 jobs, paged by page_token (an offset here). */
function server() {
  return fakeFetch([[/^\/v1\/jobs\?/, (url) => {
    const u = new URL(url, 'http://x');
    const limit = Number(u.searchParams.get('limit'));
    const from = Number(u.searchParams.get('page_token') || 0);
    const jobs = Array.from({ length: limit }, (_, k) => job(from + k));
    return json({ jobs, next_page_token: from + limit < 100_000 ? String(from + limit) : '' });
  }]]);
}

describe('JobsList', () => {
  it('asks for one page of the filtered list and renders only a window of its rows', async () => {
    const s = server();
    vi.stubGlobal('fetch', s.fetch);
    renderApp(<JobsList state="JOB_STATE_SUCCEEDED" queue="q" labels={['team=a']} />);
    await screen.findAllByTestId('job-row');
    expect(s.calls).toHaveLength(1);
    const u = new URL(s.calls[0].url, 'http://x');
    expect(u.searchParams.get('limit')).toBe(String(PAGE_SIZE));
    expect(u.searchParams.get('state')).toBe('JOB_STATE_SUCCEEDED');
    expect(u.searchParams.get('queue')).toBe('q');
    expect(u.searchParams.getAll('label')).toEqual(['team=a']);
    const rows = screen.getAllByTestId('job-row');
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.length).toBeLessThan(40);
    expect(rows[0].textContent).toContain('000000000000');
    expect(screen.getByRole('grid', { name: 'Jobs' })).toBeTruthy();
    expect(screen.getAllByRole('columnheader').map((c) => c.textContent)).toEqual(['ID', 'State', 'Image', 'Queue', 'Created']);
  });

  it('fetches the next page near the end of the scroll and still renders a window', async () => {
    const s = server();
    vi.stubGlobal('fetch', s.fetch);
    renderApp(<JobsList state="" queue="" labels={[]} />);
    await screen.findAllByTestId('job-row');
    const list = screen.getByTestId('jobs-list');
    await act(async () => {
      list.scrollTop = 36 * 75;
      fireEvent.scroll(list);
    });
    await waitFor(() => expect(s.calls).toHaveLength(2));
    expect(new URL(s.calls[1].url, 'http://x').searchParams.get('page_token')).toBe('100');
    await waitFor(() => expect(screen.getByText(/200\+ jobs/)).toBeTruthy());
    const rows = screen.getAllByTestId('job-row');
    expect(rows.length).toBeLessThan(60);
    expect(rows.some((r) => r.textContent?.includes('000000000080'))).toBe(true);
    expect(rows.some((r) => r.textContent?.includes('000000000000'))).toBe(false);
  });
});
