// The dashboard's API client: every call carries the session's API token as
// a Bearer header and turns the API's JSON errors into plain messages.

/** Where the token is kept: this tab's session storage, nothing else. */
export const TOKEN_KEY = 'cc.token';

/** The message shown on the sign-in page after the API refused the token. */
export const REFUSED_MESSAGE = 'Your token was refused (revoked or expired). Sign in again.';

export function getToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken(): void {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage unavailable: nothing kept
  }
}

type Listener = (message: string) => void;
const signOutListeners = new Set<Listener>();

/** onSignedOut calls fn with the reason when a call's token is refused. */
export function onSignedOut(fn: Listener): () => void {
  signOutListeners.add(fn);
  return () => signOutListeners.delete(fn);
}

/** refused forgets the token and tells the app to show the sign-in page. */
export function refused(message = REFUSED_MESSAGE): void {
  clearToken();
  for (const fn of signOutListeners) fn(message);
}

/** ApiError is a call the API answered with an error, or could not answer. */
export class ApiError extends Error {
  /** HTTP status (0: no answer). */
  status: number;
  /** gRPC code from the body, when there was one. */
  code: number;
  /** Seconds to wait before trying again (429). */
  retryAfter?: number;
  constructor(status: number, message: string, code = 0, retryAfter?: number) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** parseRetryAfter reads a Retry-After header (seconds or an HTTP date). */
export function parseRetryAfter(v: string | null, now = Date.now()): number | undefined {
  if (!v) return undefined;
  const n = Number(v);
  if (Number.isFinite(n) && n >= 0) return Math.ceil(n);
  const t = Date.parse(v);
  if (!Number.isNaN(t)) return Math.max(0, Math.ceil((t - now) / 1000));
  return undefined;
}

/** errorFromBody builds the ApiError for a failed answer's status and body. */
export function errorFromBody(status: number, body: string, retryAfter?: number): ApiError {
  let message = '';
  let code = 0;
  try {
    const j = JSON.parse(body);
    const e = j && typeof j === 'object' && j.error && typeof j.error === 'object' ? j.error : j;
    if (e && typeof e.message === 'string') message = e.message;
    if (e && typeof e.code === 'number') code = e.code;
  } catch {
    message = body.trim().slice(0, 300);
  }
  switch (status) {
    case 401:
      return new ApiError(401, REFUSED_MESSAGE, code || 16);
    case 403:
      return new ApiError(
        403,
        "Your token's role may not do this" + (message ? `: ${message}` : '.'),
        code || 7,
      );
    case 429: {
      const wait = retryAfter !== undefined ? ` Try again in ${retryAfter} s.` : ' Try again shortly.';
      return new ApiError(429, 'Too many requests: the API is rate limiting this token.' + wait, code || 8, retryAfter);
    }
  }
  if (!message) message = `The API answered ${status}.`;
  return new ApiError(status, message, code, retryAfter);
}

/** authHeaders are the headers of every call. */
export function authHeaders(extra?: HeadersInit): Headers {
  const h = new Headers(extra);
  const t = getToken();
  if (t) h.set('Authorization', `Bearer ${t}`);
  return h;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  signal?: AbortSignal;
  /** Do not sign out on 401 (the sign-in page's own check). */
  noSignOut?: boolean;
}

/** query builds "?a=1&b=2" from defined, non-empty values; arrays repeat. */
export function query(params: Record<string, string | number | boolean | string[] | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    if (Array.isArray(v)) v.forEach((x) => x !== '' && q.append(k, x));
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** api calls path (under the same origin) and returns its JSON answer. */
export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const headers = authHeaders({ Accept: 'application/json' });
  let body: BodyInit | undefined;
  if (opts.body !== undefined) {
    headers.set('Content-Type', 'application/json');
    body = JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(path, { method: opts.method ?? 'GET', headers, body, signal: opts.signal });
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') throw e;
    throw new ApiError(0, 'The API could not be reached. Check that the control plane is running.');
  }
  const text = await res.text();
  if (!res.ok) {
    const err = errorFromBody(res.status, text, parseRetryAfter(res.headers.get('Retry-After')));
    if (res.status === 401 && !opts.noSignOut) refused();
    throw err;
  }
  if (!text) return {} as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(res.status, 'The API answered something that is not JSON.');
  }
}

/** errorMessage is what to show for any thrown value. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
