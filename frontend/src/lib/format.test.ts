import { describe, expect, it } from 'vitest';
import { b64text, bytes, enumLabel, joinCommand, parseLabels, splitCommand } from './format';

describe('format', () => {
  it('splits a command line as a shell would, and joins it back', () => {
    const words = splitCommand(`/bin/busybox sh -c 'echo "a b" > /output/a.txt' "x y" z\\ w ''`);
    expect(words).toEqual(['/bin/busybox', 'sh', '-c', 'echo "a b" > /output/a.txt', 'x y', 'z w', '']);
    expect(splitCommand(joinCommand(words))).toEqual(words);
    expect(joinCommand(["it's"])).toBe(`'it'\\''s'`);
    expect(splitCommand('   ')).toEqual([]);
  });
  it('names enum values in words', () => {
    expect(enumLabel('JOB_STATE_TIMED_OUT')).toBe('timed out');
    expect(enumLabel('NODE_AVAILABILITY_DRAIN')).toBe('drain');
    expect(enumLabel('CONTAINER_STATE_UNSPECIFIED')).toBe('');
  });
  it('reads labels and sizes', () => {
    expect(parseLabels('a=1, b = two,flag')).toEqual({ a: '1', b: 'two', flag: '' });
    expect(bytes('1536')).toBe('1.5 KiB');
    expect(bytes(0)).toBe('0 B');
  });
  it('decodes the JSON form of bytes as UTF-8', () => {
    expect(b64text(btoa(String.fromCharCode(...new TextEncoder().encode('héllo\n'))))).toBe('héllo\n');
  });
});
