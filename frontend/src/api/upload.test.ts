import { describe, expect, it } from 'vitest';
import { upload } from './upload';
import { getToken, onSignedOut, setToken } from './client';

/** A stand-in XMLHttpRequest that answers status and body after
 * reporting the upload's progress in two steps. */
function fakeXHR(status: number, body: string, headers: Record<string, string> = {}) {
  const sent: { method?: string; url?: string; headers: Record<string, string>; body?: unknown } = { headers: {} };
  const x = {
    upload: { onprogress: null as null | ((e: { loaded: number; total: number; lengthComputable: boolean }) => void) },
    onload: null as null | (() => void), onerror: null, onabort: null,
    status: 0, responseText: '',
    open(m: string, u: string) { sent.method = m; sent.url = u; },
    setRequestHeader(k: string, v: string) { sent.headers[k] = v; },
    getResponseHeader(k: string) { return headers[k] ?? null; },
    abort() {},
    send(b: Blob) {
      sent.body = b;
      x.upload.onprogress?.({ loaded: b.size / 2, total: b.size, lengthComputable: true });
      x.upload.onprogress?.({ loaded: b.size, total: b.size, lengthComputable: true });
      x.status = status;
      x.responseText = body;
      x.onload?.();
    },
  };
  return { xhr: () => x as unknown as XMLHttpRequest, sent };
}

describe('upload', () => {
  it('posts the raw bytes with the token and reports progress', async () => {
    setToken('cc-tok');
    const f = fakeXHR(200, '{"digest":"sha256:ab","size":"4"}');
    const progress: number[] = [];
    const r = await upload<{ digest: string }>('/v1/jobs/inputs', new Blob(['abcd']), {
      xhr: f.xhr, headers: { 'X-Content-Sha256': 'ff' }, onProgress: (s, t) => progress.push(s / t),
    });
    expect(r.digest).toBe('sha256:ab');
    expect(f.sent.method).toBe('POST');
    expect(f.sent.url).toBe('/v1/jobs/inputs');
    expect(f.sent.headers.Authorization).toBe('Bearer cc-tok');
    expect(f.sent.headers['X-Content-Sha256']).toBe('ff');
    expect(f.sent.headers['Content-Type']).toBe('application/octet-stream');
    expect(progress).toEqual([0.5, 1, 1]);
  });

  it('turns a refusal into its message, and a 401 into a sign-out', async () => {
    setToken('cc-tok');
    await expect(upload('/v1/images/load', new Blob(['x']), { xhr: fakeXHR(413, '{"code":8,"message":"the image is larger than 4 GiB"}').xhr }))
      .rejects.toMatchObject({ status: 413, message: 'the image is larger than 4 GiB' });
    expect(getToken()).toBe('cc-tok');
    const seen: string[] = [];
    const off = onSignedOut((m) => seen.push(m));
    await expect(upload('/v1/sites/a/deploy', new Blob(['x']), { xhr: fakeXHR(401, '{"code":16,"message":"bad token"}').xhr })).rejects.toMatchObject({ status: 401 });
    off();
    expect(seen).toHaveLength(1);
    expect(getToken()).toBeNull();
  });
});
