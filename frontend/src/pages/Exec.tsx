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
 * cspStyles copies the rules of the <style> elements xterm.js writes
 * (its theme and cell sizes) into constructed style sheets: the
 * dashboard's Content-Security-Policy (style-src 'self') does not apply
 * inline <style> text, but allows style sheets built through the CSSOM.
 */
function cspStyles(root: HTMLElement): () => void {
  const sheets = new Map<HTMLStyleElement, CSSStyleSheet>();
  const sync = () => {
    if (typeof CSSStyleSheet === 'undefined' || !('adoptedStyleSheets' in document)) return;
    const seen = new Set<HTMLStyleElement>();
    root.querySelectorAll('style').forEach((el) => {
      seen.add(el);
      let sh = sheets.get(el);
      if (!sh) { sh = new CSSStyleSheet(); sheets.set(el, sh); }
      try { sh.replaceSync(el.textContent ?? ''); } catch { /* bad rule: skip */ }
    });
    for (const el of [...sheets.keys()]) if (!seen.has(el)) sheets.delete(el);
    const ours = new Set(sheets.values());
    const others = document.adoptedStyleSheets.filter((x) => !allSheets.has(x));
    document.adoptedStyleSheets = [...others, ...ours];
    allSheets.clear();
    ours.forEach((x) => allSheets.add(x));
  };
  const allSheets = new Set<CSSStyleSheet>();
  const mo = new MutationObserver(sync);
  mo.observe(root, { subtree: true, childList: true, characterData: true });
  sync();
  return () => {
    mo.disconnect();
    document.adoptedStyleSheets = document.adoptedStyleSheets.filter((x) => !allSheets.has(x));
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
    const unstyle = cspStyles(box.current);
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
