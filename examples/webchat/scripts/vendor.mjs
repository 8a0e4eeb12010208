// Copies the browser bundle of Strophe.js and its licence from node_modules
// into static/vendor, so that the page (and the Go binary that embeds it)
// needs no CDN and no npm at run time. Run it with `npm run vendor` after
// `npm ci` whenever the pinned version in package.json changes.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const src = join(root, 'node_modules', 'strophe.js');
const installed = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8'));
const pinned = pkg.dependencies['strophe.js'];
if (installed.version !== pinned) {
  console.error(`strophe.js ${installed.version} is installed but package.json pins ${pinned}; run npm ci`);
  process.exit(1);
}

const out = join(root, 'static', 'vendor');
mkdirSync(out, { recursive: true });
const files = [
  ['dist/strophe.umd.min.js', 'strophe.umd.min.js'],
  ['dist/strophe.umd.min.js.map', 'strophe.umd.min.js.map'],
  ['LICENSE.txt', 'LICENSE.txt'],
];
for (const [from, to] of files) {
  copyFileSync(join(src, from), join(out, to));
  console.log(`static/vendor/${to} <- node_modules/strophe.js/${from}`);
}
writeFileSync(join(out, 'VERSION'), `strophe.js ${installed.version}\n`);
console.log(`static/vendor/VERSION: strophe.js ${installed.version}`);
