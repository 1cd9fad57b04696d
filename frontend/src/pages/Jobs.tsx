import { useEffect, useMemo, useRef, useState, type FormEvent, type KeyboardEvent, type MouseEvent } from 'react';
import { useInfiniteQuery, useMutation, useQuery, useQueryClient, type InfiniteData } from '@tanstack/react-query';
import { useVirtualizer } from '@tanstack/react-virtual';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router-dom';
import { ApiError, api, errorFromBody, errorMessage, getToken, query } from '../api/client';
import type { Job } from '../api/types';
import { download, sha256Hex, upload } from '../api/upload';
import { can, useAuth } from '../auth';
import { DL, ErrorBox, Loading, Page, Progress, StateText, StreamStatus, confirmed, useWatch } from '../components/common';
import { LogView } from '../components/LogView';
import { useQueues } from '../components/watchList';
import { ago, bytes, enumLabel, parseLabels, shortId, joinCommand, splitCommand, time , shortImage } from '../lib/format';
import { filesOfFolder, gunzip, gzip, tar, untarList, type TarEntry } from '../lib/tar';

export const JOB_STATES = ['JOB_STATE_QUEUED', 'JOB_STATE_ASSIGNED', 'JOB_STATE_RUNNING', 'JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_TIMED_OUT', 'JOB_STATE_CANCELLED'];
const DONE = new Set(['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_TIMED_OUT', 'JOB_STATE_CANCELLED']);

export const PAGE_SIZE = 100;
const ROW_HEIGHT = 36;

/** JobRow is what the list keeps of a job: a few fields, so that 100,000
 * listed jobs stay small in memory. */
export type JobRow = { id: string; state: string; image: string; queue: string; created_at: string | null };
type Page = { jobs: JobRow[]; next_page_token: string };

function jobRow(j: Job): JobRow {
  return { id: j.id, state: j.state, image: j.spec?.image ?? '', queue: j.spec?.queue ?? '', created_at: j.created_at };
}

export function JobForm({ onSubmitted }: { onSubmitted?: (j: Job) => void }) {
  const [image, setImage] = useState('');
  const [command, setCommand] = useState('');
  const [queue, setQueue] = useState('');
  const [labels, setLabels] = useState('');
  const [files, setFiles] = useState<File[]>([]);
  const [progress, setProgress] = useState<{ sent: number; total: number } | null>(null);
  const [phase, setPhase] = useState('');
  const qc = useQueryClient();
  const submit = useMutation({
    mutationFn: async () => {
      let input_digest = '';
      if (files.length) {
        // As ccctl's --input: the files go into one tar.gz, each at
        // /input/NAME in the job.
        setPhase('Packing the input');
        const packed = new Blob([(await gzip(tar(await filesOfFolder(files)))) as BlobPart], { type: 'application/gzip' });
        setPhase('Uploading the input');
        setProgress({ sent: 0, total: packed.size });
        const sum = await sha256Hex(packed).catch(() => undefined);
        const r = await upload<{ digest: string; size: string | number }>('/v1/jobs/inputs', packed, {
          headers: sum ? { 'X-Content-Sha256': sum } : {},
          onProgress: (sent, total) => setProgress({ sent, total }),
        });
        input_digest = r.digest;
      }
      setPhase('Submitting');
      const r = await api<{ job: Job }>('/v1/jobs', {
        method: 'POST',
        body: { spec: { image: image.trim(), command: splitCommand(command), input_digest, queue: queue.trim(), labels: parseLabels(labels) } },
      });
      return r.job;
    },
    onSuccess: (j) => { setPhase(''); qc.invalidateQueries({ queryKey: ['jobs'] }); onSubmitted?.(j); },
    onError: () => setPhase(''),
  });
  const onSubmit = (e: FormEvent) => { e.preventDefault(); if (image.trim()) submit.mutate(); };
  return (
    <form className="form" data-testid="job-form" onSubmit={onSubmit} aria-labelledby="job-form-title">
      <h2 id="job-form-title">Submit job</h2>
      <label htmlFor="job-image">Image</label>
      <input id="job-image" required value={image} onChange={(e) => setImage(e.target.value)} placeholder="cc-demo" />
      <label htmlFor="job-command">Command</label>
      <input id="job-command" value={command} onChange={(e) => setCommand(e.target.value)} placeholder="/bin/busybox sh -c 'cp /input/* /output/'" />
      <label htmlFor="job-input">Input</label>
      <input id="job-input" type="file" multiple onChange={(e) => setFiles(Array.from(e.target.files ?? []))} aria-describedby="job-input-help" />
      <p id="job-input-help" className="muted small">Optional: files the job reads at <code>/input/NAME</code> (read-only).</p>
      <label htmlFor="job-queue">Queue</label>
      <input id="job-queue" value={queue} onChange={(e) => setQueue(e.target.value)} placeholder="default" />
      <label htmlFor="job-labels">Labels</label>
      <input id="job-labels" value={labels} onChange={(e) => setLabels(e.target.value)} placeholder="key=value, …" />
      <button type="submit" disabled={submit.isPending || !image.trim()}>Submit</button>
      {submit.isPending && phase ? <p role="status">{phase}…</p> : null}
      {progress && files.length ? <Progress sent={progress.sent} total={progress.total} label="Input upload" /> : null}
      <ErrorBox error={submit.error} />
    </form>
  );
}

/** JobsList is the virtualized, paged list: one page of PAGE_SIZE jobs at a
 * time from the server, the next asked for near the end of the scroll. */
export function JobsList({ state, queue, labels, height = 600 }: { state: string; queue: string; labels: string[]; height?: number }) {
  const scroller = useRef<HTMLDivElement>(null);
  const q = useInfiniteQuery({
    queryKey: ['jobs', { state, queue, labels }],
    queryFn: async ({ pageParam, signal }): Promise<Page> => {
      const r = await api<{ jobs: Job[]; next_page_token: string }>(`/v1/jobs${query({ state, queue, label: labels, limit: PAGE_SIZE, page_token: pageParam })}`, { signal });
      return { jobs: (r.jobs ?? []).map(jobRow), next_page_token: r.next_page_token };
    },
    initialPageParam: '',
    getNextPageParam: (last) => last.next_page_token || undefined,
    staleTime: 10_000,
  });
  const rows = useMemo(() => q.data?.pages.flatMap((p) => p.jobs) ?? [], [q.data]);
  const v = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
    initialRect: { width: 1000, height },
  });
  const items = v.getVirtualItems();
  const last = items.length ? items[items.length - 1].index : -1;
  const { hasNextPage, isFetchingNextPage, fetchNextPage } = q;
  useEffect(() => {
    if (hasNextPage && !isFetchingNextPage && last >= rows.length - 30) fetchNextPage();
  }, [last, rows.length, hasNextPage, isFetchingNextPage, fetchNextPage]);

  // Live: the listed jobs that have not ended are watched, and their rows
  // change in place.
  const qc = useQueryClient();
  const watched = useMemo(() => rows.slice(0, PAGE_SIZE).filter((j) => !DONE.has(j.state)).map((j) => j.id), [rows]);
  const watchKey = watched.join(',');
  useWatch<{ job: Job }>(watchKey ? `/v1/jobs:watch${query({ ids: watched })}` : null, (r) => {
    const j = r.job;
    if (!j) return;
    qc.setQueryData<InfiniteData<Page>>(['jobs', { state, queue, labels }], (d) => d && ({
      ...d,
      pages: d.pages.map((p) => ({ ...p, jobs: p.jobs.map((x) => (x.id === j.id ? jobRow(j) : x)) })),
    }));
  });

  // Arrow keys move the focus a row down or up, scrolling as they go.
  const onKey = (e: KeyboardEvent<HTMLDivElement>) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const at = (document.activeElement as HTMLElement | null)?.closest<HTMLElement>('[data-index]');
    const cur = at ? Number(at.dataset.index) : -1;
    const next = Math.max(0, Math.min(rows.length - 1, cur + (e.key === 'ArrowDown' ? 1 : -1)));
    if (next === cur || rows.length === 0) return;
    e.preventDefault();
    v.scrollToIndex(next);
    requestAnimationFrame(() => scroller.current?.querySelector<HTMLElement>(`[data-index="${next}"] a`)?.focus());
  };

  return (
    <>
      <ErrorBox error={q.error} />
      <p className="muted small" role="status">
        {q.isLoading ? 'Loading jobs…' : `${rows.length}${q.hasNextPage ? '+' : ''} job${rows.length === 1 && !q.hasNextPage ? '' : 's'}${isFetchingNextPage ? ', loading more…' : ''}`}
      </p>
      <div className="grid" role="grid" aria-label="Jobs" aria-rowcount={q.hasNextPage ? -1 : rows.length + 1} aria-busy={q.isFetching}>
        <div role="rowgroup" className="grid-head">
          <div role="row" aria-rowindex={1} className="grid-row">
            <span role="columnheader" className="c-id">ID</span>
            <span role="columnheader" className="c-state">State</span>
            <span role="columnheader" className="c-image">Image</span>
            <span role="columnheader" className="c-queue">Queue</span>
            <span role="columnheader" className="c-time">Created</span>
          </div>
        </div>
        <div ref={scroller} className="grid-body" data-testid="jobs-list" role="rowgroup" tabIndex={0} aria-label="Job rows (scroll for more; arrow keys move between rows)" onKeyDown={onKey}>
          <div style={{ height: v.getTotalSize(), position: 'relative' }}>
            {items.map((it) => {
              const j = rows[it.index];
              return (
                <div key={j.id} role="row" aria-rowindex={it.index + 2} data-index={it.index} data-testid="job-row" className="grid-row"
                  style={{ position: 'absolute', top: 0, left: 0, right: 0, height: ROW_HEIGHT, transform: `translateY(${it.start}px)` }}>
                  <span role="gridcell" className="c-id"><Link to={`/jobs/${j.id}`}>{shortId(j.id)}</Link></span>
                  <span role="gridcell" className="c-state"><StateText value={j.state} /></span>
                  <span role="gridcell" className="c-image"><code>{shortImage(j.image)}</code></span>
                  <span role="gridcell" className="c-queue">{j.queue || 'default'}</span>
                  <span role="gridcell" className="c-time">{ago(j.created_at)}</span>
                </div>
              );
            })}
          </div>
        </div>
      </div>
      {!q.isLoading && rows.length === 0 && !q.error ? <p>No jobs match.</p> : null}
    </>
  );
}

export function Jobs() {
  const { role } = useAuth();
  const nav = useNavigate();
  const [sp, setSp] = useSearchParams();
  const state = sp.get('state') ?? '';
  const queue = sp.get('queue') ?? '';
  const labels = sp.getAll('label');
  const [draft, setDraft] = useState({ state, queue, labels: labels.join(', ') });
  const queues = useQueues();
  const apply = (e: FormEvent) => {
    e.preventDefault();
    const n = new URLSearchParams();
    if (draft.state) n.set('state', draft.state);
    if (draft.queue.trim()) n.set('queue', draft.queue.trim());
    for (const l of draft.labels.split(',').map((s) => s.trim()).filter(Boolean)) n.append('label', l);
    setSp(n);
  };
  return (
    <Page title="Jobs">
      {can(role, 'jobs') ? <JobForm onSubmitted={(j) => nav(`/jobs/${j.id}`)} /> : null}
      <h2>Jobs</h2>
      <form className="filters" onSubmit={apply} aria-label="Filter jobs">
        <label>State
          <select value={draft.state} onChange={(e) => setDraft({ ...draft, state: e.target.value })}>
            <option value="">any</option>
            {JOB_STATES.map((s) => <option key={s} value={s}>{enumLabel(s)}</option>)}
          </select>
        </label>
        <label>Queue
          <input list="queue-names" value={draft.queue} onChange={(e) => setDraft({ ...draft, queue: e.target.value })} />
          <datalist id="queue-names">{queues.queues?.map((q) => <option key={q.name} value={q.name} />)}</datalist>
        </label>
        <label>Labels
          <input value={draft.labels} onChange={(e) => setDraft({ ...draft, labels: e.target.value })} placeholder="key=value, …" />
        </label>
        <button type="submit">Filter</button>
      </form>
      <JobsList state={state} queue={queue} labels={labels} />
    </Page>
  );
}

function basename(p: string) {
  return p.split('/').filter(Boolean).pop() || p;
}

/** The output's files: from the server's listing when it has one, else
 * read from the output archive here. */
async function listOutput(id: string): Promise<{ files: TarEntry[]; from: string }> {
  const base = `/v1/jobs/${encodeURIComponent(id)}`;
  try {
    const r = await api<{ files?: { path?: string; name?: string; size?: string | number; type?: string }[] }>(`${base}/output:list`);
    if (Array.isArray(r.files)) {
      return { files: r.files.map((f) => ({ name: (f.path ?? f.name ?? '').replace(/^\.?\//, ''), size: Number(f.size ?? 0), type: !f.type || f.type === 'file' ? '0' : f.type })), from: 'server' };
    }
  } catch (e) {
    if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 405 && e.status !== 501)) throw e;
  }
  const t = getToken();
  const res = await fetch(`${base}/output`, { headers: t ? { Authorization: `Bearer ${t}` } : {} });
  if (!res.ok || !res.body) {
    throw errorFromBody(res.status, await res.text());
  }
  return { files: untarList(await gunzip(res.body)), from: 'archive' };
}

function OutputBrowser({ job }: { job: Job }) {
  const [err, setErr] = useState('');
  const q = useQuery({ queryKey: ['job-output', job.id, job.output_digest], queryFn: () => listOutput(job.id), enabled: !!job.output_digest, staleTime: Infinity });
  const base = `/v1/jobs/${encodeURIComponent(job.id)}/output`;
  if (!job.output_digest) return <p className="muted">No output yet{DONE.has(job.state) ? ' (the job wrote none, or it expired)' : ''}.</p>;
  const files = (q.data?.files ?? []).filter((f) => f.type === '0');
  const get = (e: MouseEvent, url: string, name: string) => {
    e.preventDefault();
    setErr('');
    download(url, name).catch((x) => setErr(errorMessage(x)));
  };
  return (
    <>
      <DL items={[
        ['Digest', <code key="d">{job.output_digest}</code>],
        ['Size', bytes(job.output_size)],
        ['Files', job.output_files],
        ['Expires', time(job.expires_at)],
      ]} />
      <p><a href={base} onClick={(e) => get(e, base, `job-${shortId(job.id)}-output.tar.gz`)}>Download all (tar.gz)</a></p>
      <ErrorBox error={q.error} />
      {err ? <p className="error" role="alert">{err}</p> : null}
      {q.isLoading ? <Loading what="Listing the output" /> : null}
      {q.data ? (
        <div className="table-wrap" tabIndex={0}>
          <table>
            <caption className="visually-hidden">Output files</caption>
            <thead><tr><th scope="col">File</th><th scope="col">Size</th></tr></thead>
            <tbody>
              {files.map((f) => {
                const url = `${base}${query({ path: f.name })}`;
                return (
                  <tr key={f.name}>
                    <td><a data-testid="output-file" href={url} download={basename(f.name)} onClick={(e) => get(e, url, basename(f.name))}>{f.name}</a></td>
                    <td>{bytes(f.size)}</td>
                  </tr>
                );
              })}
              {files.length === 0 ? <tr><td colSpan={2}>The output is empty.</td></tr> : null}
            </tbody>
          </table>
        </div>
      ) : null}
    </>
  );
}

export function JobDetail() {
  const { id = '' } = useParams();
  const { role } = useAuth();
  const qc = useQueryClient();
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  const q = useQuery({ queryKey: ['job', id], queryFn: () => api<{ job: Job }>(path) });
  const j = q.data?.job;
  const ended = j ? DONE.has(j.state) : false;
  // Live state: the watch stream of this job, until it ends.
  const st = useWatch<{ job: Job }>(q.data && !ended ? `/v1/jobs:watch${query({ ids: [id], until_done: true })}` : null, (r) => {
    if (r.job) qc.setQueryData(['job', id], { job: r.job });
  }, { reconnectOnEnd: false, onEnd: () => qc.invalidateQueries({ queryKey: ['job', id] }) });
  const cancel = useMutation({ mutationFn: () => api<{ job: Job }>(`${path}/cancel`, { method: 'POST', body: {} }), onSuccess: (r) => qc.setQueryData(['job', id], r) });
  return (
    <Page title={`Job ${shortId(j?.id || id)}`}>
      <p><Link to="/jobs">All jobs</Link></p>
      <ErrorBox error={q.error} />
      {q.isLoading ? <Loading /> : null}
      {j ? (
        <>
          <p className="big">State: <StateText value={j.state} testId="job-state" /></p>
          {!ended ? <StreamStatus st={st} what="Watching the job" /> : null}
          {can(role, 'jobs') && !ended ? (
            <div className="row">
              <button type="button" className="danger" disabled={cancel.isPending || j.cancel_requested} onClick={() => confirmed('Cancel this job?') && cancel.mutate()}>
                {j.cancel_requested ? 'Cancelling…' : 'Cancel'}
              </button>
            </div>
          ) : null}
          <ErrorBox error={cancel.error} />
          <DL items={[
            ['ID', <code key="i">{j.id}</code>],
            ['Image', <code key="im">{j.spec?.image}</code>],
            ['Command', <code key="c">{joinCommand(j.spec?.command)}</code>],
            ['Queue', j.spec?.queue || 'default'],
            ['Input', j.spec?.input_digest ? <code key="in">{j.spec.input_digest}</code> : ''],
            ['Message', j.message],
            ['Exit code', ended ? String(j.exit_code) : ''],
            ['Created', time(j.created_at)],
            ['Started', time(j.started_at)],
            ['Finished', time(j.finished_at)],
          ]} />
          <h2>Attempts</h2>
          <div className="table-wrap" tabIndex={0}>
            <table>
              <thead><tr><th scope="col">#</th><th scope="col">Node</th><th scope="col">State</th><th scope="col">Exit</th><th scope="col">Started</th><th scope="col">Finished</th><th scope="col">Error</th></tr></thead>
              <tbody>
                {j.attempts.map((a) => (
                  <tr key={a.id || a.number}>
                    <td>{a.number}</td>
                    <td>{a.node_id ? <Link to={`/nodes/${a.node_id}`}>{shortId(a.node_id)}</Link> : '—'}</td>
                    <td><StateText value={a.state} /></td>
                    <td>{a.finished_at ? a.exit_code : ''}{a.oom_killed ? ' (out of memory)' : ''}{a.timed_out ? ' (timed out)' : ''}</td>
                    <td>{time(a.started_at)}</td>
                    <td>{time(a.finished_at)}</td>
                    <td>{a.error}</td>
                  </tr>
                ))}
                {j.attempts.length === 0 ? <tr><td colSpan={7}>No attempt yet.</td></tr> : null}
              </tbody>
            </table>
          </div>
          <h2>Output</h2>
          <OutputBrowser job={j} />
          {j.state !== 'JOB_STATE_QUEUED' ? <LogView key={j.state} path={`${path}/logs`} follow={!ended} active={j.state === 'JOB_STATE_RUNNING'} /> : <p className="muted">Logs appear once the job runs.</p>}
        </>
      ) : null}
    </Page>
  );
}
