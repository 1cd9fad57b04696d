// Small shared pieces: errors, loading, state text, definitions, hooks.
import { useEffect, useRef, useState, type ReactNode } from 'react';
import { errorMessage } from '../api/client';
import { watch } from '../api/ndjson';
import { enumLabel } from '../lib/format';

export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      {errorMessage(error)}
    </div>
  );
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return <p className="muted" role="status">{what}…</p>;
}

export function Notice({ children }: { children: ReactNode }) {
  return <p className="notice" role="status">{children}</p>;
}

/** tone of a state, for its colour; the text always says the state. */
export function tone(state: string): string {
  const s = state.toUpperCase();
  if (/(RUNNING|READY|SUCCEEDED|ACTIVE|VALID|HEALTHY|COMPLETED|ALLOW|OK)$/.test(s)) return 'good';
  if (/(FAILED|DOWN|TIMED_OUT|UNHEALTHY|ERROR|DENIED|REFUSED)$/.test(s)) return 'bad';
  if (/(PENDING|QUEUED|ASSIGNED|PREPARING|STARTING|UPDATING|RENEWING|PAUSE|PAUSED|DRAIN|ROLLING_BACK)$/.test(s)) return 'warn';
  return 'neutral';
}

/** StateText shows an enum value as words, with a coloured mark and a shape
 * per tone so that the state never rests on colour alone. */
export function StateText({ value, testId, label: text }: { value: string; testId?: string; label?: string }) {
  const label = text ?? (enumLabel(value) || 'unknown');
  const t = tone(value);
  return (
    <span className={`state state-${t}`}>
      <span className="state-mark" aria-hidden="true">{t === 'good' ? '●' : t === 'bad' ? '✕' : t === 'warn' ? '◐' : '○'}</span>
      <span data-testid={testId}>{label}</span>
    </span>
  );
}

export function DL({ items }: { items: [string, ReactNode][] }) {
  return (
    <dl className="dl">
      {items.map(([k, v]) => (
        <div key={k}><dt>{k}</dt><dd>{v === '' || v === null || v === undefined ? '—' : v}</dd></div>
      ))}
    </dl>
  );
}

export function Labels({ labels }: { labels: Record<string, string> | null | undefined }) {
  const e = Object.entries(labels ?? {});
  if (!e.length) return <span className="muted">none</span>;
  return <ul className="labels">{e.map(([k, v]) => <li key={k}><code>{v ? `${k}=${v}` : k}</code></li>)}</ul>;
}

/** useTitle sets the document's title to the page's. */
export function usePageTitle(title: string) {
  useEffect(() => { document.title = `${title} · Container Codes`; }, [title]);
}

export function Page({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  usePageTitle(title);
  return (
    <>
      <div className="page-head">
        <h1>{title}</h1>
        {actions ? <div className="page-actions">{actions}</div> : null}
      </div>
      {children}
    </>
  );
}

export interface StreamState { connected: boolean; error: string; retrying: boolean; ended?: boolean }

/**
 * useWatch follows an NDJSON stream while the component is mounted and
 * key is set, reconnecting after losses. onResult sees every result.
 */
export function useWatch<T>(url: string | null, onResult: (r: T) => void, opts: { reconnectOnEnd?: boolean; onOpen?: (re: boolean) => void; onEnd?: () => void } = {}): StreamState {
  const [st, setSt] = useState<StreamState>({ connected: false, error: '', retrying: false });
  const cb = useRef({ onResult, ...opts });
  cb.current = { onResult, ...opts };
  useEffect(() => {
    if (!url) return;
    const ac = new AbortController();
    watch<T>({
      url: () => url,
      signal: ac.signal,
      reconnectOnEnd: opts.reconnectOnEnd ?? true,
      onOpen: (re) => { setSt({ connected: true, error: '', retrying: false }); cb.current.onOpen?.(re); },
      onResult: (r) => cb.current.onResult(r),
      onError: (e, retrying) => setSt({ connected: false, error: e.message, retrying }),
      onEnd: () => { setSt((s) => ({ ...s, connected: false, ended: true })); cb.current.onEnd?.(); },
    });
    return () => ac.abort();
  }, [url, opts.reconnectOnEnd]);
  return st;
}

export function StreamStatus({ st, what, waiting = 'connecting…' }: { st: StreamState; what: string; waiting?: string }) {
  if (st.error) return <p className={st.retrying ? 'notice' : 'error'} role="status">{what}: {st.error}{st.retrying ? ' (reconnecting)' : ''}</p>;
  return <p className="muted small" role="status">{st.ended ? `${what}: ended` : st.connected ? `${what}: live` : `${what}: ${waiting}`}</p>;
}

export function Progress({ sent, total, label }: { sent: number; total: number; label: string }) {
  const pct = total ? Math.floor((sent / total) * 100) : 0;
  return (
    <div className="progress-wrap">
      <label>
        {label} <span>{pct}%</span>
        <progress max={100} value={pct} aria-label={label}>{pct}%</progress>
      </label>
    </div>
  );
}

/** Confirmed runs action after the user confirms (keyboard-friendly). */
export function confirmed(message: string): boolean {
  return typeof window.confirm !== 'function' ? true : window.confirm(message);
}
