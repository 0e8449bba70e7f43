// Vendors uPlot into shared/assets/web (committed, so the Rust build needs no
// Node): index.html as is, app.js = uPlot (from npm, pinned in package-lock.json) + src/app.js,
// app.css = uPlot's stylesheet + src/app.css. No bundler: the page is plain JavaScript.
//
//   cd web && npm ci && npm run build
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'assets', 'web');
const require = createRequire(import.meta.url);
const uplotDir = join(dirname(require.resolve('uplot/package.json')), 'dist');
const uplotVersion = JSON.parse(readFileSync(require.resolve('uplot/package.json'), 'utf8')).version;
const read = (p) => readFileSync(p, 'utf8');

mkdirSync(out, { recursive: true });
const banner = `/* Built by web/build.mjs — do not edit; edit web/src and rebuild. uPlot ${uplotVersion} (MIT). */\n`;
// Only the vendored uPlot is written; the page's own sources are compiled in from src/ as they
// are (shared/src/api/web.rs joins them to these files).
writeFileSync(join(out, 'uplot.js'), `${banner}${read(join(uplotDir, 'uPlot.iife.min.js'))}`);
writeFileSync(join(out, 'uplot.css'), `${banner}${read(join(uplotDir, 'uPlot.min.css'))}`);
for (const f of ['uplot.js', 'uplot.css']) {
  console.log(`${f}: ${readFileSync(join(out, f)).length} bytes`);
}
