import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, query } from '../api/client';
import type { Site } from '../api/types';
import { upload } from '../api/upload';
import { can, useAuth } from '../auth';
import { confirmed, ErrorBox, Loading, Page, Progress } from '../components/common';
import { bytes, time } from '../lib/format';
import { filesOfFolder, gzip, tar } from '../lib/tar';

// The folder input: webkitdirectory is not in React's types.
const folderProps = { webkitdirectory: '', directory: '' } as Record<string, string>;

export function Sites() {
  const { role } = useAuth();
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ['sites'], queryFn: () => api<{ sites: Site[] }>('/v1/sites'), refetchInterval: 10_000 });
  const [name, setName] = useState('');
  const [hosts, setHosts] = useState('');
  const [spa, setSpa] = useState(false);
  const [folder, setFolder] = useState<FileList | null>(null);
  const [files, setFiles] = useState<FileList | null>(null);
  const [phase, setPhase] = useState('');
  const [progress, setProgress] = useState<{ sent: number; total: number } | null>(null);
  const [done, setDone] = useState('');
  const deploy = useMutation({
    mutationFn: async () => {
      const picked = folder?.length ? folder : files;
      if (!picked?.length) throw new Error('Pick a folder (or files) to deploy.');
      setPhase('Packing the folder');
      const list = await filesOfFolder(picked);
      const body = await gzip(tar(list));
      setPhase('Uploading');
      setProgress({ sent: 0, total: body.length });
      const url = `/v1/sites/${encodeURIComponent(name.trim())}/deploy${query({ host: hosts.split(',').map((s) => s.trim()).filter(Boolean), spa })}`;
      return upload<{ site?: Site }>(url, new Blob([body as BlobPart], { type: 'application/gzip' }), { onProgress: (sent, total) => setProgress({ sent, total }) });
    },
    onSuccess: (r) => {
      setPhase('');
      setDone(r.site ? `Deployed ${r.site.name} version ${r.site.current}.` : 'Deployed.');
      qc.invalidateQueries({ queryKey: ['sites'] });
    },
    onError: () => setPhase(''),
  });
  const rollback = useMutation({
    mutationFn: ({ site, version }: { site: string; version: number }) => api(`/v1/sites/${encodeURIComponent(site)}/rollback`, { method: 'POST', body: { version } }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['sites'] }),
  });
  const remove = useMutation({ mutationFn: (n: string) => api(`/v1/sites/${encodeURIComponent(n)}`, { method: 'DELETE' }), onSuccess: () => qc.invalidateQueries({ queryKey: ['sites'] }) });
  const write = can(role, 'write');
  return (
    <Page title="Sites">
      {write ? (
        <form className="form" data-testid="site-form" onSubmit={(e: FormEvent) => { e.preventDefault(); setDone(''); if (name.trim()) deploy.mutate(); }} aria-labelledby="site-form-title">
          <h2 id="site-form-title">Deploy a site</h2>
          <label htmlFor="site-name">Site name</label>
          <input id="site-name" required value={name} onChange={(e) => setName(e.target.value)} />
          <label htmlFor="site-hosts">Hosts (comma-separated)</label>
          <input id="site-hosts" value={hosts} onChange={(e) => setHosts(e.target.value)} placeholder="www.example.com" />
          <label className="inline"><input type="checkbox" checked={spa} onChange={(e) => setSpa(e.target.checked)} /> Single-page app (unknown paths serve index.html)</label>
          <label htmlFor="site-folder">Folder</label>
          <input id="site-folder" type="file" multiple {...folderProps} onChange={(e) => setFolder(e.target.files)} />
          <label htmlFor="site-files">Or files</label>
          <input id="site-files" type="file" multiple onChange={(e) => setFiles(e.target.files)} />
          <p className="muted small">The folder's content is the site's root; it is packed as a tar.gz here and uploaded.</p>
          <button type="submit" disabled={deploy.isPending || !name.trim()}>Deploy</button>
          {phase ? <p role="status">{phase}…</p> : null}
          {progress && deploy.isPending ? <Progress sent={progress.sent} total={progress.total} label="Site upload" /> : null}
          {done ? <p role="status">{done}</p> : null}
          <ErrorBox error={deploy.error} />
        </form>
      ) : null}
      <h2>Sites</h2>
      <ErrorBox error={q.error || rollback.error || remove.error} />
      {q.isLoading ? <Loading /> : null}
      {q.data?.sites.map((s) => (
        <section key={s.name} className="card" aria-labelledby={`site-${s.name}`}>
          <h3 id={`site-${s.name}`}>{s.name}</h3>
          <p>Hosts: {s.spec?.hosts.join(', ') || 'any'} · path <code>{s.spec?.path_prefix || '/'}</code>{s.spec?.spa ? ' · single-page app' : ''} · current version {s.current}</p>
          <div className="table-wrap" tabIndex={0}>
            <table>
              <caption className="visually-hidden">Versions of {s.name}</caption>
              <thead><tr><th scope="col">Version</th><th scope="col">Files</th><th scope="col">Size</th><th scope="col">Deployed</th>{write ? <th scope="col">Actions</th> : null}</tr></thead>
              <tbody>
                {s.versions.map((v) => (
                  <tr key={v.version}>
                    <td>{v.version}{v.version === s.current ? ' (current)' : ''}</td>
                    <td>{v.files}</td>
                    <td>{bytes(v.content_bytes)}</td>
                    <td>{time(v.deployed_at)}</td>
                    {write ? <td>{v.version !== s.current ? <button type="button" className="secondary small" aria-label={`Roll back ${s.name} to version ${v.version}`} onClick={() => rollback.mutate({ site: s.name, version: v.version })}>Roll back</button> : null}</td> : null}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {write ? <button type="button" className="danger small" onClick={() => confirmed(`Remove site ${s.name}?`) && remove.mutate(s.name)} aria-label={`Remove site ${s.name}`}>Remove</button> : null}
        </section>
      ))}
      {q.data && q.data.sites.length === 0 ? <p>No sites.</p> : null}
    </Page>
  );
}
