import { describe, expect, it } from 'vitest';
import { splitName, tar, untarList } from './tar';

const enc = new TextEncoder();

function field(b: Uint8Array, off: number, len: number) {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(off, end));
}

describe('tar', () => {
  it('writes ustar headers with a valid checksum, padding and the end blocks', () => {
    const out = tar([{ name: 'index.html', data: enc.encode('<h1>hi</h1>'), mtime: 1700000000 }]);
    expect(out.length).toBe(512 + 512 + 1024);
    const h = out.subarray(0, 512);
    expect(field(h, 0, 100)).toBe('index.html');
    expect(field(h, 257, 6)).toBe('ustar');
    expect(parseInt(field(h, 124, 12), 8)).toBe(11);
    expect(parseInt(field(h, 136, 12), 8)).toBe(1700000000);
    expect(String.fromCharCode(h[156])).toBe('0');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
    expect(parseInt(field(h, 148, 8), 8)).toBe(sum);
    expect(new TextDecoder().decode(out.subarray(512, 523))).toBe('<h1>hi</h1>');
    expect(out.subarray(523).every((x) => x === 0)).toBe(true);
  });

  it('round-trips names: short, prefix-split, long (pax) and non-ASCII', () => {
    const long = `${'d'.repeat(60)}/${'e'.repeat(120)}/file.txt`;
    const deep = `${'a'.repeat(90)}/${'b'.repeat(90)}.js`;
    const files = [
      { name: 'a.txt', data: enc.encode('A') },
      { name: './css/site.css', data: enc.encode('body{}') },
      { name: deep, data: new Uint8Array(513) },
      { name: long, data: enc.encode('x') },
      { name: 'naïve/ünïcode.txt', data: enc.encode('u') },
    ];
    expect(splitName(deep)).not.toBeNull();
    const list = untarList(tar(files));
    expect(list.map((e) => e.name)).toEqual(['a.txt', 'css/site.css', deep, long, 'naïve/ünïcode.txt']);
    expect(list.map((e) => e.size)).toEqual([1, 6, 513, 1, 1]);
    expect(list.every((e) => e.type === '0')).toBe(true);
  });

  it('an empty archive is two zero blocks', () => {
    const out = tar([]);
    expect(out.length).toBe(1024);
    expect(untarList(out)).toEqual([]);
  });
});

describe('gzip', () => {
  it('packs a folder as a tar.gz that reads back', async () => {
    const { gzip, gunzip, filesOfFolder } = await import('./tar');
    // what a folder input gives (jsdom's File cannot read itself)
    const mk = (path: string, text: string) => ({
      name: path.split('/').pop()!, webkitRelativePath: path, lastModified: 1_700_000_000_000,
      arrayBuffer: async () => enc.encode(text).buffer,
    }) as unknown as File;
    // a picked folder "site": its name is not part of the names
    const files = await filesOfFolder([mk('site/index.html', '<h1>hi</h1>'), mk('site/css/a.css', 'h1{}')]);
    expect(files.map((f) => f.name)).toEqual(['css/a.css', 'index.html']);
    expect(files[0].mtime).toBe(1_700_000_000);
    const gz = await gzip(tar(files));
    expect([gz[0], gz[1]]).toEqual([0x1f, 0x8b]);
    const back = await gunzip(new ReadableStream<Uint8Array>({ start(c) { c.enqueue(gz); c.close(); } }));
    expect(untarList(back).map((e) => [e.name, e.size])).toEqual([['css/a.css', 4], ['index.html', 11]]);
  });
});
