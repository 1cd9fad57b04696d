// Routes of the dashboard (under /ui/).
import { lazy, Suspense, type ReactNode } from 'react';
import { Navigate, Route, Routes, useLocation } from 'react-router-dom';
import { useAuth } from './auth';
import { Layout } from './components/Layout';
import { Loading } from './components/common';
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

export function App() {
  return (
    <Routes>
      <Route path="/signin" element={<SignIn />} />
      <Route element={<Private><Layout /></Private>}>
        <Route index element={<Overview />} />
        <Route path="nodes" element={<Nodes />} />
        <Route path="nodes/:id" element={<NodeDetail />} />
        <Route path="services" element={<Services />} />
        <Route path="services/:id" element={<ServiceDetail />} />
        <Route path="containers" element={<Containers />} />
        <Route path="containers/:id" element={<ContainerDetail />} />
        <Route path="containers/:id/exec" element={<Suspense fallback={<Loading what="Loading the terminal" />}><Exec /></Suspense>} />
        <Route path="jobs" element={<Jobs />} />
        <Route path="jobs/:id" element={<JobDetail />} />
        <Route path="queues" element={<Queues />} />
        <Route path="images" element={<Images />} />
        <Route path="routes" element={<RoutesPage />} />
        <Route path="sites" element={<Sites />} />
        <Route path="certificates" element={<Certificates />} />
        <Route path="volumes" element={<Volumes />} />
        <Route path="tokens" element={<Tokens />} />
        <Route path="audit" element={<Audit />} />
        <Route path="settings" element={<Settings />} />
        <Route path="*" element={<NotFound />} />
      </Route>
    </Routes>
  );
}
