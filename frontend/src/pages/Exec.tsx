// A terminal in a container: the exec WebSocket, drawn by xterm.js. This
// module (and xterm) is its own chunk, loaded only here.
import { useEffect, useRef, useState } from 'react';
import { Link, useParams } from 'react-router-dom';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { getToken } from '../api/client';
import { can, useAuth } from '../auth';
import { Page } from '../components/common';
import { b64bytes, bytesB64, shortId, splitCommand } from '../lib/format';

/** The exec socket's subprotocol, and the offer that carries the token
 * (a browser cannot set Authorization on a WebSocket; never in the URL). */
export const EXEC_PROTOCOL = 'cc.exec.v1';
export const TOKEN_PROTOCOL_PREFIX = 'cc.token.';

/**
 * cspStyles makes the <style> elements xterm.js creates (its theme and
 * cell sizes) into constructed style sheets while the terminal lives: the
 * dashboard's Content-Security-Policy (style-src 'self') refuses inline
 * <style> text, but allows style sheets built through the CSSOM. xterm
 * only sets their textContent and removes them; the stand-in element it
 * gets instead holds no text and is hidden (styles.css).
 */
function cspStyles(): () => void {
  const doc = document;
  const own = new Set<CSSStyleSheet>();
  const orig = doc.createElement;
  if (typeof CSSStyleSheet === 'undefined' || !('adoptedStyleSheets' in doc)) return () => {};
  doc.createElement = function (this: Document, tag: string, opts?: ElementCreationOptions) {
    if (String(tag).toLowerCase() !== 'style') return orig.call(this, tag, opts);
    const el = orig.call(this, 'cc-xterm-style') as HTMLElement;
    const sheet = new CSSStyleSheet();
    let text = '';
    own.add(sheet);
    doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
    Object.defineProperty(el, 'textContent', {
      get: () => text,
      set: (v: string) => { text = String(v ?? ''); try { sheet.replaceSync(text); } catch { /* a rule it cannot parse */ } },
    });
    el.remove = () => {
      Element.prototype.remove.call(el);
      own.delete(sheet);
      doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((x) => x !== sheet);
    };
    return el;
  } as typeof doc.createElement;
  return () => {
    doc.createElement = orig;
    doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((x) => !own.has(x));
  };
}

export default function Exec() {
  const { id = '' } = useParams();
  const { role } = useAuth();
  const box = useRef<HTMLDivElement>(null);
  const [cmd, setCmd] = useState('/bin/sh');
  const cmdAtStart = useRef(cmd);
  const [session, setSession] = useState(0);
  const [status, setStatus] = useState('');
  useEffect(() => {
    if (!session || !box.current) return;
    const unstyle = cspStyles();
    const term = new Terminal({ cursorBlink: true, convertEol: false, fontSize: 14, scrollback: 5000 });
    term.open(box.current);
    term.focus();
    const enc = new TextEncoder();
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/v1/containers/${encodeURIComponent(id)}/exec`, [EXEC_PROTOCOL, TOKEN_PROTOCOL_PREFIX + (getToken() ?? '')]);
    const size = () => ({ width: term.cols, height: term.rows });
    setStatus('Connecting…');
    ws.onopen = () => {
      setStatus('Connected. Ctrl-D or exit ends the session.');
      ws.send(JSON.stringify({ start: { args: splitCommand(cmdAtStart.current), tty: true, stdin: true, size: size() } }));
    };
    ws.onmessage = (ev) => {
      let m: { stdout?: string; stderr?: string; exit?: { code?: number; error?: string }; error?: { message?: string } };
      try { m = JSON.parse(String(ev.data)); } catch { return; }
      if (m.stdout) term.write(b64bytes(m.stdout));
      if (m.stderr) term.write(b64bytes(m.stderr));
      if (m.exit) setStatus(`Exited with code ${m.exit.code ?? 0}${m.exit.error ? `: ${m.exit.error}` : ''}.`);
      if (m.error) setStatus(`Refused: ${m.error.message ?? 'error'}`);
    };
    ws.onclose = (ev) => setStatus((s) => (s.startsWith('Exited') || s.startsWith('Refused') ? s : `Closed${ev.reason ? `: ${ev.reason}` : ''}.`));
    ws.onerror = () => setStatus('The terminal connection failed.');
    const d1 = term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ stdin: bytesB64(enc.encode(d)) })); });
    const d2 = term.onResize(() => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ resize: size() })); });
    return () => { d1.dispose(); d2.dispose(); ws.close(); term.dispose(); unstyle(); };
  }, [session, id]);
  return (
    <Page title={`Terminal in ${shortId(id)}`}>
      <p><Link to={`/containers/${id}`}>Back to the container</Link></p>
      {!can(role, 'exec') ? <p className="error" role="alert">Only admin tokens may run commands in containers.</p> : (
        <>
          <form className="filters" onSubmit={(e) => { e.preventDefault(); cmdAtStart.current = cmd; setSession((n) => n + 1); }}>
            <label>Command<input value={cmd} onChange={(e) => setCmd(e.target.value)} disabled={session > 0 && !status.startsWith('Exited') && !status.startsWith('Closed')} /></label>
            <button type="submit">{session ? 'Restart' : 'Open terminal'}</button>
          </form>
          <p role="status">{status}</p>
          <div className="terminal" ref={box} aria-label="Terminal" />
        </>
      )}
    </Page>
  );
}
