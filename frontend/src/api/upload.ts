// Uploads of raw bytes (job inputs, images, site bundles) with progress:
// XHR, because fetch does not report upload progress.
import { ApiError, errorFromBody, getToken, parseRetryAfter, refused } from './client';

export interface UploadOptions {
  onProgress?: (sent: number, total: number) => void;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** For tests. */
  xhr?: () => XMLHttpRequest;
}

/** upload POSTs body to url and returns the JSON answer. */
export function upload<T>(url: string, body: Blob, o: UploadOptions = {}): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const x = o.xhr ? o.xhr() : new XMLHttpRequest();
    x.open('POST', url);
    const t = getToken();
    if (t) x.setRequestHeader('Authorization', `Bearer ${t}`);
    x.setRequestHeader('Content-Type', 'application/octet-stream');
    x.setRequestHeader('Accept', 'application/json');
    for (const [k, v] of Object.entries(o.headers ?? {})) x.setRequestHeader(k, v);
    x.upload.onprogress = (ev) => o.onProgress?.(ev.loaded, ev.lengthComputable ? ev.total : body.size);
    x.onerror = () => reject(new ApiError(0, 'The upload failed: the API could not be reached.'));
    x.onabort = () => reject(new ApiError(0, 'The upload was cancelled.'));
    x.onload = () => {
      const text = x.responseText;
      if (x.status < 200 || x.status >= 300) {
        const err = errorFromBody(x.status, text, parseRetryAfter(x.getResponseHeader('Retry-After')));
        if (x.status === 401) refused();
        reject(err);
        return;
      }
      o.onProgress?.(body.size, body.size);
      try {
        resolve((text ? JSON.parse(text) : {}) as T);
      } catch {
        reject(new ApiError(x.status, 'The API answered something that is not JSON.'));
      }
    };
    o.signal?.addEventListener('abort', () => x.abort());
    x.send(body);
  });
}

/** sha256Hex is the hex SHA-256 of a blob (when the browser can: secure contexts). */
export async function sha256Hex(b: Blob): Promise<string | undefined> {
  if (!globalThis.crypto?.subtle || b.size > 256 << 20) return undefined;
  const d = await crypto.subtle.digest('SHA-256', await b.arrayBuffer());
  return Array.from(new Uint8Array(d), (x) => x.toString(16).padStart(2, '0')).join('');
}

/** download fetches url with the token and saves it as name. */
export async function download(url: string, name: string): Promise<void> {
  const t = getToken();
  const res = await fetch(url, { headers: t ? { Authorization: `Bearer ${t}` } : {} });
  if (!res.ok) {
    const err = errorFromBody(res.status, await res.text(), parseRetryAfter(res.headers.get('Retry-After')));
    if (res.status === 401) refused();
    throw err;
  }
  const blob = await res.blob();
  saveBlob(blob, name);
}

/** saveBlob offers blob to the user as a download named name. */
export function saveBlob(blob: Blob, name: string): void {
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = name.split('/').pop() || 'download';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}
