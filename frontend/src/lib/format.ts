// Formatting of the API's values for people.

/** enumLabel turns "JOB_STATE_TIMED_OUT" into "timed out" (prefix given). */
export function enumLabel(v: string | undefined | null, prefix?: string): string {
  if (!v) return '';
  let s = v;
  if (prefix && s.startsWith(prefix)) s = s.slice(prefix.length);
  else {
    // drop the enum's type prefix: the words before the value's own
    const known = ['JOB_STATE_', 'CONTAINER_STATE_', 'NODE_STATE_', 'NODE_AVAILABILITY_', 'DESIRED_STATE_',
      'HEALTH_STATE_', 'UPDATE_STATE_', 'SERVICE_MODE_', 'RENEWAL_STATE_', 'CERT_SOURCE_', 'ROLE_',
      'LOAD_BALANCING_', 'RESTART_POLICY_', 'NETWORK_MODE_', 'SCHEDULING_STRATEGY_'];
    for (const k of known) if (s.startsWith(k)) { s = s.slice(k.length); break; }
  }
  if (s === 'UNSPECIFIED') return '';
  return s.toLowerCase().replace(/_/g, ' ');
}

export function bytes(v: string | number | null | undefined): string {
  const n = Number(v ?? 0);
  if (!Number.isFinite(n) || n <= 0) return '0 B';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
  return `${i === 0 ? x : x.toFixed(x < 10 ? 1 : 0)} ${u[i]}`;
}

export function cpu(millis: string | number | null | undefined): string {
  const n = Number(millis ?? 0);
  if (!n) return '0';
  return `${(n / 1000).toFixed(n % 1000 ? 2 : 0)} CPU`;
}

export function time(ts: string | null | undefined): string {
  if (!ts) return '';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return '';
  return d.toLocaleString();
}

export function ago(ts: string | null | undefined, now = Date.now()): string {
  if (!ts) return '';
  const t = Date.parse(ts);
  if (Number.isNaN(t) || t <= 0) return '';
  const s = Math.round((now - t) / 1000);
  const f = (n: number, u: string) => `${n} ${u}${n === 1 ? '' : 's'}`;
  const abs = Math.abs(s);
  let r: string;
  if (abs < 60) r = f(abs, 'second');
  else if (abs < 3600) r = f(Math.floor(abs / 60), 'minute');
  else if (abs < 86400) r = f(Math.floor(abs / 3600), 'hour');
  else r = f(Math.floor(abs / 86400), 'day');
  return s >= 0 ? `${r} ago` : `in ${r}`;
}

export function shortId(id: string | undefined | null): string {
  return (id ?? '').slice(0, 12);
}

/** splitCommand splits a command line into words, with '…' and "…" quoting. */
export function splitCommand(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q: string | null = null;
  let has = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      if (c === q) q = null;
      else if (c === '\\' && q === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") { q = c; has = true; }
    else if (c === '\\' && i + 1 < s.length) { cur += s[++i]; has = true; }
    else if (/\s/.test(c)) { if (has || cur) out.push(cur); cur = ''; has = false; }
    else { cur += c; has = true; }
  }
  if (has || cur) out.push(cur);
  return out;
}

/** parseLabels reads "a=b, c=d" into a map (blank entries skipped). */
export function parseLabels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of s.split(/[,\n]/)) {
    const p = part.trim();
    if (!p) continue;
    const i = p.indexOf('=');
    if (i < 0) out[p] = '';
    else out[p.slice(0, i).trim()] = p.slice(i + 1).trim();
  }
  return out;
}

/** b64decode turns the JSON form of bytes into text. */
export function b64text(b64: string): string {
  if (!b64) return '';
  try {
    const bin = atob(b64);
    const u = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    return new TextDecoder().decode(u);
  } catch {
    return '';
  }
}

export function b64bytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const u = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
  return u;
}

export function bytesB64(u: Uint8Array): string {
  let s = '';
  for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000));
  return btoa(s);
}

/** joinCommand shows words as a shell line, quoting those that need it. */
export function joinCommand(words: string[] | null | undefined): string {
  return (words ?? []).map((w) => (w === '' || /[\s'"\\$`|&;<>(){}*?#~]/.test(w) ? `'${w.replace(/'/g, `'\\''`)}'` : w)).join(' ');
}

/** shortImage drops Docker Hub's implied prefix from an image name. */
export function shortImage(ref: string | null | undefined): string {
  return (ref ?? '').replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
}

/** count writes a counter (a uint64 arrives as a string) with grouping. */
export function count(v: string | number | null | undefined): string {
  const s = String(v ?? '0');
  if (!/^\d+$/.test(s)) return s;
  return s.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
