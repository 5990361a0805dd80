// Copies MQTT.js's browser bundle from node_modules (the version pinned in
// package.json) to ../static/vendor/mqtt.min.js, under a header naming the
// version and keeping the license. Run after changing the mqtt version:
//   npm run vendor
// The test "vendored MQTT.js matches the pinned package" fails until then.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const vendoredPath = join(here, '..', 'static', 'vendor', 'mqtt.min.js');

export function vendoredBundle() {
  const pkgDir = join(here, 'node_modules', 'mqtt');
  const { version } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  const license = readFileSync(join(pkgDir, 'LICENSE.md'), 'utf8').replaceAll('*/', '* /').trim();
  const bundle = readFileSync(join(pkgDir, 'dist', 'mqtt.min.js'), 'utf8');
  const header = [
    '/*!',
    ` * MQTT.js ${version}: dist/mqtt.min.js of the npm package "mqtt" ${version},`,
    ' * vendored for the inboxmq web client by web/e2e/vendor.js (do not edit).',
    ' *',
    ...license.split('\n').map((l) => (l ? ` * ${l}` : ' *')),
    ' */',
    '',
  ].join('\n');
  return header + bundle;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(vendoredPath, vendoredBundle());
  console.log(`wrote ${vendoredPath}`);
}
