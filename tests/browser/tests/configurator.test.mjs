// The configurator page in a real browser (headless Debian Chromium via playwright-core), against
// `pendo-sync serve` and the Pendo simulator. Each test uses its own tenant of one server.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startAll, api, newPage, TOKENS, PENDO_KEY, SCREENSHOTS } from '../lib/harness.mjs';

const T = { timeout: 30_000 };
/** "1 chunk", "2 chunks": the page's plurals. */
const n = (k, one) => `${k} ${k === 1 ? one : `${one}s`}`;
let env;

before(async () => { env = await startAll(); mkdirSync(SCREENSHOTS, { recursive: true }); });
after(async () => { if (env) await env.stop(); });

/** The simulator's accounts, as companies in the tenant's directory (what an operator's system loads). */
async function loadCompanies(token) {
  const info = await (await fetch(`${env.sim}/_sim/info`)).json();
  const items = Array.from({ length: info.accounts }, (_, i) => ({ externalId: `acct-${String(i + 1).padStart(4, '0')}` }));
  const r = await api(env.base, token, 'PUT', '/v1/directory/companies', { items });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { accepted: info.accounts, errors: [] });
  return items.map((c) => c.externalId);
}

async function connectByApi(token) {
  const r = await api(env.base, token, 'PUT', '/v1/integration/connection', { key: PENDO_KEY, domain: 'app.pendo.io' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

describe('configurator page', () => {
  test('connect, add a Feature mapping, Sync now, and chart it with one point per synced day', { timeout: 180_000 }, async () => {
    const companies = await loadCompanies(TOKENS.flowAdmin);
    const { page, context, problems } = await newPage(env.browser);
    await page.goto(`${env.base}/#token=${TOKENS.flowAdmin}`);
    // The token leaves the address bar at once.
    await page.waitForFunction(() => location.hash === '', null, T);
    await page.locator('#connection-status').filter({ hasText: 'Not connected' }).waitFor(T);

    // Connect: the key is verified with Pendo; afterwards only its masked form shows.
    await page.getByLabel('Integration key').fill(PENDO_KEY);
    await page.getByLabel('Domain').selectOption('app.pendo.io');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('#connection-status').filter({ hasText: 'Connection is active' }).waitFor(T);
    assert.equal(await page.getByLabel('Integration key').inputValue(), '');
    assert.match(await page.locator('#connect-form').innerText(), new RegExp(`Stored key: \\*+${PENDO_KEY.slice(-4)}|Stored key: .*${PENDO_KEY.slice(-4)}`));
    assert.ok(!(await page.content()).includes(PENDO_KEY), 'the page never holds the stored key');

    // The Feature form offers the subscription's features (as Pendo lists them).
    const features = (await api(env.base, TOKENS.flowAdmin, 'GET', '/v1/discovery/features')).body;
    assert.ok(features.length > 0);
    const form = page.locator('#mapping-form');
    const featureSelect = form.getByLabel('Feature', { exact: true });
    await featureSelect.waitFor(T);
    assert.deepEqual(await featureSelect.locator('option').evaluateAll((os) => os.map((o) => o.value)), features.map((f) => f.id));
    const feature = features[0];
    await featureSelect.selectOption(feature.id);
    await form.getByLabel('Metric name', { exact: true }).fill('Feature clicks');
    await form.getByRole('button', { name: 'Add mapping' }).click();

    const row = page.locator('section.group[data-kind=feature] tbody tr').filter({ hasText: 'Feature clicks' });
    await row.waitFor(T);
    assert.equal(await row.locator('.last-synced').innerText(), 'never');
    assert.equal(await row.locator('.outcome').innerText(), 'never run');
    const mapping = (await api(env.base, TOKENS.flowAdmin, 'GET', '/v1/mappings')).body;
    const integ0 = (await api(env.base, TOKENS.flowAdmin, 'GET', '/v1/integration')).body;
    assert.equal(mapping.length, 1);
    assert.deepEqual(mapping[0].source, { kind: 'feature', featureId: feature.id, minutesMetric: null });

    // The Track event form offers the subscription's track types, as Pendo lists them (issue 30).
    const trackTypes = (await api(env.base, TOKENS.flowAdmin, 'GET', '/v1/discovery/track-types')).body;
    assert.ok(trackTypes.length > 0);
    const kindSelect = page.locator('#mapping-form select[name=kind]');
    assert.ok((await kindSelect.locator('option').allInnerTexts()).includes('Track events'));
    await kindSelect.selectOption('track');
    const trackSelect = page.locator('#mapping-form').getByLabel('Track event', { exact: true });
    await trackSelect.waitFor(T);
    assert.deepEqual(await trackSelect.locator('option').evaluateAll((os) => os.map((o) => o.value)), trackTypes.map((t) => t.id));
    // The Guide form offers the guides with their steps; completions only for a guide of several.
    const guides = (await api(env.base, TOKENS.flowAdmin, 'GET', '/v1/discovery/guides')).body;
    assert.ok(guides.some((g) => g.steps > 1) && guides.some((g) => g.steps === 1));
    assert.ok((await kindSelect.locator('option').allInnerTexts()).includes('Guides'));
    await kindSelect.selectOption('guide');
    const guideSelect = page.locator('#mapping-form').getByLabel('Guide', { exact: true });
    await guideSelect.waitFor(T);
    assert.deepEqual(await guideSelect.locator('option').evaluateAll((os) => os.map((o) => o.value)), guides.map((g) => g.id));
    const completions = page.locator('#mapping-form').getByLabel('Completions metric name');
    await guideSelect.selectOption(guides.find((g) => g.steps > 1).id);
    assert.equal(await completions.isVisible(), true);
    await guideSelect.selectOption(guides.find((g) => g.steps === 1).id);
    assert.equal(await completions.isVisible(), false);
    // The poll form offers every guide's polls, NPS first; an NPS poll on companies has a
    // trailing window and no mean.
    await kindSelect.selectOption('poll');
    const pollSelect = page.locator('#mapping-form').getByLabel('Poll', { exact: true });
    await pollSelect.waitFor(T);
    const polls = guides.flatMap((g) => g.polls);
    assert.equal(await pollSelect.locator('option').count(), polls.length);
    assert.match(await pollSelect.locator('option').first().innerText(), /\(NPS\)$/);
    assert.equal(await page.locator('#mapping-form').getByLabel('Trailing window (days)').isVisible(), true);
    assert.equal(await page.locator('#mapping-form').getByLabel('Mean metric name').isVisible(), false);
    await kindSelect.selectOption('feature');

    // Sync now, with live progress until the run finishes.
    // Record the live progress the row shows while the run goes on.
    await page.evaluate((id) => {
      window.progressSeen = [];
      new MutationObserver(() => {
        const slot = document.getElementById(`progress-${id}`);
        const bar = slot && slot.querySelector('progress');
        const text = slot && slot.querySelector('.progress-text');
        if (bar && text) window.progressSeen.push(`${bar.value}/${bar.max} ${text.textContent}`);
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    }, mapping[0].id);
    await row.getByRole('button', { name: 'Sync now: Feature clicks' }).click();
    await page.waitForFunction(() => {
      const cell = document.querySelector('section.group[data-kind=feature] .last-synced');
      return cell && /^\d{4}-\d{2}-\d{2}$/.test(cell.textContent);
    }, null, { timeout: 120_000 });
    const state = (await api(env.base, TOKENS.flowAdmin, 'GET', `/v1/mappings/${mapping[0].id}`)).body.state;
    const synced = page.locator('section.group[data-kind=feature] tbody tr').filter({ hasText: 'Feature clicks' });
    assert.equal(await synced.locator('.last-synced').innerText(), state.lastSyncedDay);
    const run = (await api(env.base, TOKENS.flowAdmin, 'GET', `/v1/runs/${state.lastRun.runId}`)).body;
    assert.equal(run.finished, true);
    assert.equal(run.chunksFailed, 0);
    // 90 days in chunks of at most 7 days; the row showed the run's progress up to its end.
    assert.equal(run.chunksTotal, Math.ceil(integ0.daysToSync / 7));
    const seen = await page.evaluate(() => window.progressSeen);
    assert.ok(seen.length > 0, 'progress was shown');
    // The run is queued, planned by a worker, then fetched: the row shows 'planning…' until it
    // has chunks, and their progress after (a small run may finish between two polls).
    assert.ok(seen.every((t) => /^\d+\/\d+ (queued…|planning…|running \(\d+ of \d+ chunks? done\)|ok: \d+ chunks?, \d+ values?)$/.test(t)), seen.join('; '));
    assert.ok(!seen.some((t) => t.includes('?')), seen.join('; '));
    assert.ok(seen.some((t) => new RegExp(`^\\d+/${run.chunksTotal} running \\(\\d+ of ${n(run.chunksTotal, 'chunk')} done\\)$`).test(t)) ||
      seen.some((t) => t.endsWith('planning…')), seen.join('; '));
    // Once finished, the bar goes and the outcome shows in the Last run column.
    assert.equal(await page.locator(`#progress-${mapping[0].id}`).innerText(), '');
    assert.equal(await synced.locator('.outcome').innerText(), `ok: ${n(run.chunksTotal, 'chunk')}, ${n(run.totals.valuesWritten, 'value')}`);
    await page.screenshot({ path: join(SCREENSHOTS, 'mapping-tab.png') });

    // The company with the most synced days; its series as the API returns it.
    const integ = (await api(env.base, TOKENS.flowAdmin, 'GET', '/v1/integration')).body;
    const last = state.lastSyncedDay;
    const first = new Date(`${last}T00:00:00Z`);
    first.setUTCDate(first.getUTCDate() - (integ.daysToSync - 1));
    const from = first.toISOString().slice(0, 10);
    // A company with values on several days but not on every day: its days without events.
    let best = null;
    for (const c of companies) {
      const s = (await api(env.base, TOKENS.flowAdmin, 'GET', `/v1/objects/company/${c}/series?metric=Feature%20clicks&from=${from}&to=${last}`)).body;
      if (s.length > 1 && s.length < integ.daysToSync && (!best || s.length > best.series.length)) best = { id: c, series: s };
    }
    assert.ok(best, 'the simulator has a company with clicks on some days but not all');
    const days = new Set(best.series.map((p) => p.day));
    assert.equal(days.size, best.series.length, 'one value per day (no app split)');
    // The server says which days the mapping synced.
    const metrics = (await api(env.base, TOKENS.flowAdmin, 'GET', `/v1/objects/company/${best.id}/metrics`)).body;
    assert.deepEqual(metrics, [{ metric: 'Feature clicks', app: '', mapping: 'Feature clicks', syncedFrom: from, syncedTo: last }]);

    // Shown from two days before the synced range: those two are gaps, the rest values or 0.
    const early = new Date(`${from}T00:00:00Z`);
    early.setUTCDate(early.getUTCDate() - 2);
    const shownFrom = early.toISOString().slice(0, 10);
    await page.getByRole('tab', { name: 'Metrics' }).click();
    const mform = page.locator('#metrics-form');
    await mform.getByLabel('Company', { exact: true }).selectOption(best.id);
    await mform.getByLabel('From').fill(shownFrom);
    await mform.getByLabel('To').fill(last);
    await mform.getByRole('button', { name: 'Show' }).click();
    const chart = page.locator('section.chart[data-metric="Feature clicks"]');
    await chart.waitFor(T);
    await page.waitForFunction(() => document.querySelector('section.chart[data-drawn]'), null, T);
    assert.equal(await chart.getAttribute('data-drawn'), String(best.series.length));
    assert.equal(await chart.getAttribute('data-zeros'), String(integ.daysToSync - best.series.length));
    assert.equal(await chart.getAttribute('data-lines'), '1');
    // uPlot drew a canvas, and the values table (its accessible twin) lists every day shown.
    assert.equal(await chart.locator('canvas').count(), 1);
    const rows = await chart.locator('table.values tbody tr').evaluateAll((trs) => trs.map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent]));
    const want = [];
    const byDay = new Map(best.series.map((p) => [p.day, String(p.value)]));
    for (let d = new Date(`${shownFrom}T00:00:00Z`); d.toISOString().slice(0, 10) <= last; d.setUTCDate(d.getUTCDate() + 1)) {
      const day = d.toISOString().slice(0, 10);
      want.push([day, day < from ? 'not synced' : (byDay.get(day) ?? '0')]);
    }
    assert.deepEqual(rows, want);
    assert.equal(want.filter(([, v]) => v === '0').length, integ.daysToSync - best.series.length);
    const sys = (await api(env.base, TOKENS.flowAdmin, 'GET', `/v1/objects/company/${best.id}/system`)).body;
    assert.equal(await page.locator('dl.system dd').innerText(), String(sys.usersActiveLast7Days ?? 0));
    await chart.scrollIntoViewIfNeeded();
    await chart.screenshot({ path: join(SCREENSHOTS, 'metric-chart.png') });
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('a refused key shows Pendo\'s exact message next to the key field and saves nothing', { timeout: 60_000 }, async () => {
    const { page, context, problems } = await newPage(env.browser);
    // Sign in by pasting the token, keyboard only.
    await page.goto(`${env.base}/`);
    await page.getByLabel('Token').waitFor(T);
    await page.keyboard.type(TOKENS.badKeyAdmin);
    await page.keyboard.press('Enter');
    await page.locator('#connection-status').filter({ hasText: 'Not connected' }).waitFor(T);

    await page.getByLabel('Integration key').fill('not-the-right-key-0000');
    await page.getByRole('button', { name: 'Connect' }).click();
    const err = page.locator('#connect-form .err[data-err="key"]');
    await page.waitForFunction(() => document.querySelector('#connect-form .err[data-err="key"]').textContent !== '', null, T);
    // The same request straight to the API: the page shows its message verbatim.
    const direct = await api(env.base, TOKENS.badKeyAdmin, 'PUT', '/v1/integration/connection', { key: 'not-the-right-key-0000', domain: 'app.pendo.io' });
    assert.equal(direct.status, 422);
    assert.equal(direct.body.error.code, 'pendo_key_rejected');
    assert.equal(await err.innerText(), direct.body.error.message);
    assert.equal(await page.getByLabel('Integration key').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.getByLabel('Integration key').inputValue(), 'not-the-right-key-0000', 'nothing typed is lost');
    assert.equal(await page.locator('#connection-status').innerText(), 'Not connected');
    assert.equal((await api(env.base, TOKENS.badKeyAdmin, 'GET', '/v1/integration')).body.status, 'notConnected');

    // Tabs work with the arrow keys.
    await page.getByRole('tab', { name: 'Mapping' }).focus();
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-apps');
    assert.equal(await page.locator('#pane-apps').isVisible(), true);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('a member reads everything, syncs mappings, and changes no admin setting (the roles of api/roles.rs)', { timeout: 60_000 }, async () => {
    await connectByApi(TOKENS.teamAdmin);
    const features = (await api(env.base, TOKENS.teamAdmin, 'GET', '/v1/discovery/features')).body;
    const created = await api(env.base, TOKENS.teamAdmin, 'POST', '/v1/mappings', { source: { kind: 'feature', featureId: features[0].id }, target: 'company', metricName: 'Team clicks' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { page, context, problems } = await newPage(env.browser);
    await page.goto(`${env.base}/#token=${TOKENS.teamMember}`);
    await page.locator('#connection-status').filter({ hasText: 'Connection is active' }).waitFor(T);
    assert.match(await page.locator('#who').innerText(), /team · member/);
    // The connection, the settings and Re-sync all: read, not changed.
    const before = (await api(env.base, TOKENS.teamMember, 'GET', '/v1/integration')).body;
    const days = page.getByLabel('Days to sync');
    assert.equal(await days.inputValue(), String(before.daysToSync));
    for (const control of [days, page.getByLabel('Timezone (IANA)'), page.getByLabel('Integration key'),
      page.getByRole('button', { name: 'Update' }), page.getByRole('button', { name: 'Replace key' }),
      page.locator('#resync-panel')]) {
      assert.equal(await control.isDisabled(), true);
    }
    assert.match(await page.locator('#connect-form').innerText(), /Only an admin can connect Pendo or replace its key\./);
    assert.match(await page.locator('#settings-form').innerText(), /Only an admin can change the settings\./);
    // A mapping: Sync now is the member's, Delete the admin's.
    const row = page.locator('section.group[data-kind=feature] tbody tr').filter({ hasText: 'Team clicks' });
    await row.waitFor(T);
    assert.equal(await row.getByRole('button', { name: 'Sync now: Team clicks' }).isDisabled(), false);
    assert.equal(await row.getByRole('button', { name: 'Delete Team clicks' }).isDisabled(), true);
    // The apps, segments and directory tabs: read-only, each saying why.
    for (const [tab, text] of [['Apps', /Only an admin can add apps or change their prefixes\./],
      ['Segments', /Only an admin can add, rename or remove segments\./],
      ['Directory', /Only an admin can change the directory/]]) {
      await page.getByRole('tab', { name: tab }).click();
      const pane = page.locator(`#pane-${tab.toLowerCase()}`);
      await pane.locator('.admin-only').waitFor(T);
      assert.match(await pane.innerText(), text);
      const enabled = await pane.locator('button:enabled, input:enabled, select:enabled, textarea:enabled').count();
      assert.equal(enabled, 0, `${tab}: every control is disabled`);
    }
    assert.deepEqual((await api(env.base, TOKENS.teamMember, 'GET', '/v1/integration')).body, before);
    // The admin of the same tenant may change the settings.
    await context.close();
    const admin = await newPage(env.browser);
    await admin.page.goto(`${env.base}/#token=${TOKENS.teamAdmin}`);
    const adminDays = admin.page.getByLabel('Days to sync');
    await adminDays.waitFor(T);
    assert.equal(await adminDays.isEditable(), true);
    assert.equal(await admin.page.locator('.admin-only').count(), 0);
    await adminDays.fill('14');
    await admin.page.getByRole('button', { name: 'Update' }).click();
    await admin.page.waitForFunction(() => document.querySelector('.toast') && document.querySelector('.toast').textContent === 'Settings saved', null, T);
    assert.equal((await api(env.base, TOKENS.teamAdmin, 'GET', '/v1/integration')).body.daysToSync, 14);
    assert.deepEqual([...problems, ...admin.problems], []);
    await admin.context.close();
  });

  test('a settings change raises the re-sync-required banner; Re-sync all clears it', { timeout: 120_000 }, async () => {
    await connectByApi(TOKENS.resyncAdmin);
    // The banner asks for a re-sync only once values exist: a mapping synced first.
    const features = (await api(env.base, TOKENS.resyncAdmin, 'GET', '/v1/discovery/features')).body;
    const made = await api(env.base, TOKENS.resyncAdmin, 'POST', '/v1/mappings', { source: { kind: 'feature', featureId: features[0].id }, target: 'company', metricName: 'Clicks' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const { runId } = (await api(env.base, TOKENS.resyncAdmin, 'POST', `/v1/mappings/${made.body.id}/sync`)).body;
    for (let k = 0; k < 300 && !(await api(env.base, TOKENS.resyncAdmin, 'GET', `/v1/runs/${runId}`)).body.finished; k += 1) {
      await new Promise((r) => { setTimeout(r, 200); });
    }
    assert.notEqual((await api(env.base, TOKENS.resyncAdmin, 'GET', `/v1/mappings/${made.body.id}`)).body.state.lastSyncedDay, null);
    const { page, context, problems } = await newPage(env.browser);
    await page.goto(`${env.base}/#token=${TOKENS.resyncAdmin}`);
    await page.locator('#connection-status').filter({ hasText: 'Connection is active' }).waitFor(T);
    const banner = page.locator('.banner');
    assert.equal(await banner.isVisible(), false);

    // An invalid field mapping: the message shows next to that field and nothing changes.
    await page.getByLabel('Email').fill('metadata.');
    await page.getByRole('button', { name: 'Update' }).click();
    const emailErr = page.locator('#settings-form .err[data-err="fieldMappings.email"]');
    await page.waitForFunction(() => document.querySelector('#settings-form .err[data-err="fieldMappings.email"]').textContent !== '', null, T);
    const refused = await api(env.base, TOKENS.resyncAdmin, 'PATCH', '/v1/integration/settings', { fieldMappings: { email: 'metadata.' } });
    assert.equal(refused.status, 400);
    assert.equal(await emailErr.innerText(), refused.body.error.message);
    assert.equal(await banner.isVisible(), false);

    await page.getByLabel('Email').fill('metadata.agent.email');
    await page.getByLabel('Timezone (IANA)').selectOption('America/New_York');
    await page.getByRole('button', { name: 'Update' }).click();
    await banner.filter({ hasText: 'Re-sync required' }).waitFor(T);
    const i = (await api(env.base, TOKENS.resyncAdmin, 'GET', '/v1/integration')).body;
    assert.equal(i.resyncRequired, true);
    assert.equal(i.fieldMappings.email, 'visitor.metadata.agent.email');

    // Readable on a narrow window: nothing overflows sideways, the banner still shows.
    await page.setViewportSize({ width: 400, height: 800 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1));
    assert.equal(await banner.isVisible(), true);
    await page.setViewportSize({ width: 1280, height: 800 });

    const gen = i.generation;
    await page.locator('#resync-banner').click();
    await banner.waitFor({ state: 'hidden', ...T });
    const after = (await api(env.base, TOKENS.resyncAdmin, 'GET', '/v1/integration')).body;
    assert.equal(after.resyncRequired, false);
    assert.equal(after.generation, gen + 1);
    await page.waitForFunction(() => document.querySelector('#resync-progress-panel[data-finished]'), null, { timeout: 60_000 });
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('a Re-sync all keeps the values shown until it is whole; a failed one says so and is discarded', { timeout: 180_000 }, async () => {
    const token = TOKENS.gaplessAdmin;
    const companies = await loadCompanies(token);
    await connectByApi(token);
    const features = (await api(env.base, token, 'GET', '/v1/discovery/features')).body;
    const made = await api(env.base, token, 'POST', '/v1/mappings', { source: { kind: 'feature', featureId: features[0].id }, target: 'company', metricName: 'Clicks' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const waitRun = async (runId) => {
      for (let k = 0; k < 300; k += 1) {
        const run = (await api(env.base, token, 'GET', `/v1/runs/${runId}`)).body;
        if (run.finished) return run;
        await new Promise((r) => { setTimeout(r, 200); });
      }
      throw new Error(`run ${runId} did not finish`);
    };
    await waitRun((await api(env.base, token, 'POST', `/v1/mappings/${made.body.id}/sync`)).body.runId);
    // What a user reads of a company with values: its metrics (with their synced range) and series.
    let company = null;
    for (const c of companies) {
      if ((await api(env.base, token, 'GET', `/v1/objects/company/${c}/metrics`)).body.length) { company = c; break; }
    }
    assert.ok(company, 'a company has values');
    const reads = async () => {
      const metrics = (await api(env.base, token, 'GET', `/v1/objects/company/${company}/metrics`)).body;
      const clicks = metrics.find((m) => m.metric === 'Clicks');
      const range = `from=${clicks.syncedFrom}&to=${clicks.syncedTo}`;
      const series = (await api(env.base, token, 'GET', `/v1/objects/company/${company}/series?metric=Clicks&${range}`)).body;
      return { metrics, series };
    };
    const before = await reads();
    assert.ok(before.series.length > 0);

    const { page, context, problems } = await newPage(env.browser);
    await page.goto(`${env.base}/#token=${token}`);
    await page.locator('#connection-status').filter({ hasText: 'Connection is active' }).waitFor(T);
    assert.match(await page.locator('.panel').innerText(), /The values you see stay until the rebuild is whole/);
    // Every aggregation refused: the re-sync's chunks all fail.
    const fault = await fetch(`${env.sim}/_sim/faults`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: '/api/v1/aggregation', kind: 'status', status: 400, message: 'invalid pipeline', times: 10000 }),
    });
    assert.ok(fault.ok, await fault.text());
    await page.locator('#resync-panel').click();
    await page.waitForFunction(() => document.querySelector('#resync-progress-panel[data-finished]'), null, { timeout: 60_000 });
    const pending = page.locator('#resync-pending');
    assert.match(await pending.innerText(), /the values shown are the previous ones until it is whole/);
    let i = (await api(env.base, token, 'GET', '/v1/integration')).body;
    assert.equal(i.resyncPending, true);
    assert.equal(i.shownGeneration, i.generation - 1);
    assert.deepEqual(await reads(), before, 'the failed re-sync hid or changed no value');

    await fetch(`${env.sim}/_sim/faults`, { method: 'DELETE' });
    await page.locator('#resync-discard').click();
    await pending.waitFor({ state: 'detached', ...T });
    assert.equal(await page.locator('#resync-discard').count(), 0);
    i = (await api(env.base, token, 'GET', '/v1/integration')).body;
    assert.deepEqual([i.resyncPending, i.shownGeneration], [false, i.generation]);
    assert.deepEqual(await reads(), before);

    // A whole re-sync: the notice shows while it runs, then goes, and the values are the new
    // generation's (the same data, so the same values).
    await page.locator('#resync-panel').click();
    await page.waitForFunction(() => document.querySelector('#resync-progress-panel[data-finished]'), null, { timeout: 60_000 });
    await pending.waitFor({ state: 'detached', ...T });
    i = (await api(env.base, token, 'GET', '/v1/integration')).body;
    assert.deepEqual([i.resyncPending, i.shownGeneration], [false, i.generation]);
    assert.deepEqual(await reads(), before);

    // One mapping's rebuild (after renaming its metric) whose chunks all fail: the row says the
    // old values are shown, and they are; Sync now completes it and the new name shows.
    const edited = await api(env.base, token, 'PUT', `/v1/mappings/${made.body.id}`, { source: made.body.source, target: 'company', metricName: 'Clicks v2' });
    assert.equal(edited.status, 200, JSON.stringify(edited.body));
    assert.equal(edited.body.rebuildRequired, true);
    // (A company's metrics name their mapping as it is now: read after the edit.)
    const edit = await reads();
    await page.reload();
    const row = page.locator(`tr[data-id="${made.body.id}"]`);
    await row.getByRole('button', { name: 'Rebuild' }).waitFor(T);
    const refused = await fetch(`${env.sim}/_sim/faults`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: '/api/v1/aggregation', kind: 'status', status: 400, message: 'invalid pipeline', times: 10000 }),
    });
    assert.ok(refused.ok, await refused.text());
    await row.getByRole('button', { name: 'Rebuild' }).click();
    const rebuilding = page.locator(`tr[data-id="${made.body.id}"] .tag.rebuilding`);
    await rebuilding.waitFor(T);
    assert.equal(await rebuilding.innerText(), 'rebuilding: old values shown');
    i = (await api(env.base, token, 'GET', '/v1/integration')).body;
    assert.deepEqual(i.rebuilding, [made.body.id]);
    const afterFailure = await reads();
    await fetch(`${env.sim}/_sim/faults`, { method: 'DELETE' });
    assert.deepEqual(afterFailure, edit, 'the failed rebuild hid or changed no value');
    await page.locator(`tr[data-id="${made.body.id}"]`).getByRole('button', { name: 'Sync now: Clicks v2' }).click();
    await rebuilding.waitFor({ state: 'detached', timeout: 60_000 });
    i = (await api(env.base, token, 'GET', '/v1/integration')).body;
    assert.deepEqual(i.rebuilding, []);
    const renamed = (await api(env.base, token, 'GET', `/v1/objects/company/${company}/metrics`)).body.map((m) => m.metric);
    assert.deepEqual(renamed, ['Clicks v2']);
    assert.deepEqual(problems.filter((p) => !/status of 409|status of 400/.test(p)), []);
    await context.close();
  });

  test('apps: the two permanent rows cannot be deleted; an added app can', { timeout: 60_000 }, async () => {
    const { page, context, problems } = await newPage(env.browser);
    await page.goto(`${env.base}/#token=${TOKENS.resyncAdmin}`);
    await page.getByRole('tab', { name: 'Apps' }).click();
    for (const id of ['-323232', 'unknown']) {
      const del = page.locator(`tr[data-app="${id}"]`).getByRole('button', { name: `App ${id} is permanent and cannot be deleted` });
      assert.equal(await del.isDisabled(), true);
    }
    // Pendo's apps are picked by name (issue 32); the table names them too.
    const pendoApps = (await api(env.base, TOKENS.resyncAdmin, 'GET', '/v1/discovery/apps')).body;
    const other = pendoApps.find((x) => x.id !== -323232);
    const pane = page.locator('#pane-apps');
    const picker = pane.getByLabel('Pendo app', { exact: true });
    await pane.locator(`option[value="${other.id}"]`).waitFor({ state: 'attached', ...T });
    await picker.selectOption({ label: `${other.name} (${other.id})` });
    await pane.getByLabel('Metric prefix').fill('Mobile');
    await pane.getByRole('button', { name: 'Add app' }).click();
    const row = page.locator(`tr[data-app="${other.id}"]`);
    await row.waitFor(T);
    await page.waitForFunction((t) => [...document.querySelectorAll('#pane-apps .app-name')].some((e) => e.textContent === t), `${other.name} (${other.id})`, T);
    // An app Pendo does not list is refused when typed through the API.
    const refused = await api(env.base, TOKENS.resyncAdmin, 'PUT', '/v1/apps/5550001', { prefix: 'Nope' });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.field, 'appId');
    await row.getByRole('button', { name: `Delete app ${other.id}` }).click();
    await row.waitFor({ state: 'detached', ...T });
    const apps = (await api(env.base, TOKENS.resyncAdmin, 'GET', '/v1/apps')).body.map((a) => a.appId);
    assert.ok(!apps.includes(String(other.id)));
    assert.ok(apps.includes('-323232') && apps.includes('unknown'));
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('the mapping form offers only valid choices: refused reports greyed with their reason, a live aggregation editor', { timeout: 60_000 }, async () => {
    await connectByApi(TOKENS.formsAdmin);
    const reports = (await api(env.base, TOKENS.formsAdmin, 'GET', '/v1/discovery/reports')).body;
    assert.ok(reports.compatible.length > 0 && reports.rejected.length > 0, 'the simulator has both kinds');
    const { page, context, problems } = await newPage(env.browser);
    await page.goto(`${env.base}/#token=${TOKENS.formsAdmin}`);
    const form = page.locator('#mapping-form');
    // PES (issue 32, defect 6): Pendo's apps by name, and no stray "null" in the form.
    const apps = (await api(env.base, TOKENS.formsAdmin, 'GET', '/v1/discovery/apps')).body;
    assert.equal(apps.length, 3, JSON.stringify(apps));
    await form.getByLabel('Kind').selectOption('pes');
    const appSel = form.getByLabel('App', { exact: true });
    await appSel.waitFor(T);
    assert.deepEqual(await appSel.locator('option').allTextContents(), apps.map((a) => `${a.name} (${a.id})`));
    assert.doesNotMatch(await form.innerText(), /\bnull\b/);
    await form.getByLabel('Kind').selectOption('report');
    const report = form.getByLabel('Report', { exact: true });
    await report.waitFor(T);
    const options = await report.locator('option').evaluateAll((os) => os.filter((o) => o.value).map((o) => [o.value, o.disabled, o.textContent]));
    assert.deepEqual(options.filter((o) => !o[1]).map((o) => o[0]), reports.compatible.map((r) => r.id));
    assert.deepEqual(options.filter((o) => o[1]).map((o) => o[2]), reports.rejected.map((r) => `${r.name} — ${r.reason}`));
    const rep = reports.compatible[0];
    await report.selectOption(rep.id);
    const columns = await form.locator('.field-metric label').allInnerTexts();
    assert.equal(columns.length, rep.numericColumns.length);
    // The names the metrics will be stored under show before saving: one column, the mapping's
    // name; several, "{name} - {column}" (the server's rule; its metricNames after saving).
    const storedAs = form.locator('.stored-as');
    await form.getByLabel('Metric name', { exact: true }).fill('Account');
    assert.equal(await storedAs.innerText(), 'Stored as the metric: "Account".');
    assert.ok(rep.numericColumns.length >= 2, 'a compatible report with two numeric columns');
    await form.locator('.field-metric input[type=checkbox]').nth(1).check();
    const two = rep.numericColumns.slice(0, 2).map((c) => `"Account - ${c.title || c.field}"`).join(', ');
    assert.equal(await storedAs.innerText(), `Stored as 2 metrics: ${two}.`);

    await form.getByLabel('Kind').selectOption('aggregation');
    const editor = form.getByLabel('Aggregation pipeline (JSON)');
    const err = form.locator('.err[data-err="pipeline"]');
    await editor.fill('[{"source": ');
    await page.waitForFunction(() => /^not valid JSON/.test(document.querySelector('#mapping-form .err[data-err="pipeline"]').textContent), null, T);
    const bad = [{ source: { events: null } }];
    await editor.fill(JSON.stringify(bad));
    const refused = await api(env.base, TOKENS.formsAdmin, 'POST', '/v1/discovery/aggregation-fields', { pipeline: bad });
    assert.equal(refused.status, 400);
    await page.waitForFunction((m) => document.querySelector('#mapping-form .err[data-err="pipeline"]').textContent === m, refused.body.error.message, T);
    assert.equal(await editor.getAttribute('aria-invalid'), 'true');
    const good = [
      { source: { events: null, timeSeries: { period: 'dayRange', first: 'now()', count: 1 } } },
      { group: { group: ['visitorId'], fields: { n: { sum: 'numEvents' }, accountId: { first: 'accountId' } } } },
      { select: { accountId: 'accountId', visitorId: 'visitorId', metric1: 'n' } },
    ];
    // The live check knows the target: an output without accountId is refused for companies
    // with the server's own message (the one a save would give).
    const noAccount = [good[0], good[1], { select: { visitorId: 'visitorId', metric1: 'n' } }];
    const live = await api(env.base, TOKENS.formsAdmin, 'POST', '/v1/discovery/aggregation-fields', { pipeline: noAccount, target: 'company' });
    assert.equal(live.status, 400);
    await editor.fill(JSON.stringify(noAccount));
    await page.waitForFunction((m) => document.querySelector('#mapping-form .err[data-err="pipeline"]').textContent === m, live.body.error.message, T);
    await editor.fill(JSON.stringify(good, null, 2));
    await form.getByText('Valid: 1 mappable field(s).').waitFor(T);
    assert.equal(await err.innerText(), '');
    // The dry run: Pendo runs it once for the last complete day; its rows and first rows show.
    await form.getByRole('button', { name: 'Run it for one day' }).click();
    await form.locator('.trial-result').waitFor(T);
    const trial = (await api(env.base, TOKENS.formsAdmin, 'POST', '/v1/discovery/pipeline-check', { pipeline: good, target: 'company' })).body.trial;
    assert.ok(trial.rows > 1, 'the simulator has rows for the day');
    assert.equal(await form.locator('.trial-result p').innerText(), `${trial.day}: ${trial.rows} rows with the fields ${trial.outputFields.join(', ')}.`);
    assert.equal(await form.locator('.trial-result table.sample tbody tr').count(), trial.sample.length);
    assert.deepEqual(await form.locator('.trial-result table.sample thead th').allInnerTexts(), trial.outputFields);
    assert.deepEqual(await form.locator('.field-metric label').allInnerTexts(), ['metric1']);
    await form.getByLabel('Metric name for metric1').fill('Events per day');
    await form.getByLabel('Metric name', { exact: true }).fill('Custom events');
    assert.equal(await storedAs.innerText(), 'Stored as the metric: "Custom events".');
    await form.getByRole('button', { name: 'Add mapping' }).click();
    await page.locator('section.group[data-kind=aggregation] tbody tr').filter({ hasText: 'Custom events' }).waitFor(T);
    const created = (await api(env.base, TOKENS.formsAdmin, 'GET', '/v1/mappings')).body;
    assert.deepEqual(created.map((m) => [m.source.kind, m.metricName, m.source.fields, m.metricNames]), [['aggregation', 'Custom events', [{ field: 'metric1', metric: 'Events per day' }], ['Custom events']]]);
    // Edit it from the page (issue 32): the form opens filled with the mapping; a new name saves.
    const aggRow = page.locator('section.group[data-kind=aggregation] tbody tr').filter({ hasText: 'Custom events' });
    await aggRow.getByRole('button', { name: 'Edit Custom events' }).click();
    const editForm = page.locator('#edit-mapping-form');
    await editForm.waitFor(T);
    assert.equal(await editForm.getByLabel('Metric name', { exact: true }).inputValue(), 'Custom events');
    assert.deepEqual(JSON.parse(await editForm.getByLabel('Aggregation pipeline (JSON)').inputValue()), good);
    await editForm.getByText('Valid: 1 mappable field(s).').waitFor(T);
    assert.equal(await editForm.getByLabel('Metric name for metric1').inputValue(), 'Events per day');
    await editForm.getByLabel('Metric name', { exact: true }).fill('Custom events, renamed');
    await editForm.getByRole('button', { name: 'Save changes' }).click();
    await editForm.waitFor({ state: 'detached', ...T });
    const edited = (await api(env.base, TOKENS.formsAdmin, 'GET', '/v1/mappings')).body;
    assert.deepEqual(edited.map((m) => [m.id, m.metricName, m.source]), [[created[0].id, 'Custom events, renamed', created[0].source]]);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('the mapping tables read without sideways scroll at 1280×800 and each row shows its status', { timeout: 180_000 }, async () => {
    const token = TOKENS.layoutAdmin;
    await connectByApi(token);
    await loadCompanies(token);
    const features = (await api(env.base, token, 'GET', '/v1/discovery/features')).body;
    const pages = (await api(env.base, token, 'GET', '/v1/discovery/pages')).body;
    const reports = (await api(env.base, token, 'GET', '/v1/discovery/reports')).body;
    const add = async (body) => {
      const r = await api(env.base, token, 'POST', '/v1/mappings', { target: 'company', ...body });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body;
    };
    // Long names and ids, every kind, a segment tag and a rebuild tag: the widest rows there are.
    const synced = await add({ source: { kind: 'feature', featureId: features[0].id, minutesMetric: 'Minutes spent on the first feature of the web app' }, metricName: 'Clicks on the first feature of the web app, all apps together' });
    const gone = await add({ source: { kind: 'feature', featureId: features[1].id }, metricName: 'Clicks on a feature deleted later' });
    await add({ source: { kind: 'page', pageId: pages[0].id, minutesMetric: 'Page minutes' }, metricName: 'Page views', multiApp: true });
    const rep = reports.compatible[0];
    await add({ source: { kind: 'report', reportId: rep.id, columns: rep.numericColumns.map((c) => ({ field: c.field, metric: `${rep.name} — ${c.field}` })) }, metricName: rep.name });
    await add({ source: { kind: 'pes', appId: -323232, components: ['score', 'adoption', 'stickiness', 'growth'] }, metricName: 'Product engagement score of the web app' });
    const edited = await add({ source: { kind: 'page', pageId: pages[1].id }, metricName: 'Edited page views' });
    const editedAgain = await api(env.base, token, 'PUT', `/v1/mappings/${edited.id}`, { source: edited.source, target: 'company', metricName: 'Edited page views, renamed' });
    assert.equal(editedAgain.body.rebuildRequired, true);
    const syncAndWait = async (id) => {
      const { runId } = (await api(env.base, token, 'POST', `/v1/mappings/${id}/sync`)).body;
      for (let i = 0; i < 600; i += 1) {
        const run = (await api(env.base, token, 'GET', `/v1/runs/${runId}`)).body;
        if (run.finished) return run;
        await new Promise((r) => { setTimeout(r, 200); });
      }
      throw new Error(`run ${runId} did not finish`);
    };
    await syncAndWait(synced.id);
    // The second feature is deleted in Pendo: its next run leaves it out, and its row says why.
    const del = await fetch(`${env.sim}/_sim/objects/feature/${encodeURIComponent(features[1].id)}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    await syncAndWait(gone.id);

    const { page, context, problems } = await newPage(env.browser);
    await page.goto(`${env.base}/#token=${token}`);
    const rows = page.locator('table.mappings tbody tr');
    await page.waitForFunction(() => document.querySelectorAll('table.mappings tbody tr').length === 6, null, T);
    // Nothing scrolls sideways: the page, the main panel, any table of it.
    const overflow = await page.evaluate(() => [document.documentElement, ...document.querySelectorAll('.main, .main .table-wrap')]
      .filter((e) => e.scrollWidth > e.clientWidth + 1)
      .map((e) => `${e.className || e.tagName}: ${e.scrollWidth} > ${e.clientWidth}`));
    assert.deepEqual(overflow, []);
    // The status column is wide enough to read, and the same in every row.
    const widths = await rows.evaluateAll((trs) => trs.map((tr) => Math.round(tr.querySelector('td.status-cell').getBoundingClientRect().width)));
    assert.equal(widths.length, 6);
    assert.ok(widths.every((w) => w >= 240 && w === widths[0]), widths.join(', '));

    // The synced row: its run's outcome and numbers as the API gives them.
    const st = (await api(env.base, token, 'GET', `/v1/mappings/${synced.id}`)).body.state;
    const row = page.locator(`tr[data-id="${synced.id}"]`);
    assert.equal(await row.locator('.last-synced').innerText(), st.lastSyncedDay);
    assert.equal(await row.locator('.outcome').innerText(), `ok: ${n(st.lastRun.chunks, 'chunk')}, ${n(st.lastRun.valuesWritten, 'value')}`);
    const numbers = `${st.lastRun.rowsRead} rows read · ${st.lastRun.valuesWritten} values written`;
    assert.equal(await row.locator('.run-numbers').innerText(), numbers);
    assert.match(await row.locator('.run-facts').innerText(), /^Sync now, \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC · finished \d{2}:\d{2} UTC$/);
    if (st.lastRun.rowsSkipped) {
      assert.equal(await row.locator('details.skipped summary').innerText(), `${st.lastRun.rowsSkipped} rows skipped`);
    }
    // The deleted feature's row: failed, with the reason, after its last success.
    const gst = (await api(env.base, token, 'GET', `/v1/mappings/${gone.id}`)).body.state;
    assert.equal(gst.lastRun.outcome, 'failed');
    const grow = page.locator(`tr[data-id="${gone.id}"]`);
    assert.equal(await grow.locator('.outcome').innerText(), 'failed: not synced');
    assert.equal(await grow.locator('.run-error').innerText(), gst.lastRun.error);
    assert.match(gst.lastRun.error, new RegExp(`feature ${features[1].id} is not among the subscription's features any more`));
    assert.equal(await grow.locator('.last-ok').innerText(), 'no successful run yet');
    // Names, not ids (issue 32): the source column reads Pendo's names of the report, the
    // page and the PES app, and the metrics each stores; the ids are in the cell's title.
    const apps = (await api(env.base, token, 'GET', '/v1/discovery/apps')).body;
    const webApp = apps.find((x) => x.id === -323232).name;
    const mappings = (await api(env.base, token, 'GET', '/v1/mappings')).body;
    const source = (kind) => page.locator(`section.group[data-kind=${kind}] td.source`).first();
    await page.waitForFunction((n) => [...document.querySelectorAll('td.source')].some((c) => c.textContent.includes(n)), webApp, T);
    const pes = mappings.find((m) => m.source.kind === 'pes');
    assert.equal(await source('pes').innerText(), `PES of ${webApp}: PES, Adoption, Stickiness, Growth → ${pes.metricNames.join(', ')}`);
    const repMapping = mappings.find((m) => m.source.kind === 'report');
    assert.equal(await source('report').innerText(), `Report "${rep.name}": ${rep.numericColumns.map((c) => c.field).join(', ')} → ${repMapping.metricNames.join(', ')}`);
    assert.equal(await source('report').getAttribute('title'), `id ${rep.id}`);
    const pageCells = await page.locator('section.group[data-kind=page] td.source').allInnerTexts();
    assert.ok(pageCells.includes(`Page "${pages[0].name}" + minutes → Page minutes`), pageCells.join(' | '));
    for (const text of await page.locator('td.source').allInnerTexts()) {
      assert.ok(!/rpt-|app -323232/.test(text), text);
    }
    // An option that changes what a synced mapping's values mean says so before saving; declined,
    // nothing changes.
    let asked = null;
    page.removeAllListeners('dialog'); // the harness accepts every dialog; this one is declined
    page.once('dialog', (dlg) => { asked = dlg.message(); dlg.dismiss(); });
    const passive = row.getByLabel(`Passive? for ${synced.metricName}`);
    await passive.click();
    assert.equal(asked, `This changes what "${synced.metricName}" means: its values stay as they are until you click Rebuild on it (Sync now waits for that), and stay shown while it rebuilds, until the new ones are whole. Save?`);
    assert.equal(await passive.isChecked(), false);
    const still = (await api(env.base, token, 'GET', `/v1/mappings/${synced.id}`)).body;
    assert.deepEqual([still.passive, still.rebuildRequired], [false, false]);
    page.on('dialog', (d) => d.accept());
    // No label is cut at 1280 px (issue 32): the chosen option's text fits its select.
    const fits = (selector) => page.$eval(selector, (sel) => {
      const cs = getComputedStyle(sel);
      const ctx = document.createElement('canvas').getContext('2d');
      ctx.font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
      const text = sel.options[sel.selectedIndex] ? sel.options[sel.selectedIndex].text : '';
      const room = sel.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - 20; // the arrow
      return { text, width: Math.ceil(ctx.measureText(text).width), room: Math.floor(room) };
    });
    const tz = await fits('#settings-form select[name=timezone]');
    assert.ok(tz.width <= tz.room, JSON.stringify(tz));
    await page.getByRole('tab', { name: 'Metrics' }).click();
    await page.waitForFunction(() => document.querySelector('#metrics-form select[name=object] option'), null, T);
    const picker = await fits('#metrics-form select[name=object]');
    assert.ok(picker.width <= picker.room, JSON.stringify(picker));
    await page.getByRole('tab', { name: 'Mapping' }).click();
    await page.locator('.mapping-list').screenshot({ path: join(SCREENSHOTS, 'mapping-status.png') });
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('the company id field cannot leave accountId while a PES mapping exists: the reason shows next to it', { timeout: 60_000 }, async () => {
    const token = TOKENS.pesAdmin;
    await connectByApi(token);
    const pes = await api(env.base, token, 'POST', '/v1/mappings', { source: { kind: 'pes', appId: -323232, components: ['score'] }, target: 'company', metricName: 'Engagement' });
    assert.equal(pes.status, 201, JSON.stringify(pes.body));
    const before = (await api(env.base, token, 'GET', '/v1/integration')).body;
    const { page, context, problems } = await newPage(env.browser);
    await page.goto(`${env.base}/#token=${token}`);
    await page.locator('#connection-status').filter({ hasText: 'Connection is active' }).waitFor(T);
    const companyId = page.getByLabel('Company id');
    await companyId.fill('metadata.custom.region');
    await page.getByRole('button', { name: 'Update' }).click();
    await page.waitForFunction(() => document.querySelector('#settings-form .err[data-err="fieldMappings.companyId"]').textContent !== '', null, T);
    const direct = await api(env.base, token, 'PATCH', '/v1/integration/settings', { fieldMappings: { companyId: 'metadata.custom.region' } });
    assert.equal(direct.status, 400);
    assert.equal(direct.body.error.field, 'fieldMappings.companyId');
    assert.match(direct.body.error.message, new RegExp(`'Engagement' \\(${pes.body.id}\\)`));
    assert.equal(await page.locator('#settings-form .err[data-err="fieldMappings.companyId"]').innerText(), direct.body.error.message);
    assert.equal(await companyId.getAttribute('aria-invalid'), 'true');
    assert.equal(await companyId.inputValue(), 'metadata.custom.region', 'nothing typed is lost');
    assert.deepEqual((await api(env.base, token, 'GET', '/v1/integration')).body, before, 'nothing changed');
    assert.equal(await page.locator('.banner').isVisible(), false);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('the directory tab: a CSV upload adds companies, a preview counts what Pendo holds, an import fills the rest', { timeout: 120_000 }, async () => {
    const token = TOKENS.directoryAdmin;
    await connectByApi(token);
    const info = await (await fetch(`${env.sim}/_sim/info`)).json();
    const { page, context, problems } = await newPage(env.browser);
    await page.goto(`${env.base}/#token=${token}`);
    await page.locator('#connection-status').filter({ hasText: 'Connection is active' }).waitFor(T);
    await page.getByRole('tab', { name: 'Directory' }).click();
    await page.locator('#directory-sizes').filter({ hasText: 'In the directory: 0 companies' }).waitFor(T);

    // Upload: two companies, one named, one not.
    const form = page.locator('#upload-form');
    await form.getByLabel('Directory').selectOption('companies');
    await form.getByLabel('File').setInputFiles({ name: 'companies.csv', mimeType: 'text/csv', buffer: Buffer.from('externalId,name\nacct-0001,Acme Test\nacct-0002,\n') });
    await form.getByRole('button', { name: 'Upload' }).click();
    await page.locator('#upload-result').filter({ hasText: '2 of 2 rows stored.' }).waitFor(T);
    await page.locator('#directory-sizes').filter({ hasText: 'In the directory: 2 companies' }).waitFor(T);
    // A file with an unknown column is refused next to the file field, and stores nothing.
    await form.getByLabel('File').setInputFiles({ name: 'bad.csv', mimeType: 'text/csv', buffer: Buffer.from('externalId,plan\nacct-0003,gold\n') });
    await form.getByRole('button', { name: 'Upload' }).click();
    await page.waitForFunction(() => document.querySelector('#upload-form .err[data-err="header"]').textContent.includes("unknown column 'plan'"), null, T);
    assert.equal(await page.locator('#upload-result').innerText(), '', 'the earlier upload\'s result is gone');
    assert.equal((await api(env.base, token, 'GET', '/v1/directory/companies')).body.length, 2);

    // Preview: the other accounts would be new, acct-0002 gets its name, acct-0001 keeps its own.
    const card = page.locator('#import-card');
    await card.getByRole('button', { name: 'Preview (dry run)' }).click();
    const companies = page.locator('#import-result table[data-counts=Companies]');
    await companies.waitFor(T);
    const cell = async (table, row) => table.locator('tr').filter({ has: page.getByRole('rowheader', { name: row, exact: true }) }).locator('td').innerText();
    assert.equal(await cell(companies, 'New'), String(info.accounts - 2));
    assert.equal(await cell(companies, 'Filled in (empty fields)'), '1');
    assert.equal(await cell(companies, 'Unchanged'), '1');
    assert.equal((await api(env.base, token, 'GET', '/v1/directory/companies')).body.length, 2, 'a preview writes nothing');

    // Import: runs in the background; the page follows it to the end.
    await card.getByRole('button', { name: 'Import' }).click();
    await page.locator('#import-result [role=status]').filter({ hasText: 'Finished' }).waitFor({ timeout: 60_000 });
    const listed = (await api(env.base, token, 'GET', '/v1/directory/companies')).body;
    assert.equal(listed.length, info.accounts);
    assert.equal(listed.find((c) => c.externalId === 'acct-0001').name, 'Acme Test', 'a name is never overwritten');
    assert.ok(listed.find((c) => c.externalId === 'acct-0002').name, 'an empty name is filled in');
    await page.locator('#directory-sizes').filter({ hasText: `In the directory: ${info.accounts} companies` }).waitFor(T);

    // Deleting (issue 32): a company end users still belong to is refused, saying so, and
    // nothing is deleted; an end user is deleted, the page saying what becomes of its values.
    const users = (await api(env.base, token, 'GET', '/v1/directory/end-users')).body;
    assert.ok(users.length > 0, 'the import created end users');
    const del = page.locator('#delete-entry-form');
    await del.getByLabel('Directory').selectOption('companies');
    await del.getByLabel('Id').fill(users[0].companyId);
    await del.getByRole('button', { name: 'Delete' }).click();
    await page.waitForFunction(() => document.querySelector('#delete-entry-form .err[data-err="_form"]').textContent.includes('still has'), null, T);
    assert.equal((await api(env.base, token, 'GET', '/v1/directory/companies')).body.length, info.accounts);
    await del.getByLabel('Directory').selectOption('end-users');
    await del.getByLabel('Id').fill(users[0].id);
    await del.getByRole('button', { name: 'Delete' }).click();
    await page.locator('#delete-result').filter({ hasText: `Deleted end user ${users[0].id}: its values and activity stay as stored` }).waitFor(T);
    assert.equal((await api(env.base, token, 'GET', '/v1/directory/end-users')).body.length, users.length - 1);
    const overflow = await page.evaluate(() => { const m = document.querySelector('.main'); return m.scrollWidth - m.clientWidth; });
    assert.ok(overflow <= 0, `the main panel scrolls sideways by ${overflow} px`);
    await page.screenshot({ path: join(SCREENSHOTS, 'directory.png'), fullPage: true });
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('the unmatched panel lists the companies a mapping could not use; a CSV upload adds them and Recover gets their days back', { timeout: 180_000 }, async () => {
    const token = TOKENS.unmatchedAdmin;
    await connectByApi(token);
    const info = await (await fetch(`${env.sim}/_sim/info`)).json();
    const left = ['acct-0001', 'acct-0002'];
    const items = Array.from({ length: info.accounts }, (_, i) => ({ externalId: `acct-${String(i + 1).padStart(4, '0')}` }))
      .filter((c) => !left.includes(c.externalId));
    assert.equal((await api(env.base, token, 'PUT', '/v1/directory/companies', { items })).status, 200);
    const features = (await api(env.base, token, 'GET', '/v1/discovery/features')).body;
    const created = await api(env.base, token, 'POST', '/v1/mappings', { source: { kind: 'feature', featureId: features[0].id }, target: 'company', metricName: 'Clicks' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const waitRun = async (runId) => {
      for (let i = 0; i < 600; i += 1) {
        const r = (await api(env.base, token, 'GET', `/v1/runs/${runId}`)).body;
        if (r.state === 'finished') return r;
        await new Promise((res) => { setTimeout(res, 100); });
      }
      throw new Error(`run ${runId} did not finish`);
    };
    await waitRun((await api(env.base, token, 'POST', `/v1/mappings/${id}/sync`)).body.runId);
    const before = (await api(env.base, token, 'GET', `/v1/mappings/${id}/unmatched?reason=companyNotInDirectory&limit=1000`)).body;
    const missing = before.identities.map((i) => i.identity).sort();
    assert.deepEqual(missing, left, 'both companies left out had rows');

    const { page, context, problems } = await newPage(env.browser);
    await page.goto(`${env.base}/#token=${token}`);
    const summary = page.locator(`.unmatched-summary[data-mapping="${id}"]`);
    await summary.waitFor(T);
    const rows = before.totals.companyNotInDirectory.rows;
    assert.match(await summary.innerText(), new RegExp(`${rows} rows from 2 companies not in the directory`));
    // Anonymous visitors are their own reason, counted in words (issue 32, defect 9).
    const all = (await api(env.base, token, 'GET', `/v1/mappings/${id}/unmatched?limit=1000`)).body;
    const anon = all.totals.anonymousVisitor;
    if (anon) assert.match(await summary.innerText(), new RegExp(`${anon.rows} rows of (at least )?${anon.identities} anonymous visitors`));
    assert.doesNotMatch(await summary.innerText(), /\d\+|rows from \d+ rows/);
    await summary.getByRole('button', { name: /could not use/ }).click();
    const panel = page.locator('#unmatched-panel');
    // Advice per reason present: the directory's for companies not in it (anonymous visitors
    // are never advised for the directory).
    const advice = panel.locator('.unmatched-advice li[data-reason=companyNotInDirectory]');
    await advice.waitFor(T);
    assert.match(await advice.innerText(), /Add the missing companies to the directory/);
    if (anon) assert.match(await panel.locator('.unmatched-advice li[data-reason=anonymousVisitor]').innerText(), /never in the directory/);
    await panel.getByLabel('Reason').selectOption('companyNotInDirectory');
    await panel.locator('tr[data-reason=companyNotInDirectory]').nth(1).waitFor(T);
    const ids = await panel.locator('tr[data-reason=companyNotInDirectory] td:first-child').allInnerTexts();
    assert.deepEqual(ids.sort(), left);
    assert.equal(await panel.getByRole('button', { name: /^Recover/ }).isDisabled(), true, 'nothing to recover yet');

    // The Directory tab's CSV upload adds them; the mapping then says its days are recoverable.
    await page.getByRole('tab', { name: 'Directory' }).click();
    const form = page.locator('#upload-form');
    await form.getByLabel('File').setInputFiles({ name: 'missing.csv', mimeType: 'text/csv', buffer: Buffer.from(`externalId\n${left.join('\n')}\n`) });
    await form.getByRole('button', { name: 'Upload' }).click();
    await page.locator('#upload-result').filter({ hasText: '2 of 2 rows stored.' }).waitFor(T);
    await page.getByRole('tab', { name: 'Mapping' }).click();
    await page.evaluate(() => document.getElementById('unmatched-panel')?.remove());
    const view = (await api(env.base, token, 'GET', `/v1/mappings/${id}/unmatched`)).body;
    assert.ok(view.recoverableDays.length > 0);
    await page.reload();
    await summary.filter({ hasText: `(${view.recoverableDays.length} days recoverable)` }).waitFor(T);
    // Recover all, in the tab's head, counts the days of every mapping (here one).
    const recoverAll = page.locator('.recover-all button');
    assert.equal(await recoverAll.innerText(), `Recover all (${view.recoverableDays.length} days in 1 mapping)`);
    await summary.getByRole('button', { name: /could not use/ }).click();
    const recover = panel.getByRole('button', { name: `Recover ${view.recoverableDays.length} days` });
    await recover.waitFor(T);
    await recover.click();
    await page.waitForFunction(() => !document.querySelector('#unmatched-panel tr[data-reason=companyNotInDirectory]')
      && document.querySelector('#unmatched-panel table.unmatched, #unmatched-panel p.muted'), null, { timeout: 60_000 });
    const after = (await api(env.base, token, 'GET', `/v1/mappings/${id}/unmatched`)).body;
    assert.equal(after.totals.companyNotInDirectory, undefined, 'nothing left of the companies');
    await recoverAll.waitFor({ state: 'detached', ...T });
    const series = (await api(env.base, token, 'GET', `/v1/objects/company/${left[0]}/metrics`)).body;
    assert.ok(series.some((m) => m.metric === 'Clicks'), 'the recovered company has its values');
    await page.screenshot({ path: join(SCREENSHOTS, 'unmatched.png'), fullPage: true });
    assert.deepEqual(problems, []);
    await context.close();
  });
});
