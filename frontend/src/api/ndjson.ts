// Streams of the API over REST: newline-delimited JSON, one
// {"result": {...}} or {"error": {...}} per line.
import { ApiError, authHeaders, errorFromBody, parseRetryAfter, refused } from './client';

/** LineSplitter turns chunks of text into whole lines. */
export class LineSplitter {
  private rest = '';
  push(chunk: string): string[] {
    const text = this.rest + chunk;
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    return lines.map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');
  }
  /** flush returns the last line when the stream ended without a newline. */
  flush(): string[] {
    const r = this.rest;
    this.rest = '';
    return r.trim() ? [r] : [];
  }
}

/** StreamLine is one parsed line: a result, or the stream's error. */
export type StreamLine<T> = { result: T } | { error: ApiError };

/** parseLine reads one line of a stream. */
export function parseLine<T>(line: string): StreamLine<T> {
  let j: unknown;
  try {
    j = JSON.parse(line);
  } catch {
    return { error: new ApiError(0, 'The stream sent a line that is not JSON.') };
  }
  const o = j as { result?: T; error?: { code?: number; message?: string; http_code?: number } };
  if (o && o.error) {
    const code = o.error.code ?? 0;
    const status = o.error.http_code ?? httpStatusOfCode(code);
    return { error: errorFromBody(status, JSON.stringify(o.error)) };
  }
  return { result: (o?.result ?? ({} as T)) as T };
}

/** httpStatusOfCode maps a gRPC code to the HTTP status the gateway uses. */
export function httpStatusOfCode(code: number): number {
  switch (code) {
    case 3: case 9: case 11: return 400;
    case 5: return 404;
    case 6: case 10: return 409;
    case 7: return 403;
    case 8: return 429;
    case 16: return 401;
    case 12: return 501;
    case 14: return 503;
    case 4: return 504;
    default: return 500;
  }
}

/** readStream reads the lines of one open response body until it ends. */
export async function readStream<T>(
  body: ReadableStream<Uint8Array>,
  onLine: (l: StreamLine<T>) => void,
  signal?: AbortSignal,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const split = new LineSplitter();
  const abort = () => reader.cancel().catch(() => {});
  signal?.addEventListener('abort', abort);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const l of split.push(decoder.decode(value, { stream: true }))) onLine(parseLine<T>(l));
    }
    for (const l of split.push(decoder.decode())) onLine(parseLine<T>(l));
    for (const l of split.flush()) onLine(parseLine<T>(l));
  } finally {
    signal?.removeEventListener('abort', abort);
  }
}

export interface WatchOptions<T> {
  /** Builds the URL of each (re)connection. */
  url: () => string;
  onResult: (r: T) => void;
  /** Called when a (re)connection is open, before its first result. */
  onOpen?: (reconnect: boolean) => void;
  /** A stream error or a lost connection, and whether it will reconnect. */
  onError?: (e: ApiError, retrying: boolean) => void;
  /** The stream ended by itself (logs of an ended task): no reconnect. */
  onEnd?: () => void;
  /** Reconnect after the server ended the stream cleanly (watches: yes). */
  reconnectOnEnd?: boolean;
  signal: AbortSignal;
  /** For tests: how to wait (ms). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  fetchImpl?: typeof fetch;
  /** First and largest wait between reconnections (ms). */
  minDelay?: number;
  maxDelay?: number;
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

/** permanent errors are not retried: the same call would fail again. */
function permanent(e: ApiError): boolean {
  return [400, 401, 403, 404, 409, 501].includes(e.status);
}

/**
 * watch follows a stream, reconnecting with exponential backoff after a
 * lost connection or a server's Unavailable (a leader failover). It ends
 * when signal aborts, on a permanent error, or (reconnectOnEnd false)
 * when the server ends the stream.
 */
export async function watch<T>(o: WatchOptions<T>): Promise<void> {
  const sleep = o.sleep ?? defaultSleep;
  const doFetch = o.fetchImpl ?? ((...a: Parameters<typeof fetch>) => fetch(...a));
  const min = o.minDelay ?? 500;
  const max = o.maxDelay ?? 15000;
  let delay = min;
  let attempt = 0;
  while (!o.signal.aborted) {
    let err: ApiError | null = null;
    let ended = false;
    try {
      const res = await doFetch(o.url(), { headers: authHeaders({ Accept: 'application/json' }), signal: o.signal });
      if (!res.ok || !res.body) {
        const text = await res.text().catch(() => '');
        err = errorFromBody(res.status, text, parseRetryAfter(res.headers.get('Retry-After')));
      } else {
        o.onOpen?.(attempt > 0);
        await readStream<T>(res.body, (l) => {
          if ('error' in l) {
            err = l.error;
            return;
          }
          delay = min; // a result: the connection works again
          o.onResult(l.result);
        }, o.signal);
        ended = err === null;
      }
    } catch (e) {
      if (o.signal.aborted) return;
      err = new ApiError(0, 'The connection to the API was lost; reconnecting.');
    }
    if (o.signal.aborted) return;
    const e = err as ApiError | null;
    if (e && e.status === 401) {
      refused();
      o.onError?.(e, false);
      return;
    }
    if (e && permanent(e)) {
      o.onError?.(e, false);
      return;
    }
    if (ended && !o.reconnectOnEnd) {
      o.onEnd?.();
      return;
    }
    o.onError?.(e ?? new ApiError(0, 'The stream ended; reconnecting.'), true);
    const wait = e?.retryAfter !== undefined ? Math.max(e.retryAfter * 1000, min) : delay;
    attempt++;
    await sleep(wait, o.signal);
    delay = Math.min(delay * 2, max);
  }
}
