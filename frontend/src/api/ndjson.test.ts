import { describe, expect, it, vi } from 'vitest';
import { LineSplitter, parseLine, readStream, watch, type StreamLine } from './ndjson';
import { ApiError, getToken, onSignedOut, setToken } from './client';

const enc = new TextEncoder();

/** A body that sends chunks (strings) then ends, or fails with err. */
function body(chunks: string[], err?: Error): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i < chunks.length) c.enqueue(enc.encode(chunks[i++]));
      else if (err) c.error(err);
      else c.close();
    },
  });
}

describe('LineSplitter', () => {
  it('joins lines cut across chunks', () => {
    const s = new LineSplitter();
    expect(s.push('{"result":{"a"')).toEqual([]);
    expect(s.push(':1}}\n{"res')).toEqual(['{"result":{"a":1}}']);
    expect(s.push('ult":{}}\r\n\n')).toEqual(['{"result":{}}']);
    expect(s.push('{"x":1}')).toEqual([]);
    expect(s.flush()).toEqual(['{"x":1}']);
  });
});

describe('parseLine', () => {
  it('reads results and errors', () => {
    expect(parseLine<{ a: number }>('{"result":{"a":2}}')).toEqual({ result: { a: 2 } });
    const l = parseLine('{"error":{"code":14,"message":"leader lost"}}') as { error: ApiError };
    expect(l.error.status).toBe(503);
    expect(l.error.message).toBe('leader lost');
    const u = parseLine('{"error":{"code":16,"message":"token revoked"}}') as { error: ApiError };
    expect(u.error.status).toBe(401);
  });
});

describe('readStream', () => {
  it('parses NDJSON split at arbitrary byte boundaries, multi-byte characters included', async () => {
    const text = '{"result":{"data":"héllo ✓"}}\n{"result":{"n":2}}\n';
    const bytes = enc.encode(text);
    // one byte a chunk: cuts inside the UTF-8 sequences too
    let i = 0;
    const b = new ReadableStream<Uint8Array>({
      pull(c) { if (i < bytes.length) c.enqueue(bytes.slice(i, ++i)); else c.close(); },
    });
    const got: StreamLine<unknown>[] = [];
    await readStream(b, (l) => got.push(l));
    expect(got).toEqual([{ result: { data: 'héllo ✓' } }, { result: { n: 2 } }]);
  });
});

describe('watch', () => {
  it('reconnects with growing backoff after a lost connection and a server Unavailable, then resets it', async () => {
    const answers = [
      () => new Response(body(['{"result":{"n":1}}\n'], new TypeError('network'))),
      () => new Response(body(['{"error":{"code":14,"message":"no leader"}}\n'])),
      () => { throw new TypeError('Failed to fetch'); },
      () => new Response(body(['{"result":{"n":2}}\n', '{"result":{"n":3}}\n'])),
    ];
    const ac = new AbortController();
    const results: number[] = [];
    const waits: number[] = [];
    const opens: boolean[] = [];
    const errors: [string, boolean][] = [];
    let call = 0;
    await watch<{ n: number }>({
      url: () => '/v1/jobs:watch',
      signal: ac.signal,
      reconnectOnEnd: false,
      fetchImpl: vi.fn(async () => answers[call++]()),
      sleep: async (ms) => { waits.push(ms); },
      minDelay: 100,
      maxDelay: 1000,
      onResult: (r) => results.push(r.n),
      onOpen: (re) => opens.push(re),
      onError: (e, retrying) => errors.push([e.message, retrying]),
    });
    expect(results).toEqual([1, 2, 3]);
    expect(opens).toEqual([false, true, true]);
    // 100 after the first result reset it, then doubling
    expect(waits).toEqual([100, 200, 400]);
    expect(errors.map((e) => e[1])).toEqual([true, true, true]);
    expect(errors[1][0]).toBe('no leader');
  });

  it('waits Retry-After on 429', async () => {
    const ac = new AbortController();
    const waits: number[] = [];
    let call = 0;
    await watch({
      url: () => '/v1/audit:watch',
      signal: ac.signal,
      fetchImpl: vi.fn(async () => (call++ === 0
        ? new Response('{"code":8,"message":"slow down"}', { status: 429, headers: { 'Retry-After': '5' } })
        : new Response(body([])))),
      sleep: async (ms) => { waits.push(ms); },
      onResult: () => {},
      onEnd: () => ac.abort(),
    });
    expect(waits).toEqual([5000]);
  });

  it('stops and signs out when the stream says the token is gone', async () => {
    setToken('t');
    const seen: string[] = [];
    const off = onSignedOut((m) => seen.push(m));
    const sleep = vi.fn(async () => {});
    await watch({
      url: () => '/v1/jobs:watch',
      signal: new AbortController().signal,
      reconnectOnEnd: true,
      fetchImpl: vi.fn(async () => new Response(body(['{"error":{"code":16,"message":"the stream was ended"}}\n']))),
      sleep,
      onResult: () => {},
    });
    off();
    expect(sleep).not.toHaveBeenCalled();
    expect(seen.length).toBe(1);
    expect(getToken()).toBeNull();
  });

  it('does not retry a 404', async () => {
    const errors: [number, boolean][] = [];
    const f = vi.fn(async () => new Response('{"code":5,"message":"job x not found"}', { status: 404 }));
    await watch({ url: () => '/v1/jobs/x/logs', signal: new AbortController().signal, fetchImpl: f, sleep: async () => {}, onResult: () => {}, onError: (e, r) => errors.push([e.status, r]) });
    expect(f).toHaveBeenCalledTimes(1);
    expect(errors).toEqual([[404, false]]);
  });

  it('opens a watch again after the server ended it cleanly, when asked to', async () => {
    const ac = new AbortController();
    const opens: boolean[] = [];
    const got: number[] = [];
    let call = 0;
    await watch<{ n: number }>({
      url: () => '/v1/containers/c/logs?follow=true',
      signal: ac.signal,
      reconnectOnEnd: true,
      fetchImpl: vi.fn(async () => new Response(body(call++ === 0 ? [] : ['{"result":{"n":7}}\n']))),
      sleep: async () => {},
      onOpen: (re) => opens.push(re),
      onResult: (r) => { got.push(r.n); ac.abort(); },
    });
    expect(opens).toEqual([false, true]);
    expect(got).toEqual([7]);
  });
});
