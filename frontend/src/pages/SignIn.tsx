import { useState, type FormEvent } from 'react';
import { Navigate, useLocation, useNavigate } from 'react-router-dom';
import { errorMessage } from '../api/client';
import { useAuth } from '../auth';
import { ThemeButton } from '../components/Layout';
import { usePageTitle } from '../components/common';

export function SignIn() {
  usePageTitle('Sign in');
  const { token, notice, signIn } = useAuth();
  const nav = useNavigate();
  const loc = useLocation();
  const [value, setValue] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const from = (loc.state as { from?: string } | null)?.from || '/';
  if (token && !busy) return <Navigate to={from} replace />;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = value.trim();
    if (!t) { setError('Paste an API token first.'); return; }
    setBusy(true);
    setError('');
    try {
      await signIn(t);
      nav(from, { replace: true });
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" className="signin">
      <div className="signin-box">
        <h1>Sign in</h1>
        <p>Container Codes dashboard. Sign in with an API token: <code>ccctl token create --role viewer</code> makes one, and <code>make dev</code> writes its admin token to <code>.dev/data/admin.token</code>. The token stays in this tab only.</p>
        {notice ? <p className="notice" role="alert">{notice}</p> : null}
        <form onSubmit={submit} noValidate>
          <label htmlFor="token">API token</label>
          <input id="token" name="token" type="password" autoComplete="off" spellCheck={false}
            value={value} onChange={(e) => setValue(e.target.value)} aria-describedby={error ? 'signin-error' : undefined}
            aria-invalid={error ? true : undefined} />
          {error ? <p id="signin-error" className="error" role="alert">{error}</p> : null}
          <div className="row">
            <button type="submit" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
            <ThemeButton />
          </div>
        </form>
      </div>
    </main>
  );
}
