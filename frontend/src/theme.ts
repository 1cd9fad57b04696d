// Light and dark themes: the system's preference, or the user's choice
// (kept in localStorage; it is not a secret).
export type Theme = 'light' | 'dark';
const KEY = 'cc.theme';

export function systemTheme(): Theme {
  return typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

export function currentTheme(): Theme {
  const t = document.documentElement.dataset.theme;
  if (t === 'light' || t === 'dark') return t;
  return systemTheme();
}

export function applyStoredTheme(): void {
  let t: string | null = null;
  try { t = localStorage.getItem(KEY); } catch { /* none */ }
  if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
}

export function toggleTheme(): Theme {
  const next: Theme = currentTheme() === 'dark' ? 'light' : 'dark';
  document.documentElement.dataset.theme = next;
  try { localStorage.setItem(KEY, next); } catch { /* none */ }
  return next;
}
