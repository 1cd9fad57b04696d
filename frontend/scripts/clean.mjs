// Removes the previous build's index.html and assets from the Go package's
// dist folder (vite's emptyOutDir is off so that dist/.keep and the
// precompressed files' folder stay a Go build's business).
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'controlplane', 'ui', 'dist');
for (const name of ['index.html', 'assets']) {
  rmSync(join(dist, name), { recursive: true, force: true });
}
