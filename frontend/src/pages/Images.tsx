import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { Image } from '../api/types';
import { sha256Hex, upload } from '../api/upload';
import { can, useAuth } from '../auth';
import { confirmed, ErrorBox, Loading, Page, Progress } from '../components/common';
import { bytes, shortId, time } from '../lib/format';

/** imagePath is an image reference as the path of DELETE /v1/images/{image=**}:
 * its "/" and ":" kept, the rest escaped. */
export function imagePath(ref: string): string {
  return ref.split('/').map((seg) => encodeURIComponent(seg).replace(/%3A/gi, ':').replace(/%40/g, '@')).join('/');
}

export function Images() {
  const { role } = useAuth();
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ['images'], queryFn: () => api<{ images: Image[] }>('/v1/images') });
  const [file, setFile] = useState<File | null>(null);
  const [progress, setProgress] = useState<{ sent: number; total: number } | null>(null);
  const [loaded, setLoaded] = useState('');
  const load = useMutation({
    mutationFn: async () => {
      setProgress({ sent: 0, total: file!.size });
      const sum = await sha256Hex(file!).catch(() => undefined);
      return upload<{ image?: Image; images?: Image[]; names?: string[] }>('/v1/images/load', file!, {
        headers: sum ? { 'X-Content-Sha256': sum } : {},
        onProgress: (sent, total) => setProgress({ sent, total }),
      });
    },
    onSuccess: (r) => {
      const names = r.image?.names ?? r.images?.flatMap((i) => i.names) ?? r.names ?? [];
      setLoaded(names.length ? `Loaded ${names.join(', ')}.` : 'Loaded.');
      qc.invalidateQueries({ queryKey: ['images'] });
    },
  });
  const remove = useMutation({ mutationFn: (name: string) => api(`/v1/images/${imagePath(name)}`, { method: 'DELETE' }), onSuccess: () => qc.invalidateQueries({ queryKey: ['images'] }) });
  const write = can(role, 'write');
  return (
    <Page title="Images">
      {write ? (
        <form className="form" onSubmit={(e: FormEvent) => { e.preventDefault(); if (file) { setLoaded(''); load.mutate(); } }} aria-labelledby="img-form-title">
          <h2 id="img-form-title">Load an image</h2>
          <label htmlFor="img-file">Image archive</label>
          <input id="img-file" type="file" accept=".tar,.tar.gz,.tgz,application/x-tar" onChange={(e) => setFile(e.target.files?.[0] ?? null)} aria-describedby="img-help" />
          <p id="img-help" className="muted small">A <code>docker save</code> or OCI archive; every node gets it.</p>
          <button type="submit" disabled={!file || load.isPending}>Load</button>
          {progress && load.isPending ? <Progress sent={progress.sent} total={progress.total} label="Image upload" /> : null}
          {loaded ? <p role="status">{loaded}</p> : null}
          <ErrorBox error={load.error} />
        </form>
      ) : null}
      <h2>Images</h2>
      <ErrorBox error={q.error || remove.error} />
      {q.isLoading ? <Loading /> : null}
      {q.data ? (
        <div className="table-wrap" tabIndex={0}>
          <table>
            <thead><tr><th scope="col">Names</th><th scope="col">Digest</th><th scope="col">Size</th><th scope="col">Created</th>{write ? <th scope="col">Actions</th> : null}</tr></thead>
            <tbody>
              {q.data.images.map((i) => (
                <tr key={i.digest}>
                  <td>{i.names.join(', ') || '—'}</td>
                  <td><code title={i.digest}>{shortId(i.digest.replace('sha256:', ''))}</code></td>
                  <td>{bytes(i.size)}</td>
                  <td>{time(i.created_at)}</td>
                  {write ? <td><button type="button" className="danger small" onClick={() => confirmed(`Remove image ${i.names[0] || i.digest}?`) && remove.mutate(i.names[0] || i.digest)} aria-label={`Remove ${i.names[0] || i.digest}`}>Remove</button></td> : null}
                </tr>
              ))}
              {q.data.images.length === 0 ? <tr><td colSpan={write ? 5 : 4}>No images.</td></tr> : null}
            </tbody>
          </table>
        </div>
      ) : null}
    </Page>
  );
}
