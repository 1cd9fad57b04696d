import { afterEach, describe, expect, it, vi } from 'vitest';
import { screen, waitFor } from '@testing-library/react';
import { Route, Routes } from 'react-router-dom';
import { JobDetail } from './Jobs';
import { fakeFetch, json, renderApp } from '../test/render';

afterEach(() => vi.unstubAllGlobals());

const base = { id: 'j1', spec: { image: 'cc-demo', command: ['sh'], queue: 'default' }, attempts: [], output_digest: '', output_size: '0', output_files: 0 };

/** stream sends lines; open keeps it open after them (a live watch). */
function stream(lines: unknown[], open = false): Response {
  const enc = new TextEncoder();
  let i = 0;
  return new Response(new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < lines.length) c.enqueue(enc.encode(JSON.stringify(lines[i++]) + '\n'));
      else if (open) return new Promise<void>(() => {});
      else c.close();
    },
  }), { status: 200 });
}

describe('JobDetail', () => {
  it('follows the job state from the watch stream and lists its output files as download links', async () => {
    const done = { ...base, state: 'JOB_STATE_SUCCEEDED', output_digest: 'sha256:abc', output_size: '120', output_files: 1,
      attempts: [{ id: 'a1', number: 1, node_id: 'n1', state: 'CONTAINER_STATE_EXITED', exit_code: 0 }] };
    const ff = fakeFetch([
      ['/v1/jobs:watch', () => stream([{ result: { job: { ...base, state: 'JOB_STATE_RUNNING' } } }, { result: { job: done } }], true)],
      ['/v1/jobs/j1/output:list', () => json({ job_id: 'j1', digest: 'sha256:abc', files: [{ path: 'a.txt', type: 'file', size: 2 }, { path: 'd', type: 'dir', size: 0 }] })],
      ['/v1/jobs/j1/logs', () => stream([{ result: { stream: 'stdout', data: btoa('hi\n') } }])],
      // reads find it queued: what the page shows next comes from the watch
      ['/v1/jobs/j1', () => json({ job: { ...base, state: 'JOB_STATE_QUEUED' } })],
    ]);
    vi.stubGlobal('fetch', ff.fetch);
    renderApp(<Routes><Route path="/jobs/:id" element={<JobDetail />} /></Routes>, '/jobs/j1');
    // Reads say queued: succeeded can only come from the watch.
    await screen.findByTestId('job-state');
    await waitFor(() => expect(screen.getByTestId('job-state').textContent).toBe('succeeded'));
    const watchCall = ff.calls.find((c) => c.url.startsWith('/v1/jobs:watch'))!;
    expect(watchCall.url).toBe('/v1/jobs:watch?ids=j1&until_done=true');
    const links = await screen.findAllByTestId('output-file');
    expect(links.map((a) => a.textContent)).toEqual(['a.txt']);
    expect(links[0].getAttribute('href')).toBe('/v1/jobs/j1/output?path=a.txt');
    expect(screen.getByText('sha256:abc')).toBeTruthy();
    await waitFor(() => expect(screen.getByTestId('logs').textContent).toBe('hi\n'));
  });
});
