// A small tar (POSIX ustar, with pax headers for long names) writer and
// reader, and gzip through the browser's CompressionStream: the dashboard
// packs a folder for a site deploy and lists a job's output archive.

export interface TarFile {
  /** Path inside the archive, "/"-separated, relative. */
  name: string;
  data: Uint8Array;
  /** Modification time, seconds since the epoch. */
  mtime?: number;
  mode?: number;
}

const enc = new TextEncoder();
const BLOCK = 512;

function octal(n: number, width: number): string {
  // width includes the trailing NUL
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function put(buf: Uint8Array, off: number, s: string, width: number): boolean {
  const b = enc.encode(s);
  if (b.length > width) return false;
  buf.set(b, off);
  return true;
}

function checksum(h: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
  return sum;
}

function header(name: string, size: number, mtime: number, mode: number, type: string, prefix = ''): Uint8Array {
  const h = new Uint8Array(BLOCK);
  put(h, 0, name, 100);
  put(h, 100, octal(mode, 8), 8);
  put(h, 108, octal(0, 8), 8);
  put(h, 116, octal(0, 8), 8);
  put(h, 124, octal(size, 12), 12);
  put(h, 136, octal(Math.max(0, Math.floor(mtime)), 12), 12);
  put(h, 156, type, 1);
  put(h, 257, 'ustar\0', 6);
  put(h, 263, '00', 2);
  put(h, 345, prefix, 155);
  put(h, 148, octal(checksum(h), 7) + ' ', 8);
  return h;
}

/** splitName fits a name into ustar's name and prefix, or says it cannot. */
export function splitName(name: string): { name: string; prefix: string } | null {
  const b = enc.encode(name).length;
  if (b <= 100) return { name, prefix: '' };
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (enc.encode(prefix).length <= 155 && enc.encode(rest).length <= 100 && rest) return { name: rest, prefix };
  }
  return null;
}

function paxRecord(key: string, value: string): string {
  // "<len> key=value\n" where len counts itself
  const body = ` ${key}=${value}\n`;
  let len = enc.encode(body).length;
  let n = len + String(len).length;
  if (String(n).length !== String(len).length) n = len + String(n).length;
  return `${n}${body}`;
}

function pad(n: number): number {
  return (BLOCK - (n % BLOCK)) % BLOCK;
}

/** tar returns the tar archive of files (regular files only). */
export function tar(files: TarFile[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of files) {
    const name = f.name.replace(/^\.?\/+/, '');
    const mtime = f.mtime ?? 0;
    const mode = f.mode ?? 0o644;
    let fit = splitName(name);
    if (!fit || /[^\x20-\x7e]/.test(name)) {
      const rec = enc.encode(paxRecord('path', name));
      parts.push(header('PaxHeader', rec.length, mtime, 0o644, 'x'), rec, new Uint8Array(pad(rec.length)));
      fit = { name: name.slice(-100).replace(/[^\x20-\x7e]/g, '_'), prefix: '' };
    }
    parts.push(header(fit.name, f.data.length, mtime, mode, '0', fit.prefix), f.data, new Uint8Array(pad(f.data.length)));
  }
  parts.push(new Uint8Array(BLOCK * 2));
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

export interface TarEntry { name: string; size: number; type: string }

function str(b: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(off, end));
}

function num(b: Uint8Array, off: number, len: number): number {
  if (b[off] & 0x80) {
    // base-256 (GNU) for large sizes
    let n = 0;
    for (let i = off + 1; i < off + len; i++) n = n * 256 + b[i];
    return n;
  }
  const s = str(b, off, len).trim();
  return s ? parseInt(s, 8) : 0;
}

function parsePax(b: Uint8Array): Record<string, string> {
  // Records are "<len> key=value\n", len in bytes (the value may be UTF-8).
  const out: Record<string, string> = {};
  const dec = new TextDecoder();
  let i = 0;
  while (i < b.length) {
    let sp = i;
    while (sp < b.length && b[sp] !== 0x20) sp++;
    const len = parseInt(dec.decode(b.subarray(i, sp)), 10);
    if (!len || sp >= b.length) break;
    const rec = dec.decode(b.subarray(sp + 1, i + len - 1));
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

/** untarList lists the entries of a tar archive (no data kept). */
export function untarList(b: Uint8Array): TarEntry[] {
  const out: TarEntry[] = [];
  let off = 0;
  let longName: string | null = null;
  while (off + BLOCK <= b.length) {
    const h = b.subarray(off, off + BLOCK);
    if (h.every((x) => x === 0)) break;
    const size = num(h, 124, 12);
    const type = String.fromCharCode(h[156] || 48);
    const body = off + BLOCK;
    const next = body + size + pad(size);
    if (type === 'x') {
      const p = parsePax(b.subarray(body, body + size));
      if (p.path) longName = p.path;
    } else if (type === 'L') {
      longName = str(b, body, size);
    } else if (type !== 'g') {
      const prefix = str(h, 345, 155);
      let name = str(h, 0, 100);
      if (prefix) name = `${prefix}/${name}`;
      if (longName) name = longName;
      longName = null;
      out.push({ name: name.replace(/^\.\//, ''), size, type: type === '\0' ? '0' : type });
    }
    off = next;
  }
  return out;
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const r = stream.getReader();
  for (;;) {
    const { value, done } = await r.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) { out.set(c, off); off += c.length; }
  return out;
}

/** gzip compresses b with the browser's CompressionStream. */
export function gzip(b: Uint8Array): Promise<Uint8Array> {
  const src = new ReadableStream<Uint8Array>({ start(c) { c.enqueue(b); c.close(); } });
  const s = src.pipeThrough(new CompressionStream('gzip') as unknown as TransformStream<Uint8Array, Uint8Array>);
  return collect(s);
}

/** gunzip decompresses a gzip stream. */
export function gunzip(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return collect(s.pipeThrough(new DecompressionStream('gzip') as unknown as TransformStream<Uint8Array, Uint8Array>));
}

/** filesOfFolder reads the files of a folder picked with webkitdirectory
 * (or several picked files), with names relative to the folder. */
export async function filesOfFolder(list: FileList | File[]): Promise<TarFile[]> {
  const files = Array.from(list);
  const rel = files.map((f) => (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name);
  // Drop the picked folder's own name: the site's root is its content.
  const firsts = new Set(rel.map((r) => (r.includes('/') ? r.split('/')[0] : '')));
  const strip = firsts.size === 1 && !firsts.has('') ? [...firsts][0].length + 1 : 0;
  const out: TarFile[] = [];
  for (let i = 0; i < files.length; i++) {
    const data = new Uint8Array(await files[i].arrayBuffer());
    out.push({ name: rel[i].slice(strip), data, mtime: Math.floor(files[i].lastModified / 1000) });
  }
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out;
}
