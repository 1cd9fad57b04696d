// Who is signed in: the token (in session storage) and its role.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { ApiError, api, clearToken, getToken, onSignedOut, setToken } from './api/client';
import type { Role } from './api/types';

export type RoleName = 'admin' | 'viewer' | 'jobs' | 'other' | 'unknown';

export interface Auth {
  token: string | null;
  role: RoleName;
  tokenId: string;
  /** Why the user was signed out, for the sign-in page. */
  notice: string;
  signIn: (token: string) => Promise<void>;
  signOut: (notice?: string) => void;
}

const AuthContext = createContext<Auth | null>(null);

export function roleName(r: Role | string | undefined): RoleName {
  switch (r) {
    case 'ROLE_ADMIN': case 'admin': return 'admin';
    case 'ROLE_VIEWER': case 'viewer': return 'viewer';
    case 'ROLE_JOBS': case 'jobs': return 'jobs';
    case undefined: case '': return 'unknown';
    default: return 'other';
  }
}

async function forbidden(path: string): Promise<boolean> {
  try {
    await api(path, { noSignOut: true });
    return false;
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) return true;
    if (e instanceof ApiError && e.status === 401) throw e;
    return false;
  }
}

/**
 * whoami checks the token and finds its role: GET /v1/whoami where the
 * server has it, else by which reads the token may make (a jobs token may
 * not list nodes; a viewer may not read the audit trail).
 */
export async function whoami(): Promise<{ role: RoleName; tokenId: string }> {
  try {
    const w = await api<{ token_id?: string; role?: string }>('/v1/whoami', { noSignOut: true });
    return { role: roleName(w.role), tokenId: w.token_id ?? '' };
  } catch (e) {
    if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 501 && e.status !== 405)) throw e;
  }
  // No whoami: the status call checks the token (any role but metrics).
  const tokenId = (getToken() ?? '').split('-')[2] ?? ''; // cc-<version>-<id>-<secret>
  try {
    await api('/v1/status', { noSignOut: true });
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) return { role: 'other', tokenId };
    throw e;
  }
  if (await forbidden('/v1/nodes')) return { role: 'jobs', tokenId };
  if (await forbidden('/v1/audit?limit=1')) return { role: 'viewer', tokenId };
  return { role: 'admin', tokenId };
}

const ROLE_KEY = 'cc.role';

export function AuthProvider({ children }: { children: ReactNode }) {
  const qc = useQueryClient();
  const [token, setTok] = useState<string | null>(() => getToken());
  const [role, setRole] = useState<RoleName>(() => (sessionStorage.getItem(ROLE_KEY) as RoleName) || 'unknown');
  const [tokenId, setTokenId] = useState('');
  const [notice, setNotice] = useState('');

  const signOut = useCallback((why = '') => {
    clearToken();
    sessionStorage.removeItem(ROLE_KEY);
    setTok(null);
    setRole('unknown');
    setNotice(why);
    qc.clear();
  }, [qc]);

  useEffect(() => onSignedOut((m) => signOut(m)), [signOut]);

  // A session restored from storage: find the role again.
  useEffect(() => {
    if (token && role === 'unknown') {
      whoami().then((w) => { setRole(w.role); setTokenId(w.tokenId); sessionStorage.setItem(ROLE_KEY, w.role); })
        .catch((e) => { if (e instanceof ApiError && e.status === 401) signOut(e.message); });
    }
  }, [token, role, signOut]);

  const signIn = useCallback(async (t: string) => {
    setToken(t);
    try {
      const w = await whoami();
      sessionStorage.setItem(ROLE_KEY, w.role);
      setRole(w.role);
      setTokenId(w.tokenId);
      setNotice('');
      setTok(t);
    } catch (e) {
      clearToken();
      if (e instanceof ApiError && e.status === 401) {
        throw new ApiError(401, 'That token was refused: check that you pasted the whole token and that it is not revoked or expired.');
      }
      throw e;
    }
  }, []);

  const value = useMemo(() => ({ token, role, tokenId, notice, signIn, signOut }), [token, role, tokenId, notice, signIn, signOut]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): Auth {
  const a = useContext(AuthContext);
  if (!a) throw new Error('useAuth outside AuthProvider');
  return a;
}

/** What a role may do in the dashboard (the server checks again). */
export function can(role: RoleName, what: 'write' | 'jobs' | 'read' | 'exec' | 'audit'): boolean {
  switch (what) {
    case 'write': case 'exec': case 'audit': return role === 'admin';
    case 'jobs': return role === 'admin' || role === 'jobs';
    case 'read': return role === 'admin' || role === 'viewer';
  }
}

/** The pages of the main navigation a role may use (by their names).
 * Admins use every page; viewers every page but the audit trail (admin
 * only); jobs tokens the overview, jobs and queues. While the role is not
 * known yet, every page is offered (the API decides). */
export function mayUsePage(role: RoleName, page: string): boolean {
  switch (role) {
    case 'viewer': return page !== 'Audit';
    case 'jobs': return ['Overview', 'Jobs', 'Queues'].includes(page);
    case 'other': return page === 'Overview';
    default: return true;
  }
}
