// A live list from one of the API's watch streams (nodes, containers,
// services): every matching object as PUT, one SYNCED, then PUT/REMOVED per
// change; a reconnection starts again from a full list.
import { useCallback, useEffect, useRef, useState } from 'react';
import type { Queue, Status } from '../api/types';
import { useWatch, type StreamState } from './common';

/** One line of a watch stream: the object is in the field the stream names
 * (node, container or service). */
export type WatchMessage = { event?: string; id?: string } & Record<string, unknown>;

export interface WatchList<T> {
  /** The objects as the stream last said, in no particular order. */
  items: T[];
  /** true once a connection sent its full list; it stays true while
   * reconnecting (the old copy stays on show until the new SYNCED). */
  synced: boolean;
  /** The connection's state, for StreamStatus. */
  st: StreamState;
}

interface Copy<T> {
  url: string | null;
  /** What is on show, changed in place after SYNCED. */
  live: Map<string, T>;
  /** A (re)connection's list before its SYNCED; null once synced. */
  next: Map<string, T> | null;
  synced: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * useWatchList follows the watch stream at url (null: none) whose objects
 * are in field. Events go into a Map kept in a ref; the page gets one
 * update per flushMs at most (100 ms), however many lines arrive, so a
 * stream of 100,000 containers renders a few times, not 100,000.
 */
export function useWatchList<T>(url: string | null, field: string, opts: { flushMs?: number } = {}): WatchList<T> {
  const flushMs = opts.flushMs ?? 100;
  const [view, setView] = useState<{ url: string | null; items: T[]; synced: boolean }>({ url, items: [], synced: false });
  const c = useRef<Copy<T>>({ url, live: new Map(), next: null, synced: false, timer: undefined });

  const flush = useCallback(() => {
    const s = c.current;
    clearTimeout(s.timer);
    s.timer = undefined;
    setView({ url: s.url, items: Array.from(s.live.values()), synced: s.synced });
  }, []);
  const schedule = useCallback(() => {
    const s = c.current;
    if (s.timer === undefined) s.timer = setTimeout(flush, flushMs);
  }, [flush, flushMs]);

  // A new url is a new list: start empty (this runs before the stream opens).
  useEffect(() => {
    const s = c.current;
    if (s.url !== url) {
      clearTimeout(s.timer);
      c.current = { url, live: new Map(), next: null, synced: false, timer: undefined };
      setView({ url, items: [], synced: false });
    }
    return () => { clearTimeout(c.current.timer); c.current.timer = undefined; };
  }, [url]);

  const st = useWatch<WatchMessage>(url, (m) => {
    const s = c.current;
    if (s.url !== url) return;
    switch (m.event) {
      case 'WATCH_EVENT_PUT': {
        const obj = m[field] as (T & { id?: string }) | null | undefined;
        const id = m.id || obj?.id;
        if (!obj || !id) return;
        (s.next ?? s.live).set(id, obj);
        if (!s.next) schedule();
        return;
      }
      case 'WATCH_EVENT_REMOVED': {
        if (!m.id) return;
        (s.next ?? s.live).delete(m.id);
        if (!s.next) schedule();
        return;
      }
      case 'WATCH_EVENT_SYNCED':
        if (s.next) s.live = s.next;
        s.next = null;
        s.synced = true;
        flush();
        return;
      default:
    }
  }, {
    // Each connection sends its full list anew: collect it aside.
    onOpen: () => { c.current.next = new Map(); },
  });

  if (view.url !== url) return { items: [], synced: false, st };
  return { items: view.items, synced: view.synced, st };
}

/** sortedBy sorts a copy of xs by a key computed once per item. */
export function sortedBy<T>(xs: readonly T[], key: (x: T) => string | number, desc = false): T[] {
  const keyed = xs.map((x) => ({ x, k: key(x) }));
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0) * (desc ? -1 : 1));
  return keyed.map((e) => e.x);
}

/** ms is a timestamp's time (0 when unset), for sorting. */
export function ms(ts: string | null | undefined): number {
  if (!ts) return 0;
  const t = Date.parse(ts);
  return Number.isNaN(t) ? 0 : t;
}

/**
 * useLatest follows a watch stream that sends a whole value each time it
 * changed (the queues, the status): the last one (null before the first),
 * when it came (ms), and the connection's state. The last value stays on
 * show while reconnecting.
 */
export function useLatest<R, T>(url: string | null, pick: (r: R) => T): { data: T | null; at: number; st: StreamState } {
  const [v, setV] = useState<{ data: T | null; at: number }>({ data: null, at: 0 });
  const p = useRef(pick);
  p.current = pick;
  const st = useWatch<R>(url, (r) => setV({ data: p.current(r), at: Date.now() }));
  return { ...v, st };
}

/** useQueues follows /v1/queues:watch: the queues with their counts. */
export function useQueues(enabled = true): { queues: Queue[] | null; st: StreamState } {
  const q = useLatest<{ queues?: Queue[] }, Queue[]>(enabled ? '/v1/queues:watch' : null, (r) => r.queues ?? []);
  return { queues: q.data, st: q.st };
}

/** useStatus follows /v1/status:watch: the cluster's status. */
export function useStatus(): { data: Status | null; at: number; st: StreamState } {
  return useLatest<{ status?: Status }, Status>('/v1/status:watch', (r) => r.status ?? ({} as Status));
}
