/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The API the dev server forwards to: `make dev`'s control plane unless
// CC_API says otherwise.
const api = process.env.CC_API || 'https://127.0.0.1:7443';

// secure: false accepts the dev cluster's self-signed API certificate. The
// dev proxy runs only on the developer's own machine (npm run dev, make
// ui-dev), never in a build: the built dashboard is served by the control
// plane itself, on its own origin.
// The exec WebSocket checks that its Origin is the API's own host: the
// proxy presents the API's origin for the sockets it forwards. A watch
// that has nothing to say yet has sent its headers already: they are
// passed on at once (Node holds them until the first byte otherwise), so
// that the page shows the stream open.
type ProxyServer = {
  on(ev: 'proxyReqWs', fn: (req: { setHeader(k: string, v: string): void }) => void): void;
  on(ev: 'proxyRes', fn: (res: unknown, req: unknown, out: { headersSent: boolean; flushHeaders(): void }) => void): void;
};
const proxied = {
  target: api,
  changeOrigin: true,
  secure: false,
  ws: true,
  configure: (proxy: ProxyServer) => {
    proxy.on('proxyReqWs', (req) => req.setHeader('Origin', new URL(api).origin));
    proxy.on('proxyRes', (_res, _req, out) => {
      setImmediate(() => { if (!out.headersSent) out.flushHeaders(); });
    });
  },
};

// The policy the control plane serves the dashboard with; `npm run
// preview` serves the build with it too, so that a violation shows before
// the Go side embeds the build.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

export default defineConfig({
  base: '/ui/',
  plugins: [react()],
  build: {
    outDir: '../controlplane/ui/dist',
    emptyOutDir: false,
    assetsDir: 'assets',
    sourcemap: false,
    // The build prints each chunk's size and gzipped size.
    reportCompressedSize: true,
  },
  server: {
    proxy: {
      '/v1': proxied,
      '/healthz': proxied,
      '/readyz': proxied,
      '/metrics': proxied,
    },
  },
  preview: {
    proxy: {
      '/v1': proxied,
      '/healthz': proxied,
      '/readyz': proxied,
      '/metrics': proxied,
    },
    headers: { 'Content-Security-Policy': csp },
  },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    testTimeout: 60_000,
  },
});
