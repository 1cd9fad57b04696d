import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { Settings as S, Status } from '../api/types';
import { can, useAuth } from '../auth';
import { DL, ErrorBox, Loading, Page } from '../components/common';
import { bytes, enumLabel } from '../lib/format';

export function Settings() {
  const { role } = useAuth();
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ['status'], queryFn: () => api<Status>('/v1/status') });
  const s = q.data?.settings;
  const [strategy, setStrategy] = useState('');
  const [jobsQuota, setJobsQuota] = useState('');
  const save = useMutation({
    mutationFn: () => {
      const settings: Partial<S> & Record<string, unknown> = {};
      if (strategy) settings.scheduling_strategy = strategy;
      if (jobsQuota.trim() !== '') settings.quotas = { jobs_per_token: String(parseInt(jobsQuota, 10) || 0), output_bytes_per_token: null };
      return api<{ settings: S }>('/v1/settings', { method: 'PUT', body: { settings } });
    },
    onSuccess: () => { qc.invalidateQueries({ queryKey: ['status'] }); setStrategy(''); setJobsQuota(''); },
  });
  const lim = s?.limits ?? {};
  return (
    <Page title="Settings">
      <ErrorBox error={q.error} />
      {q.isLoading ? <Loading /> : null}
      {s ? (
        <>
          <h2>Cluster settings</h2>
          <DL items={[
            ['Scheduling', enumLabel(s.scheduling_strategy) || 'spread'],
            ['Max memory per container', lim.max_memory_bytes ? bytes(lim.max_memory_bytes) : 'no cap'],
            ['Max CPU per container', lim.max_cpu_millis ? `${Number(lim.max_cpu_millis) / 1000} CPU` : 'no cap'],
            ['Max processes', lim.max_pids ?? 'no cap'],
            ['Audit retention', [s.audit?.max_age ? `age ${s.audit.max_age}` : '', s.audit?.max_events ? `${s.audit.max_events} events` : ''].filter(Boolean).join(', ') || 'default'],
            ['Jobs per token', s.quotas?.jobs_per_token ?? 'no quota'],
            ['Output per token', s.quotas?.output_bytes_per_token ? bytes(s.quotas.output_bytes_per_token) : 'no quota'],
            ['Privileged containers', (s.security as { allow_privileged?: boolean } | null)?.allow_privileged ? 'allowed' : 'refused'],
            ['ACME directory', String((s.edge as { acme_directory?: string } | null)?.acme_directory || 'none')],
            ['HTTP/3', (s.edge as { http3?: boolean } | null)?.http3 ? 'on' : 'off'],
          ]} />
          {can(role, 'write') ? (
            <form className="form" onSubmit={(e: FormEvent) => { e.preventDefault(); save.mutate(); }} aria-labelledby="settings-form-title">
              <h2 id="settings-form-title">Change settings</h2>
              <label htmlFor="set-strategy">Scheduling strategy</label>
              <select id="set-strategy" value={strategy} onChange={(e) => setStrategy(e.target.value)}>
                <option value="">keep ({enumLabel(s.scheduling_strategy) || 'spread'})</option>
                <option value="SCHEDULING_STRATEGY_SPREAD">spread</option>
                <option value="SCHEDULING_STRATEGY_BINPACK">binpack</option>
              </select>
              <label htmlFor="set-jobs-quota">Jobs per token (0: no quota; empty: keep)</label>
              <input id="set-jobs-quota" type="number" min={0} value={jobsQuota} onChange={(e) => setJobsQuota(e.target.value)} />
              <button type="submit" disabled={save.isPending || (!strategy && jobsQuota.trim() === '')}>Save settings</button>
              <ErrorBox error={save.error} />
            </form>
          ) : <p className="muted">Your token's role may read the settings, not change them.</p>}
        </>
      ) : null}
    </Page>
  );
}
