// Test harness: the real inboxmq binary on free loopback ports, Debian's
// Chromium driven by playwright-core, and small helpers for the tests.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');

// INBOXMQ_BIN: the binary to test (make test-web builds bin/inboxmq).
export const bin = process.env.INBOXMQ_BIN || join(root, 'bin', 'inboxmq');
// CHROMIUM: Debian's chromium; playwright-core never downloads a browser.
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
// Screenshots of every step land here (gitignored).
export const artifacts = process.env.WEB_ARTIFACTS || join(root, 'artifacts', 'web');

export const ADMIN_PASSWORD = `admin-${randomBytes(9).toString('base64url')}`;

// startBroker runs the binary with a generated config: loopback listeners on
// port 0 (the bound addresses are read from its "inboxmq started" line), web
// client and dev login on, no per-IP or message rate limits, and an admin
// account whose bcrypt hash comes from "inboxmq hash-password". websocket
// sets the WebSocket listener's address, mqttURL the page's web.mqtt_url.
export async function startBroker({ websocket = '127.0.0.1:0', mqttURL = '' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'inboxmq-web-'));
  const hash = spawnSync(bin, ['hash-password'], { input: `${ADMIN_PASSWORD}\n`, encoding: 'utf8' });
  if (hash.status !== 0) throw new Error(`${bin} hash-password failed: ${hash.error || hash.stderr}`);
  const config = join(dir, 'inboxmq.yaml');
  writeFileSync(
    config,
    `data_dir: ${JSON.stringify(join(dir, 'data'))}
log:
  level: info
listeners:
  mqtt: {address: "127.0.0.1:0"}
  websocket: {address: ${JSON.stringify(websocket)}, path: /mqtt}
  http: {address: "127.0.0.1:0"}
  admin: {address: "127.0.0.1:0"}
auth:
  jwt_secret: ${JSON.stringify(randomBytes(32).toString('hex'))}
  accounts:
    - {name: admin, password_hash: ${JSON.stringify(hash.stdout.trim())}, role: admin}
limits:
  connections_per_ip: 0   # the tests connect fast from one address
  message_rate: 0
web:
  enabled: true
  dev_login: true
  mqtt_url: ${JSON.stringify(mqttURL)}
`,
    { mode: 0o600 },
  );

  const proc = spawn(bin, ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise((res) => proc.once('exit', res));
  const addrs = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`inboxmq did not start:\n${log}`)), 30000);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      log += chunk;
      const m = /msg="inboxmq started" mqtt=(\S+) websocket=(\S+) http=(\S+) admin=(\S+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        res({ mqtt: m[1], websocket: m[2], http: m[3], admin: m[4] });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`inboxmq exited (${code}) before listening:\n${log}`));
    });
  });
  return {
    ...addrs,
    url: `http://${addrs.http}/`,
    // The admin listener: /metrics and the admin API (kick, notices, online).
    adminUrl: `http://${addrs.admin}/`,
    log: () => log,
    async stop() {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// freePort is a loopback TCP port that was free a moment ago.
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // Playwright gives every launch a fresh profile (--user-data-dir) of its own.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

// A phone-sized browser context: what the page must look right on.
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

// openPage opens the web client in a new context, recording the page's
// errors (uncaught exceptions, console errors, CSP violations included).
export async function openPage(browser, url, { route } = {}) {
  const context = await browser.newContext(PHONE);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  if (route) await route(page);
  await page.goto(url);
  return { context, page, errors };
}

// signIn opens the page and signs in as uid with the dev login, then waits
// for the MQTT connection.
export async function signIn(browser, url, uid, options) {
  const user = await openPage(browser, url, options);
  await user.page.fill('#dev-uid', uid);
  await user.page.click('#dev-form button[type=submit]');
  await user.page.waitForSelector('#status[data-state="online"]');
  user.uid = uid;
  return user;
}

let shots = 0;

// resetArtifacts empties the screenshot folder, so that it shows one run.
export function resetArtifacts() {
  mkdirSync(artifacts, { recursive: true });
  for (const f of readdirSync(artifacts)) {
    if (f.endsWith('.png') || f === 'broker.log') rmSync(join(artifacts, f));
  }
}

// shot saves a screenshot of the page as the next numbered artifact, with
// animations run to their end.
export async function shot(page, name) {
  shots++;
  const path = join(artifacts, `${String(shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path, animations: 'disabled' });
  return path;
}

// until waits for fn (run in the page) to return something truthy.
export async function until(page, fn, arg, timeout = 15000) {
  const handle = await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  return handle.jsonValue();
}

// texts returns the message texts shown in the open conversation, in order.
export function texts(page) {
  return page.$$eval('#messages .msg .bubble', (els) => els.map((e) => e.textContent));
}

export async function devToken(url, uid) {
  const res = await fetch(new URL('dev/token', url), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ uid }),
  });
  if (!res.ok) throw new Error(`dev token for ${uid}: ${res.status} ${await res.text()}`);
  return (await res.json()).token;
}

export async function apiGet(url, token, path) {
  const res = await fetch(new URL(`api/v1${path}`, url), { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

export function mosquittoPub(broker, topic, message) {
  const [host, port] = broker.mqtt.split(/:(?=\d+$)/);
  const r = spawnSync('mosquitto_pub', ['-h', host, '-p', port, '-u', 'admin', '-P', ADMIN_PASSWORD, '-q', '1', '-t', topic, '-m', message], {
    encoding: 'utf8',
    timeout: 15000,
  });
  if (r.status !== 0) throw new Error(`mosquitto_pub: ${r.error || r.stderr}`);
}
