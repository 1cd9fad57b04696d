// Routes of the dashboard (under /ui/).
import { lazy, Suspense, type ReactNode } from 'react';
import { Navigate, Route, Routes, useLocation } from 'react-router-dom';
import { mayUsePage, useAuth } from './auth';
import { Layout } from './components/Layout';
import { Loading, Page } from './components/common';
import { SignIn } from './pages/SignIn';
import { Overview } from './pages/Overview';
import { Nodes, NodeDetail } from './pages/Nodes';
import { Services, ServiceDetail } from './pages/Services';
import { Containers, ContainerDetail } from './pages/Containers';
import { Jobs, JobDetail } from './pages/Jobs';
import { Queues } from './pages/Queues';
import { Images } from './pages/Images';
import { Routes as RoutesPage } from './pages/Routes';
import { Sites } from './pages/Sites';
import { Certificates } from './pages/Certificates';
import { Volumes } from './pages/Volumes';
import { Tokens } from './pages/Tokens';
import { Audit } from './pages/Audit';
import { Settings } from './pages/Settings';
import { NotFound } from './pages/NotFound';

// The terminal (xterm.js) is its own chunk, loaded on the exec page only.
const Exec = lazy(() => import('./pages/Exec'));

function Private({ children }: { children: ReactNode }) {
  const { token } = useAuth();
  const loc = useLocation();
  if (!token) return <Navigate to="/signin" replace state={{ from: loc.pathname + loc.search }} />;
  return <>{children}</>;
}

/** Gate shows a page only to a role that may use it; others get a plain
 * note instead of the API's refusals. */
function Gate({ page, children }: { page: string; children: ReactNode }) {
  const { role } = useAuth();
  if (mayUsePage(role, page)) return <>{children}</>;
  return (
    <Page title={page}>
      <p className="notice">Your token's role ({role}) may not use this page. Sign in with another token to use it.</p>
    </Page>
  );
}

export function App() {
  return (
    <Routes>
      <Route path="/signin" element={<SignIn />} />
      <Route element={<Private><Layout /></Private>}>
        <Route index element={<Overview />} />
        <Route path="nodes" element={<Gate page="Nodes"><Nodes /></Gate>} />
        <Route path="nodes/:id" element={<Gate page="Nodes"><NodeDetail /></Gate>} />
        <Route path="services" element={<Gate page="Services"><Services /></Gate>} />
        <Route path="services/:id" element={<Gate page="Services"><ServiceDetail /></Gate>} />
        <Route path="containers" element={<Gate page="Containers"><Containers /></Gate>} />
        <Route path="containers/:id" element={<Gate page="Containers"><ContainerDetail /></Gate>} />
        <Route path="containers/:id/exec" element={<Gate page="Containers"><Suspense fallback={<Loading what="Loading the terminal" />}><Exec /></Suspense></Gate>} />
        <Route path="jobs" element={<Gate page="Jobs"><Jobs /></Gate>} />
        <Route path="jobs/:id" element={<Gate page="Jobs"><JobDetail /></Gate>} />
        <Route path="queues" element={<Gate page="Queues"><Queues /></Gate>} />
        <Route path="images" element={<Gate page="Images"><Images /></Gate>} />
        <Route path="routes" element={<Gate page="Routes"><RoutesPage /></Gate>} />
        <Route path="sites" element={<Gate page="Sites"><Sites /></Gate>} />
        <Route path="certificates" element={<Gate page="Certificates"><Certificates /></Gate>} />
        <Route path="volumes" element={<Gate page="Volumes"><Volumes /></Gate>} />
        <Route path="tokens" element={<Gate page="Tokens"><Tokens /></Gate>} />
        <Route path="audit" element={<Gate page="Audit"><Audit /></Gate>} />
        <Route path="settings" element={<Gate page="Settings"><Settings /></Gate>} />
        <Route path="*" element={<NotFound />} />
      </Route>
    </Routes>
  );
}
