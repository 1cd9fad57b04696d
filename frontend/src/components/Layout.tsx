// The frame of every signed-in page: skip link, header, main navigation.
import { useEffect, useRef, useState } from 'react';
import { NavLink, Outlet, useLocation } from 'react-router-dom';
import { mayUsePage, useAuth } from '../auth';
import { currentTheme, toggleTheme } from '../theme';

export const NAV: [string, string][] = [
  ['/', 'Overview'], ['/nodes', 'Nodes'], ['/services', 'Services'], ['/containers', 'Containers'],
  ['/jobs', 'Jobs'], ['/queues', 'Queues'], ['/images', 'Images'], ['/routes', 'Routes'],
  ['/sites', 'Sites'], ['/certificates', 'Certificates'], ['/volumes', 'Volumes'], ['/tokens', 'Tokens'],
  ['/audit', 'Audit'], ['/settings', 'Settings'],
];

export function ThemeButton() {
  const [theme, setTheme] = useState(currentTheme);
  return (
    <button type="button" className="secondary" onClick={() => setTheme(toggleTheme())} title={`The ${theme} theme is on: switch to the ${theme === 'dark' ? 'light' : 'dark'} one`}>
      Theme
    </button>
  );
}

export function Layout() {
  const { role, signOut } = useAuth();
  const [open, setOpen] = useState(false);
  // After a navigation, focus goes to the new page's content (as a page
  // load would put it at the top), for keyboard and screen reader users.
  const { pathname } = useLocation();
  const main = useRef<HTMLElement>(null);
  const first = useRef(true);
  useEffect(() => {
    if (first.current) { first.current = false; return; }
    main.current?.focus();
  }, [pathname]);
  return (
    <div className="app">
      <a className="skip" href="#main">Skip to content</a>
      <header className="top">
        <span className="brand">Container Codes</span>
        <button type="button" className="secondary menu-toggle" aria-expanded={open} aria-controls="main-nav" onClick={() => setOpen(!open)}>
          Menu
        </button>
        <span className="spacer" />
        <span className="role" title="The role of the token you signed in with">Role: {role === 'unknown' ? '…' : role}</span>
        <ThemeButton />
        <button type="button" onClick={() => signOut('')}>Sign out</button>
      </header>
      <div className="body">
        <nav aria-label="Main" id="main-nav" className={open ? 'open' : ''}>
          <ul>
            {NAV.filter(([, name]) => mayUsePage(role, name)).map(([to, name]) => (
              <li key={to}>
                <NavLink to={to} end={to === '/'} onClick={() => setOpen(false)}>{name}</NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" tabIndex={-1} ref={main}>
          <Outlet />
        </main>
      </div>
    </div>
  );
}
