import { afterEach } from 'vitest';
import { cleanup, configure } from '@testing-library/react';

// Patience for a busy machine (make test runs beside the Go tests): the
// tests wait for what the page shows, never for a time.
configure({ asyncUtilTimeout: 15_000 });

afterEach(() => {
  cleanup();
  sessionStorage.clear();
});

// jsdom has no layout: a ResizeObserver that reports nothing.
class RO {
  observe() {}
  unobserve() {}
  disconnect() {}
}
(globalThis as unknown as { ResizeObserver: unknown }).ResizeObserver ??= RO;
