// A followed log: the stream of a container's, service's or job's output.
import { useEffect, useRef, useState } from 'react';
import { query } from '../api/client';
import { b64text } from '../lib/format';
import type { LogLine } from '../api/types';
import { StreamStatus, useWatch } from './common';

const MAX_CHARS = 400_000;

/**
 * LogView follows the log at path. active says its source still runs (or
 * will): a stream that ends then is opened again, reading the tail anew.
 * Give it a key that changes with the source's state, so that a log opened
 * before its container started is read again once it runs.
 */
export function LogView({ path, follow = true, tail = 500, label = 'Logs', active = false }: { path: string; follow?: boolean; tail?: number; label?: string; active?: boolean }) {
  const [text, setText] = useState('');
  const [ended, setEnded] = useState(false);
  const pre = useRef<HTMLPreElement>(null);
  const stick = useRef(true);
  const url = `${path}${query({ follow, tail })}`;
  const st = useWatch<LogLine>(url, (r) => {
    const t = (r.task ? `[${r.task.slice(0, 12)}] ` : '') + b64text(r.data);
    setText((s) => {
      const n = s + t;
      return n.length > MAX_CHARS ? n.slice(n.length - MAX_CHARS) : n;
    });
  }, {
    reconnectOnEnd: follow && active,
    // A reconnection reads the tail again: start over.
    onOpen: (re) => { if (re) setText(''); setEnded(false); },
    onEnd: () => setEnded(true),
  });
  useEffect(() => {
    const el = pre.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [text]);
  return (
    <section aria-label={label}>
      <h2>{label}</h2>
      <StreamStatus st={st} what={follow ? 'Following logs' : 'Logs'} waiting="waiting for output…" />
      <pre
        className="logs"
        data-testid="logs"
        ref={pre}
        tabIndex={0}
        role="log"
        aria-live="off"
        aria-label={`${label} output`}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
        }}
      >
        {text || (ended ? '(no output)' : '')}
      </pre>
      {ended ? <p className="muted small">The log ended.</p> : null}
    </section>
  );
}
