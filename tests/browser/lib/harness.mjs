// Starts the Pendo simulator and `pendo-sync serve` (the debug binaries cargo builds) and a
// headless Debian Chromium through playwright-core; stops them all afterwards.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, 'target');
export const BIN = {
  sim: process.env.PENDO_SIM_BIN || join(targetDir, 'debug', 'pendo-sim'),
  sync: process.env.PENDO_SYNC_BIN || join(targetDir, 'debug', 'pendo-sync'),
};
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const PENDO_KEY = 'browser-test-integration-key';
// Screenshots go to out/ (ignored by git); `make test-browser SCREENSHOTS=1` refreshes the
// committed ones in screenshots/ that README.md shows.
export const SCREENSHOTS = join(here, '..', process.env.UPDATE_SCREENSHOTS ? 'screenshots' : 'out');

/** Tokens (16+ characters) per tenant and role, handed to `serve` as PENDO_SYNC_TOKENS. */
export const TOKENS = {
  flowAdmin: 'flow-admin-token-000001',
  badKeyAdmin: 'badkey-admin-token-0001',
  teamAdmin: 'team-admin-token-000001',
  teamMember: 'team-member-token-00001',
  resyncAdmin: 'resync-admin-token-0001',
  formsAdmin: 'forms-admin-token-00001',
  layoutAdmin: 'layout-admin-token-0001',
  pesAdmin: 'pes-admin-token-0000001',
  directoryAdmin: 'directory-admin-token-01',
  unmatchedAdmin: 'unmatched-admin-token-01',
  gaplessAdmin: 'gapless-admin-token-0001',
};
const TOKEN_SPEC = [
  `${TOKENS.flowAdmin}:flow:admin`, `${TOKENS.badKeyAdmin}:badkey:admin`, `${TOKENS.teamAdmin}:team:admin`,
  `${TOKENS.teamMember}:team:member`, `${TOKENS.resyncAdmin}:resync:admin`, `${TOKENS.formsAdmin}:forms:admin`,
  `${TOKENS.layoutAdmin}:layout:admin`, `${TOKENS.pesAdmin}:pes:admin`, `${TOKENS.directoryAdmin}:directory:admin`, `${TOKENS.unmatchedAdmin}:unmatched:admin`,
  `${TOKENS.gaplessAdmin}:gapless:admin`,
].join(',');

/** Spawns a binary and resolves with the first `listening on http://…` address it prints. */
function startServer(bin, args, env, children) {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`cargo build -p local -p pendo-sim --bins\` first`);
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let log = '';
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`${bin} did not start in 30 s:\n${log}`)), 30_000);
    const onData = (buf) => {
      log += buf.toString();
      const m = /listening on (http:\/\/[0-9.:]+)/.exec(log);
      if (m) { clearTimeout(timer); resolvePromise({ child, url: m[1], log: () => log }); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (b) => { log += b.toString(); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${bin} exited with ${code}:\n${log}`)); });
  });
}

export async function startAll() {
  const data = mkdtempSync(join(tmpdir(), 'pendo-sync-browser-'));
  const children = [];
  let browser = null;
  const stop = async () => {
    if (browser) await browser.close().catch(() => {});
    for (const p of children) {
      p.removeAllListeners('exit');
      p.kill('SIGINT');
    }
    await new Promise((r) => { setTimeout(r, 300); });
    for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    rmSync(data, { recursive: true, force: true });
  };
  try {
    const sim = await startServer(BIN.sim, ['--preset', 'small', '--key', PENDO_KEY, '--listen', '127.0.0.1:0'], {}, children);
    const serve = await startServer(BIN.sync, ['serve', '--data', data, '--listen', '127.0.0.1:0', '--pendo-base-url', sim.url, '--workers', '2'],
      { PENDO_SYNC_TOKENS: TOKEN_SPEC, RUST_LOG: 'warn' }, children);
    // Playwright gives the browser a fresh profile directory of its own (the user-data-dir).
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    return { sim: sim.url, base: serve.url, browser, stop, serveLog: serve.log };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Calls the configurator API directly (set-up and independent checks). */
export async function api(base, token, method, path, body) {
  const resp = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  return { status: resp.status, body: text ? JSON.parse(text) : null };
}

/** A fresh page at 1280×800 that fails the test on any page error or console error. */
export async function newPage(browser, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A failed API call shows as a console error for its HTTP status; those the tests provoke
    // on purpose (the bad key's 422) are expected, so only script errors count.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('dialog', (d) => d.accept());
  return { page, context, problems };
}
