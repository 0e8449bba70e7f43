// The Pendo Sync configurator page. Plain JavaScript, no framework; charts with uPlot.
// It talks only to the public /v1 API of the server that served it, with a bearer token.
// The server joins the page's scripts (this file, then directory.js) into one function scope
// (shared/src/api/web.rs), so they share their helpers and state: directory.js (the Directory
// tab) and unmatched.js (what each mapping could not use, and its recovery).
/* global uPlot */

  const TOKEN_KEY = 'pendo-sync-token';
  const KIND_ORDER = ['feature', 'page', 'track', 'guide', 'poll', 'report', 'aggregation', 'pes'];
  const KIND_TITLE = {
    feature: 'Features', page: 'Pages', track: 'Track events', guide: 'Guides', poll: 'NPS and polls', report: 'Reports', aggregation: 'Aggregations', pes: 'Product Engagement Score',
  };
  const TARGET_TITLE = { company: 'Company', endUser: 'End user', asset: 'Asset', project: 'Project' };
  const DIRECTORY = { company: 'companies', endUser: 'end-users', asset: 'assets', project: 'projects' };
  const PERMANENT_APPS = ['-323232', 'unknown'];
  const FIELD_NAMES = [
    ['companyId', 'Company id'], ['endUserId', 'End user id'], ['assetId', 'Asset id'], ['projectId', 'Project id'],
    ['email', 'Email'], ['name', 'Name'], ['surname', 'Surname'],
  ];
  const COLORS = ['#2563eb', '#db2777', '#059669', '#d97706', '#7c3aed', '#0891b2', '#dc2626', '#4b5563'];

  // ---------- small DOM helpers ----------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  let uid = 0;
  const nextId = (p) => `${p}-${++uid}`;

  /** A labelled control with an error slot named after the API field it maps to. */
  function field(label, control, apiField, hint) {
    const id = control.id || (control.id = nextId('f'));
    const err = h('span', { class: 'err', role: 'alert', dataset: { err: apiField || '' } });
    const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint`, text: hint }) : null;
    if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
    return h('div', { class: 'field' }, h('label', { for: id, text: label }), control, hintEl, err);
  }

  function clearErrors(scope) {
    for (const e of scope.querySelectorAll('.err')) e.textContent = '';
    for (const e of scope.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
  }

  /** Shows an API error next to the field it names (or at the form's top when it names none). */
  function showError(scope, err) {
    const f = err.field || '';
    const candidates = [f, f.replace(/^source\./, ''), f.replace(/\[\d+\].*$/, ''),
      f.replace(/^source\./, '').replace(/\[\d+\].*$/, ''), f.split('.').pop()];
    let slot = null;
    if (f) {
      for (const c of candidates) {
        slot = scope.querySelector(`.err[data-err="${CSS.escape(c)}"]`);
        if (slot) break;
      }
    }
    if (!slot) slot = scope.querySelector('.err[data-err="_form"]');
    if (!slot) { toast(err.message, true); return; }
    slot.textContent = err.message;
    const control = slot.parentElement && slot.parentElement.querySelector('input,select,textarea');
    if (control && slot.dataset.err !== '_form') control.setAttribute('aria-invalid', 'true');
  }

  let toastTimer = null;
  function toast(msg, isError) {
    const t = document.getElementById('toast');
    if (!t) return;
    t.textContent = msg;
    t.className = isError ? 'toast error' : 'toast';
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  // ---------- API ----------
  class ApiError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || `request failed (${status})`);
      this.status = status; this.code = e.code || 'error'; this.field = e.field || null;
    }
  }

  let token = null;
  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError(0, { error: { code: 'network', message: `the server could not be reached (${e.message})` } });
    }
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    if (!resp.ok) {
      if (resp.status === 401 && state.me) signOut('Your token is no longer accepted: sign in again.');
      throw new ApiError(resp.status, json);
    }
    return json;
  }

  /** Runs `fn` with the button disabled; errors go next to their field in `scope`. */
  async function submit(button, scope, fn) {
    if (scope) clearErrors(scope);
    if (button) { button.disabled = true; button.setAttribute('aria-busy', 'true'); }
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ApiError && scope) showError(scope, e); else toast(e.message, true);
      return undefined;
    } finally {
      if (button) { button.disabled = false; button.removeAttribute('aria-busy'); }
    }
  }

  // ---------- state ----------
  const state = {
    me: null, choices: null, integration: null, mappings: [], runs: new Map(), discovery: {}, tab: 'mapping',
    polling: new Map(), progressSlots: new Map(), mappingForm: null, mappingFormStale: false, unmatched: new Map(),
  };
  const isAdmin = () => state.me && state.me.role === 'admin';
  /**
   * For a member, every control in `scope` is disabled and a note under its title says who may
   * use it (the server's rule: shared/src/api/roles.rs; its refusals read the same).
   */
  function adminOnly(scope, what) {
    if (isAdmin()) return scope;
    for (const c of scope.querySelectorAll('input, select, textarea, button')) c.disabled = true;
    const note = h('p', { class: 'hint admin-only', text: `Only an admin can ${what}.` });
    const title = scope.querySelector('h2');
    if (title) title.after(note); else scope.prepend(note);
    return scope;
  }
  const connected = () => state.integration && state.integration.status === 'active';
  const appRows = () => (state.integration ? state.integration.apps : []);
  const prefixOf = (appId) => { const r = appRows().find((a) => a.appId === appId); return r ? r.prefix : ''; };

  // ---------- sign-in ----------
  function readToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, '', location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    token = null; state.me = null;
    for (const t of state.polling.values()) clearTimeout(t);
    state.polling.clear();
    renderSignIn(message);
  }

  function renderSignIn(message) {
    document.getElementById('who').textContent = '';
    document.getElementById('signout').hidden = true;
    const input = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, name: 'token' });
    const btn = h('button', { type: 'submit', text: 'Sign in' });
    const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-title' },
      h('h2', { id: 'signin-title', text: 'Sign in' }),
      h('p', { text: 'Paste an API token, or open the sign-in link that `pendo-sync serve` prints.' }),
      field('Token', input, 'token'),
      h('span', { class: 'err', role: 'alert', dataset: { err: '_form' }, text: message || '' }),
      h('div', { class: 'actions' }, btn));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      token = input.value.trim();
      await submit(btn, form, async () => {
        await start();
      });
    });
    root().replaceChildren(form);
    input.focus();
  }

  const root = () => document.getElementById('root');

  async function start() {
    try {
      state.me = await api('GET', '/v1/me');
    } catch (e) {
      token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      throw e.status === 401 ? new ApiError(401, { error: { message: 'That token was not accepted.', field: 'token' } }) : e;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    state.choices = await api('GET', '/v1/choices');
    document.getElementById('who').textContent = `tenant ${state.me.tenant} · ${state.me.role}`;
    document.getElementById('signout').hidden = false;
    renderShell();
    await refreshIntegration();
    await refreshMappings();
  }

  // ---------- shell ----------
  let panelEl; let mainEl; let bannerEl;
  function renderShell() {
    panelEl = h('aside', { class: 'panel', 'aria-label': 'Integration' });
    bannerEl = h('div', { class: 'banner', role: 'status', hidden: true });
    const tabs = [['mapping', 'Mapping'], ['apps', 'Apps'], ['segments', 'Segments'], ['directory', 'Directory'], ['metrics', 'Metrics']];
    const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Sections' });
    const panes = {};
    for (const [id, title] of tabs) {
      const b = h('button', {
        type: 'button', role: 'tab', id: `tab-${id}`, 'aria-controls': `pane-${id}`, text: title,
        onclick: () => selectTab(id, true),
      });
      tablist.append(b);
      panes[id] = h('section', { role: 'tabpanel', id: `pane-${id}`, 'aria-labelledby': `tab-${id}`, class: 'pane', tabindex: '0' });
    }
    tablist.addEventListener('keydown', (ev) => {
      const ids = tabs.map((t) => t[0]);
      let i = ids.indexOf(state.tab);
      if (ev.key === 'ArrowRight') i = (i + 1) % ids.length;
      else if (ev.key === 'ArrowLeft') i = (i + ids.length - 1) % ids.length;
      else if (ev.key === 'Home') i = 0;
      else if (ev.key === 'End') i = ids.length - 1;
      else return;
      ev.preventDefault();
      selectTab(ids[i], true);
    });
    mainEl = h('div', { class: 'main' }, bannerEl, tablist, ...Object.values(panes));
    root().replaceChildren(h('div', { class: 'layout' }, panelEl, mainEl), h('div', { id: 'toast', class: 'toast', role: 'status', hidden: true }));
    selectTab(state.tab, false);
  }

  function selectTab(id, focus) {
    state.tab = id;
    for (const b of document.querySelectorAll('[role=tab]')) {
      const on = b.id === `tab-${id}`;
      b.setAttribute('aria-selected', on ? 'true' : 'false');
      b.tabIndex = on ? 0 : -1;
      if (on && focus) b.focus();
    }
    for (const p of document.querySelectorAll('[role=tabpanel]')) p.hidden = p.id !== `pane-${id}`;
    if (id === 'mapping') renderMappings();
    if (id === 'apps') renderApps();
    if (id === 'segments') renderSegments();
    if (id === 'directory') renderDirectory();
    if (id === 'metrics') renderMetrics();
  }
  const pane = (id) => document.getElementById(`pane-${id}`);

  async function refreshIntegration() {
    state.integration = await api('GET', '/v1/integration');
    state.mappingFormStale = true;
    renderPanel();
    renderBanner();
  }

  // ---------- left panel ----------
  function renderPanel() {
    const i = state.integration;
    const statusText = i.status === 'active' ? 'Connection is active'
      : i.status === 'disconnected' ? `Disconnected: ${i.statusMessage || 'Pendo refused the key'}`
        : 'Not connected';
    const status = h('p', { class: `status status-${i.status}`, id: 'connection-status', role: 'status', text: statusText });

    // Connect
    const key = h('input', {
      type: 'password', name: 'key', autocomplete: 'off', spellcheck: 'false',
      placeholder: i.keyMasked ? `stored key ${i.keyMasked}` : 'Pendo integration key',
    });
    const domain = h('select', { name: 'domain' },
      state.choices.domains.map((d) => h('option', { value: d, text: d, selected: (i.domain || 'app.pendo.io') === d })));
    const connectBtn = h('button', { type: 'submit', text: i.keyMasked ? 'Replace key' : 'Connect' });
    const connectForm = h('form', { class: 'card', id: 'connect-form', 'aria-labelledby': 'connect-title' },
      h('h2', { id: 'connect-title', text: 'Pendo connection' }),
      status,
      i.keyMasked ? h('p', { class: 'muted', text: `Stored key: ${i.keyMasked}` }) : null,
      field('Integration key', key, 'key', i.keyMasked ? 'Leave the stored key or paste a new one; it is never shown again.' : null),
      field('Domain', domain, 'domain'),
      h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } }),
      h('div', { class: 'actions' }, connectBtn,
        i.keyMasked ? h('button', {
          type: 'button', class: 'secondary', text: 'Disconnect',
          onclick: (ev) => submit(ev.currentTarget, connectForm, async () => {
            state.integration = await api('DELETE', '/v1/integration/connection');
            renderPanel(); renderBanner(); toast('Disconnected');
          }),
        }) : null));
    connectForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      submit(connectBtn, connectForm, async () => {
        state.integration = await api('PUT', '/v1/integration/connection', { key: key.value, domain: domain.value });
        state.discovery = {}; state.mappingFormStale = true;
        renderPanel(); renderBanner(); renderMappings();
        toast('Connected');
      });
    });

    // Settings
    const days = h('input', { type: 'number', name: 'daysToSync', min: '1', step: '1', value: String(i.daysToSync), inputmode: 'numeric' });
    const tz = h('select', { name: 'timezone' },
      h('option', { value: '', text: 'None: UTC days' }),
      state.choices.timezones.map((z) => h('option', { value: z, text: z, selected: i.timezone === z })));
    const fm = {};
    const fmFields = FIELD_NAMES.map(([k, label]) => {
      fm[k] = h('input', { type: 'text', name: k, value: i.fieldMappings[k], spellcheck: 'false', autocomplete: 'off' });
      return field(label, fm[k], `fieldMappings.${k}`);
    });
    const autoDetect = h('input', { type: 'checkbox', name: 'autoDetectEndUsers', checked: i.autoDetectEndUsers });
    const updateBtn = h('button', { type: 'submit', text: 'Update' });
    const settingsForm = h('form', { class: 'card', id: 'settings-form', 'aria-labelledby': 'settings-title' },
      h('h2', { id: 'settings-title', text: 'Settings' }),
      field('Days to sync', days, 'daysToSync'),
      field('Timezone (IANA)', tz, 'timezone', 'Days are local days of this zone; without one, UTC days, each synced a day later.'),
      h('fieldset', {}, h('legend', { text: 'Field mappings' }),
        h('p', { class: 'hint', text: 'Pendo fields, as stored: a row field (accountId, visitorId) or a record\'s metadata (visitor.metadata.agent.email, account.metadata.auto.name; metadata.… alone is the visitor\'s). "-" leaves a field unmapped.' }),
        fmFields),
      h('div', { class: 'field check' }, autoDetect, h('label', { for: autoDetect.id = nextId('f'), text: 'Auto-detect end users' }),
        h('span', { class: 'err', role: 'alert', dataset: { err: 'autoDetectEndUsers' } })),
      h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } }),
      h('div', { class: 'actions' }, updateBtn));
    settingsForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const body = {};
      if (Number(days.value) !== i.daysToSync) body.daysToSync = Number(days.value);
      if ((tz.value || null) !== (i.timezone || null)) body.timezone = tz.value;
      const changed = {};
      for (const [k] of FIELD_NAMES) if (fm[k].value.trim() !== i.fieldMappings[k]) changed[k] = fm[k].value.trim();
      if (Object.keys(changed).length) body.fieldMappings = changed;
      if (autoDetect.checked !== i.autoDetectEndUsers) body.autoDetectEndUsers = autoDetect.checked;
      if (!Object.keys(body).length) { toast('Nothing changed'); return; }
      submit(updateBtn, settingsForm, async () => {
        state.integration = await api('PATCH', '/v1/integration/settings', body);
        state.mappingFormStale = true;
        renderPanel(); renderBanner(); renderMappings(); toast('Settings saved');
      });
    });

    const resync = h('div', { class: 'card' },
      h('h2', { text: 'Re-sync all' }),
      h('p', { class: 'muted', text: `Rebuilds the last ${i.daysToSync} days of every mapping from scratch. The values you see stay until the rebuild is whole, then all switch to the new ones at once.` }),
      i.resyncPending && h('p', { class: 'warning', id: 'resync-pending', text: 'A Re-sync all is building new values; the values shown are the previous ones until it is whole. If it failed, the next daily run or Sync now completes it; or discard it to keep the values shown.' }),
      resyncButton('resync-panel'),
      i.resyncPending && h('button', {
        type: 'button', id: 'resync-discard', text: 'Discard the Re-sync all', disabled: !isAdmin(),
        title: isAdmin() ? '' : 'Only an admin can discard a Re-sync all',
        onclick: (ev) => submit(ev.currentTarget, null, async () => {
          await api('DELETE', '/v1/resync');
          await refreshIntegration();
          toast('Re-sync all discarded: the values shown stay');
        }),
      }),
      h('div', { class: 'progress-slot', id: 'resync-progress-panel' }));
    panelEl.replaceChildren(adminOnly(connectForm, 'connect Pendo or replace its key'),
      adminOnly(settingsForm, 'change the settings'), adminOnly(resync, 'run Re-sync all'));
  }

  function resyncButton(id) {
    return h('button', {
      type: 'button', id, class: 'danger', text: 'Re-sync all', disabled: !connected() || !isAdmin(),
      title: isAdmin() ? '' : 'Only an admin can run Re-sync all',
      onclick: (ev) => {
        if (!window.confirm('Re-sync all rebuilds every synced value from scratch; the current values stay shown until the rebuild is whole. Continue?')) return;
        submit(ev.currentTarget, null, async () => {
          const { runId } = await api('POST', '/v1/resync');
          await refreshIntegration();
          watchRun(runId, document.getElementById('resync-progress-panel'), async () => {
            await refreshMappings();
            // Whole: the values switched and the notice goes (failed: it stays, with Discard).
            state.integration = await api('GET', '/v1/integration');
            if (!state.integration.resyncPending) {
              for (const id of ['resync-pending', 'resync-discard']) document.getElementById(id)?.remove();
            }
          });
          toast('Re-sync all started');
        });
      },
    });
  }

  function renderBanner() {
    const i = state.integration;
    if (!i.resyncRequired) { bannerEl.hidden = true; bannerEl.replaceChildren(); return; }
    bannerEl.hidden = false;
    bannerEl.replaceChildren(
      h('strong', { text: 'Re-sync required. ' }),
      h('span', { text: 'Settings or apps changed since the last full sync; values synced before the change follow the old settings.' }),
      resyncButton('resync-banner'));
  }

  // ---------- runs ----------
  const RUN_KIND = { daily: 'Daily run', syncNow: 'Sync now', rebuild: 'Rebuild', resyncAll: 'Re-sync all', recover: 'Recovery' };
  const when = (t) => (t ? `${t.slice(0, 16).replace('T', ' ')} UTC` : '');
  const count = (n, one, many) => `${n} ${n === 1 ? one : many || `${one}s`}`;

  /** A whole run's outcome (its progress while it runs). */
  function outcome(run) {
    if (!run) return '—';
    if (run.state === 'interrupted') return `interrupted after ${run.chunksDone} of ${count(run.chunksTotal, 'chunk')} (no progress for an hour; the next sync continues)`;
    if (run.state === 'superseded') {
      return run.chunksDone ? `superseded by a newer Re-sync all after ${run.chunksDone} of ${count(run.chunksTotal, 'chunk')}` : 'superseded by a newer Re-sync all';
    }
    // Sync now, a rebuild and a recovery are queued: the worker plans them a moment later.
    if (!run.finished && !run.planned) return 'planning…';
    const failed = run.chunksFailed ? `, ${run.chunksFailed} failed` : '';
    if (!run.finished) return `running (${run.chunksDone} of ${count(run.chunksTotal, 'chunk')} done${failed})`;
    const what = run.kind && run.kind.type === 'resyncAll' ? ' (Re-sync all)' : '';
    if (run.chunksFailed) return `failed: ${run.chunksDone} of ${count(run.chunksTotal, 'chunk')} done${failed}${what}`;
    return `ok: ${count(run.chunksTotal, 'chunk')}, ${count(run.totals.valuesWritten, 'value')}${what}`;
  }

  /** A mapping's share of a run (`state.lastRun` of a mapping), in one line. */
  function mappingOutcome(r) {
    switch (r.outcome) {
      case 'succeeded': return `ok: ${count(r.chunks, 'chunk')}, ${count(r.valuesWritten, 'value')}`;
      case 'running': return `running (${r.chunksDone} of ${count(r.chunks, 'chunk')} done${r.chunksFailed ? `, ${r.chunksFailed} failed` : ''})`;
      case 'interrupted': return `interrupted after ${r.chunksDone} of ${count(r.chunks, 'chunk')} (no progress for an hour; the next sync continues)`;
      case 'superseded': return 'superseded by a Re-sync all';
      case 'failed': return r.chunks ? `failed: ${r.chunksDone} of ${count(r.chunks, 'chunk')} done, ${r.chunksFailed} failed` : 'failed: not synced';
      default: return r.outcome;
    }
  }

  /** The Status cell's account of a mapping's last run: what it did and, if any, why rows were skipped or it failed. */
  function lastRunDetails(st) {
    const r = st.lastRun;
    if (!r) return [h('span', { class: 'outcome', text: 'never run' })];
    const facts = [`${RUN_KIND[r.kind.type] || r.kind.type}, ${when(r.startedAt)}`];
    if (r.finishedAt) facts.push(`finished ${when(r.finishedAt).slice(11)}`);
    const numbers = [count(r.rowsRead, 'row') + ' read', count(r.valuesWritten, 'value') + ' written'];
    if (r.usersCreated) numbers.push(count(r.usersCreated, 'user') + ' created');
    const out = [
      h('span', { class: `outcome outcome-${r.outcome}`, text: mappingOutcome(r) }),
      h('div', { class: 'run-facts muted', text: facts.join(' · ') }),
      r.chunks ? h('div', { class: 'run-numbers muted', text: numbers.join(' · ') }) : null,
    ];
    if (r.rowsSkipped) {
      out.push(h('details', { class: 'skipped' }, h('summary', { text: `${count(r.rowsSkipped, 'row')} skipped` }),
        h('ul', {}, r.skipped.map((k) => h('li', { dataset: { reason: k.reason } }, `${k.rows}: ${k.meaning}`)))));
    }
    if (r.error) out.push(h('div', { class: 'error-text run-error', text: r.error }));
    const ok = st.lastSuccessfulRun;
    if (ok && ok.runId !== r.runId) out.push(h('div', { class: 'muted last-ok', text: `last success: ${when(ok.finishedAt || ok.startedAt)}` }));
    if (!ok && r.outcome !== 'succeeded' && r.outcome !== 'running') out.push(h('div', { class: 'muted last-ok', text: 'no successful run yet' }));
    const e = st.lastError;
    if (e && e.message !== r.error) out.push(h('div', { class: 'error-text last-error', text: `${when(e.at)}: ${e.message}` }));
    return out;
  }

  /** Polls a run, drawing its progress into `slot`, until it finishes. */
  function watchRun(runId, slot, done) {
    const bar = h('progress', { max: '1', value: '0', 'aria-label': 'Sync progress' });
    const text = h('span', { class: 'progress-text', 'aria-live': 'polite', text: 'queued…' });
    if (slot) slot.replaceChildren(bar, text);
    const tick = async () => {
      let run;
      try { run = await api('GET', `/v1/runs/${runId}`); } catch (e) { text.textContent = e.message; return; }
      state.runs.set(runId, run);
      bar.max = Math.max(run.chunksTotal, 1);
      // The bar counts the chunks done; the text says how many failed.
      bar.value = run.chunksDone;
      text.textContent = outcome(run);
      if (run.finished || run.state === 'interrupted') {
        state.polling.delete(runId);
        if (slot) slot.dataset.finished = 'true';
        await done(run);
        return;
      }
      state.polling.set(runId, setTimeout(tick, 400));
    };
    tick();
  }

  // ---------- mapping tab ----------
  async function refreshMappings() {
    state.mappings = await api('GET', '/v1/mappings');
    await refreshUnmatched();
    if (state.tab === 'mapping') renderMappings();
  }

  async function discover(what) {
    if (!state.discovery[what]) {
      state.discovery[what] = api('GET', `/v1/discovery/${what}`).catch((e) => { delete state.discovery[what]; throw e; });
    }
    return state.discovery[what];
  }

  /**
   * A mapping's source in words: Pendo's names for its feature, page, report and app once
   * discovered (the ids until then, and in the cell's title), and the metrics it stores.
   */
  function sourceLabel(m) {
    const s = m.source;
    const d = state.discovery;
    const named = (list, id) => { const o = (list || []).find((x) => x.id === id); return o && o.name ? `"${o.name}"` : id; };
    const reports = d.reportsList ? [...d.reportsList.compatible, ...d.reportsList.rejected] : [];
    const app = (id) => { const a = (d.appsList || []).find((x) => String(x.id) === String(id)); return a ? a.name : `app ${id}`; };
    const minutes = s.minutesMetric ? ` + minutes → ${s.minutesMetric}` : '';
    const stored = ` → ${(m.metricNames || [m.metricName]).join(', ')}`;
    switch (s.kind) {
      case 'feature': return `Feature ${named(d.featuresList, s.featureId)}${minutes}`;
      case 'page': return `Page ${named(d.pagesList, s.pageId)}${minutes}`;
      case 'track': return `Track event ${named(d.trackTypesList, s.trackTypeId)}${minutes}`;
      case 'guide': return `Guide ${named(d.guidesList, s.guideId)}${stored}`;
      case 'poll': return `Poll of ${named(d.guidesList, s.guideId)}${s.windowDays ? ` over ${s.windowDays} days` : ''}${stored}`;
      case 'report': return `Report ${named(reports, s.reportId)}: ${s.columns.map((c) => c.field).join(', ')}${stored}`;
      case 'aggregation': return `Aggregation: ${s.fields.map((c) => c.field).join(', ')}${stored}`;
      case 'pes': return `PES of ${app(s.appId)}: ${s.components.map((c) => PES_LABEL[c] || c).join(', ')}${stored}`;
      default: return s.kind;
    }
  }

  /** The ids behind a source label, for its title. */
  function sourceIds(m) {
    const s = m.source;
    return [s.featureId, s.pageId, s.trackTypeId, s.guideId, s.pollId, s.reportId, s.appId].filter((x) => x !== undefined && x !== null).map((x) => `id ${x}`).join(', ');
  }

  function mappingInput(m, patch) {
    return Object.assign({
      source: m.source, target: m.target, metricName: m.metricName, passive: m.passive, multiApp: m.multiApp,
      autoCreateUsers: m.autoCreateUsers, segmentId: m.segmentId, enabled: m.enabled,
    }, patch);
  }

  function renderMappings() {
    const p = pane('mapping');
    if (!p || !state.integration) return;
    const groups = KIND_ORDER.map((kind) => {
      const ms = state.mappings.filter((m) => m.source.kind === kind);
      if (!ms.length) return null;
      return h('section', { class: 'group', dataset: { kind } },
        h('h3', { text: `${KIND_TITLE[kind]} (${ms.length})` }),
        h('div', { class: 'table-wrap' }, h('table', { class: 'mappings' },
          h('colgroup', {}, ['metric', 'source', 'options', 'status', 'actions'].map((c) => h('col', { class: `col-${c}` }))),
          h('thead', {}, h('tr', {}, ['Metric', 'Source', 'Options', 'Status', ''].map((t) => h('th', { scope: 'col', text: t })))),
          h('tbody', {}, ms.map(mappingRow)))));
    }).filter(Boolean);
    // The list is redrawn on every refresh; the add form keeps what the user typed (it is
    // rebuilt only when its choices change: connection, settings, apps, segments).
    let list = p.querySelector('.mapping-list');
    if (!list) {
      list = h('div', { class: 'mapping-list' });
      p.replaceChildren(h('div', { class: 'pane-head' }, h('h2', { text: 'Metric mappings' })), list);
    }
    list.replaceChildren(...(groups.length ? groups : [h('p', { class: 'muted', text: 'No mapping yet: add one below.' })]));
    const head = p.querySelector('.pane-head');
    const old = head.querySelector('.recover-all');
    if (old) old.replaceWith(recoverAllSlot()); else head.append(recoverAllSlot());
    if (!state.mappingForm || state.mappingFormStale) {
      const fresh = mappingForm();
      if (state.mappingForm && p.contains(state.mappingForm)) state.mappingForm.replaceWith(fresh); else p.append(fresh);
      state.mappingForm = fresh; state.mappingFormStale = false;
    } else if (!p.contains(state.mappingForm)) p.append(state.mappingForm);
    // Pendo's names of features, pages, reports and apps, once discovered, make the source
    // column readable.
    const d = state.discovery;
    if (connected() && (!d.featuresList || !d.pagesList || !d.trackTypesList || !d.guidesList || !d.reportsList || !d.appsList)) {
      Promise.all([discover('features'), discover('pages'), discover('track-types'), discover('guides'), discover('reports'), discover('apps')]).then(([f, pg, t, g, r, a]) => {
        d.featuresList = f; d.pagesList = pg; d.trackTypesList = t; d.guidesList = g; d.reportsList = r; d.appsList = a;
        if (state.mappings.length) {
          for (const cell of document.querySelectorAll('td.source')) {
            const m = state.mappings.find((x) => x.id === cell.dataset.id);
            if (m) cell.textContent = sourceLabel(m);
          }
        }
      }).catch(() => {});
    }
  }

  function mappingRow(m) {
    const st = m.state || {};
    const toggle = (key, label) => {
      const cb = h('input', { type: 'checkbox', checked: m[key], 'aria-label': `${label} for ${m.metricName}` });
      cb.addEventListener('change', () => {
        // Said before saving: an option that changes what the values mean needs a rebuild.
        if (MEANING.includes(key) && !m.rebuildRequired && st.lastSyncedDay && !window.confirm(rebuildWarning(m))) {
          cb.checked = m[key];
          return;
        }
        submit(cb, null, async () => {
          await api('PUT', `/v1/mappings/${m.id}`, mappingInput(m, { [key]: cb.checked }));
          await refreshMappings();
        }).then(() => { cb.checked = (state.mappings.find((x) => x.id === m.id) || m)[key]; });
      });
      return h('label', { class: 'check toggle' }, cb, h('span', { text: label }));
    };
    let progress = state.progressSlots.get(m.id);
    if (!progress) { progress = h('div', { class: 'progress-slot', id: `progress-${m.id}` }); state.progressSlots.set(m.id, progress); }
    const syncBtn = h('button', {
      // A mapping that needs a rebuild does not sync until rebuilt: its Rebuild button is the way.
      type: 'button', class: 'sync-now', text: 'Sync now', disabled: !connected() || m.rebuildRequired, 'aria-label': `Sync now: ${m.metricName}`,
      title: m.rebuildRequired ? 'Edited: click Rebuild first' : '',
      onclick: () => submit(syncBtn, null, async () => {
        const { runId } = await api('POST', `/v1/mappings/${m.id}/sync`);
        syncBtn.disabled = true;
        watchRun(runId, progress, async () => {
          progress.replaceChildren(); await refreshIntegration(); await refreshMappings(); toast(`${m.metricName}: sync finished`);
        });
      }),
    });
    const actions = [syncBtn];
    if (m.rebuildRequired) {
      actions.push(h('button', {
        type: 'button', class: 'secondary', text: 'Rebuild', disabled: !connected(),
        onclick: (ev) => submit(ev.currentTarget, null, async () => {
          const { runId } = await api('POST', `/v1/mappings/${m.id}/rebuild`);
          watchRun(runId, progress, async () => { await refreshIntegration(); await refreshMappings(); });
        }),
      }));
    }
    actions.push(h('button', {
      type: 'button', class: 'secondary', text: 'Edit', 'aria-label': `Edit ${m.metricName}`,
      onclick: () => {
        const old = document.getElementById('edit-mapping-form');
        if (old) old.remove();
        const f = mappingForm(m);
        document.querySelector('#pane-mapping .mapping-list').after(f);
        f.scrollIntoView({ block: 'start' });
        f.querySelector('input[name=metricName]').focus();
      },
    }));
    actions.push(h('button', {
      type: 'button', class: 'secondary', text: 'Delete', 'aria-label': `Delete ${m.metricName}`,
      disabled: !isAdmin(), title: isAdmin() ? '' : 'Only an admin can delete mappings',
      onclick: (ev) => {
        if (!window.confirm(`Delete the mapping "${m.metricName}" and every value it wrote?`)) return;
        submit(ev.currentTarget, null, async () => { await api('DELETE', `/v1/mappings/${m.id}`); await refreshMappings(); });
      },
    }));
    return h('tr', { dataset: { id: m.id } },
      h('th', { scope: 'row' }, h('span', { class: 'metric-name', text: m.metricName }),
        h('div', { class: 'target muted', text: `→ ${TARGET_TITLE[m.target] || m.target}` }),
        m.rebuildRequired ? h('span', { class: 'tag', text: 'rebuild required' }) : null,
        // A rebuild building values not shown yet: the ones from before the edit stay until it is whole.
        (state.integration.rebuilding || []).includes(m.id)
          ? h('span', { class: 'tag rebuilding', title: 'The values shown are those from before the edit until the rebuild is whole; if it failed, the next daily run or Sync now completes it.', text: 'rebuilding: old values shown' })
          : null,
        m.segmentId ? h('span', { class: 'tag muted', text: `segment ${m.segmentId}` }) : null),
      h('td', { class: 'source', dataset: { id: m.id }, title: sourceIds(m), text: sourceLabel(m) }),
      h('td', { class: 'toggles-cell' }, toggle('passive', 'Passive?'), toggle('multiApp', 'Multi-app?'),
        toggle('autoCreateUsers', 'Auto-create users?'), toggle('enabled', 'Enabled')),
      h('td', { class: 'status-cell' },
        h('div', {}, h('span', { class: 'muted', text: 'Last synced day: ' }), h('span', { class: 'last-synced', text: st.lastSyncedDay || 'never' })),
        h('div', { class: 'last-run' }, lastRunDetails(st)), unmatchedSummary(m)),
      h('td', { class: 'row-actions' }, h('div', { class: 'actions' }, actions), progress));
  }

  /** What an edit changes that needs a rebuild (the server's rule: README "rebuildRequired"). */
  const MEANING = ['source', 'target', 'metricName', 'multiApp', 'segmentId', 'passive'];
  const changesMeaning = (m, body) => MEANING.some((k) => JSON.stringify(m[k] ?? null) !== JSON.stringify(body[k] ?? null));
  const rebuildWarning = (m) => `This changes what "${m.metricName}" means: its values stay as they are until you click Rebuild on it (Sync now waits for that), and stay shown while it rebuilds, until the new ones are whole. Save?`;

  /**
   * The form to add a mapping (or, with `editing`, to edit one, filled with it): one source form
   * per kind, only valid choices offered.
   */
  function mappingForm(editing = null) {
    const formId = editing ? 'edit-mapping-form' : 'mapping-form';
    const titleId = editing ? 'edit-mapping-title' : 'add-mapping-title';
    const form = h('form', { class: `card ${editing ? 'edit-mapping' : 'add-mapping'}`, id: formId, 'aria-labelledby': titleId });
    const fm = state.integration.fieldMappings;
    const kind = h('select', { name: 'kind' }, KIND_ORDER.map((k) => h('option', { value: k, text: KIND_TITLE[k] })));
    const target = h('select', { name: 'target' });
    const metricName = h('input', { type: 'text', name: 'metricName', required: true, autocomplete: 'off' });
    const segment = h('select', { name: 'segmentId' }, h('option', { value: '', text: 'All visitors' }),
      state.integration.segments.map((s) => h('option', { value: s.id, text: `${s.name} (${s.id})` })));
    const checks = {};
    const check = (key, label, hint) => {
      checks[key] = h('input', { type: 'checkbox', id: nextId('f'), name: key, checked: key === 'enabled' });
      return h('div', { class: 'field check' }, checks[key], h('label', { for: checks[key].id, text: label }),
        hint ? h('span', { class: 'hint', text: hint }) : null, h('span', { class: 'err', role: 'alert', dataset: { err: key } }));
    };
    const sourceSlot = h('div', { class: 'source-form' });
    let readSource = () => ({});
    const fillTargets = () => {
      const onlyCompany = kind.value === 'pes';
      target.replaceChildren(...state.choices.targets.map((t) => {
        let reason = null;
        if (onlyCompany && t !== 'company') reason = 'PES is per company';
        else if (t === 'asset' && fm.assetId === '-') reason = 'map the asset id field first';
        else if (t === 'project' && fm.projectId === '-') reason = 'map the project id field first';
        return h('option', { value: t, disabled: !!reason, text: reason ? `${TARGET_TITLE[t]} — ${reason}` : TARGET_TITLE[t] });
      }));
      target.value = editing && kind.value === editing.source.kind ? editing.target : 'company';
    };
    // What a kind's form may ask of the mapping form: the target (the pipeline check needs it),
    // a hook run when the target changes, and the source being edited (for its own kind).
    const ctx = { target: () => target.value, onTarget: null, initial: null };
    target.addEventListener('change', () => { if (ctx.onTarget) ctx.onTarget(); });
    // Each kind's form is built in a slot of its own and shown only if no other kind was
    // chosen while it loaded (a slow earlier form must not replace a later one).
    let drawing = 0;
    const drawSource = async () => {
      const mine = ++drawing;
      fillTargets();
      checks.multiApp.disabled = kind.value === 'pes';
      sourceSlot.replaceChildren(h('p', { class: 'muted', text: 'Loading choices from Pendo…' }));
      const slot = h('div');
      let read;
      ctx.initial = editing && editing.source.kind === kind.value ? editing.source : null;
      try {
        read = await SOURCE_FORMS[kind.value](slot, ctx);
      } catch (e) {
        read = () => { throw new ApiError(e.status || 0, { error: { message: e.message, field: '_form' } }); };
        slot.replaceChildren(h('p', { class: 'error-text', text: e.code === 'not_connected' ? 'Connect to Pendo first: the choices come from your subscription.' : e.message }));
      }
      if (mine !== drawing) return;
      readSource = read;
      sourceSlot.replaceChildren(slot);
      showStored();
    };
    kind.addEventListener('change', drawSource);
    // What will be stored, as the user types.
    const storedAs = h('p', { class: 'hint stored-as', 'aria-live': 'polite' });
    const showStored = () => {
      let source = null;
      try { source = Object.assign({ kind: kind.value }, readSource()); } catch (e) { source = null; }
      const name = metricName.value.trim();
      const names = source && name ? storedNames(name, source) : [];
      storedAs.textContent = names.length
        ? `Stored as ${names.length === 1 ? 'the metric' : `${names.length} metrics`}: ${names.map((n) => `"${n}"`).join(', ')}${checks.multiApp.checked ? ', each per app as "prefix - name"' : ''}.`
        : '';
    };
    form.addEventListener('input', showStored);
    form.addEventListener('change', showStored);
    const createBtn = h('button', { type: 'submit', text: editing ? 'Save changes' : 'Add mapping' });
    const cancel = editing ? h('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => form.remove() }) : null;
    form.append(
      h('h3', { id: titleId, text: editing ? `Edit "${editing.metricName}"` : 'Add a mapping' }),
      h('div', { class: 'grid' }, field('Kind', kind, 'source.kind'), field('Target object', target, 'target'),
        field('Metric name', metricName, 'metricName'), field('Segment', segment, 'segmentId')),
      sourceSlot, storedAs,
      h('div', { class: 'toggles' }, check('passive', 'Passive?', 'activity only; never moves last seen'),
        check('multiApp', 'Multi-app?', 'one metric per app, named with the app prefix'),
        check('autoCreateUsers', 'Auto-create users?'), check('enabled', 'Enabled')),
      h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } }),
      h('div', { class: 'actions' }, createBtn, cancel));
    if (editing) {
      kind.value = editing.source.kind;
      metricName.value = editing.metricName;
      segment.value = editing.segmentId || '';
      for (const k of ['passive', 'multiApp', 'autoCreateUsers', 'enabled']) checks[k].checked = !!editing[k];
    }
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      let source;
      try { source = Object.assign({ kind: kind.value }, readSource()); } catch (e) { source = null; }
      const body = {
        source, target: target.value, metricName: metricName.value, passive: checks.passive.checked,
        multiApp: checks.multiApp.checked, autoCreateUsers: checks.autoCreateUsers.checked,
        segmentId: segment.value || null, enabled: checks.enabled.checked,
      };
      // Said before saving: an edit that changes what the values mean needs a rebuild.
      if (editing && source && changesMeaning(editing, body) && !editing.rebuildRequired && editing.state && editing.state.lastSyncedDay
        && !window.confirm(rebuildWarning(editing))) return;
      submit(createBtn, form, async () => {
        if (!source) body.source = Object.assign({ kind: kind.value }, readSource());
        if (editing) {
          const saved = await api('PUT', `/v1/mappings/${encodeURIComponent(editing.id)}`, body);
          toast(saved.rebuildRequired ? `"${saved.metricName}" saved: click Rebuild on it` : `"${saved.metricName}" saved`);
          form.remove();
          await refreshMappings();
          return;
        }
        const created = await api('POST', '/v1/mappings', body);
        toast(`Mapping "${created.metricName}" added`);
        state.mappingFormStale = true;
        await refreshMappings();
        const f = document.querySelector('#mapping-form select[name=kind]');
        if (f) f.focus();
      });
    });
    drawSource();
    return form;
  }

  const PES_LABEL = { score: 'PES', adoption: 'Adoption', stickiness: 'Stickiness', growth: 'Growth' };
  /**
   * The names a mapping's metrics are stored under, before saving: the server's one rule
   * (`part_metric_name` in shared/src/domain/mapping.rs; a mapping's `metricNames` after).
   */
  function storedNames(name, source) {
    const parts = (list) => (list.length <= 1 ? [name] : list.map((p) => `${name} - ${p}`));
    if (source.kind === 'report') return parts((source.columns || []).map((c) => c.metric.trim()));
    if (source.kind === 'aggregation') return parts((source.fields || []).map((f) => f.metric.trim()));
    if (source.kind === 'pes') return parts((source.components || []).map((c) => PES_LABEL[c] || c));
    if (source.kind === 'guide') return [name, source.advancedMetric, source.dismissedMetric, source.completedMetric].filter(Boolean);
    if (source.kind === 'poll') return [name, source.responsesMetric, source.meanMetric].filter(Boolean);
    return [name, source.minutesMetric].filter(Boolean);
  }

  /** A picker of Pendo objects: "Name — App name (core event)"; `appNames`: Pendo's apps by id. */
  function objectSelect(list, name, appNames = new Map()) {
    const apps = new Map(appRows().map((a) => [a.appId, a.prefix]));
    const sel = h('select', { name }, list.map((o) => {
      const id = o.appId !== null && o.appId !== undefined ? String(o.appId) : null;
      const app = id ? (appNames.get(id) || apps.get(id) || `app ${id}`) : '';
      return h('option', { value: o.id, text: `${o.name || o.id}${app ? ` — ${app}` : ''}${o.isCoreEvent ? ' (core event)' : ''}` });
    }));
    return sel;
  }

  /** Rows of "use this column/field → metric name". */
  function fieldMetricList(items, listName, initial = null) {
    const rows = items.map((it, idx) => {
      const was = initial ? initial.find((f) => f.field === it.field) : null;
      const cb = h('input', { type: 'checkbox', id: nextId('f'), checked: initial ? !!was : idx === 0 });
      const metric = h('input', { type: 'text', value: was ? was.metric : it.title || it.field, 'aria-label': `Metric name for ${it.field}` });
      return { it, cb, metric, el: h('div', { class: 'field-metric' }, cb, h('label', { for: cb.id, text: it.title && it.title !== it.field ? `${it.title} (${it.field})` : it.field }), metric) };
    });
    const el = h('fieldset', {}, h('legend', { text: listName === 'columns' ? 'Numeric columns to map' : 'Mappable output fields' }),
      rows.length ? rows.map((r) => r.el) : h('p', { class: 'muted', text: 'None.' }),
      h('span', { class: 'err', role: 'alert', dataset: { err: listName } }));
    const read = () => rows.filter((r) => r.cb.checked).map((r) => ({ field: r.it.field, metric: r.metric.value }));
    return { el, read };
  }

  const SOURCE_FORMS = {
    async feature(slot, ctx) { return eventForm(slot, 'features', 'featureId', 'Feature', ctx); },
    async page(slot, ctx) { return eventForm(slot, 'pages', 'pageId', 'Page', ctx); },
    async track(slot, ctx) { return eventForm(slot, 'track-types', 'trackTypeId', 'Track event', ctx); },
    async guide(slot, ctx) { return guideForm(slot, ctx); },
    async poll(slot, ctx) { return pollForm(slot, ctx); },
    async report(slot, ctx) {
      const init = ctx.initial;
      const r = await discover('reports');
      const sel = h('select', { name: 'reportId' },
        h('option', { value: '', text: r.compatible.length ? 'Choose a report' : 'No compatible report' }),
        h('optgroup', { label: 'Compatible' }, r.compatible.map((x) => h('option', { value: x.id, text: `${x.name}${x.warning ? ` (${x.warning})` : ''}` }))),
        h('optgroup', { label: 'Not compatible' }, r.rejected.map((x) => h('option', { value: x.id, disabled: true, class: 'rejected', text: `${x.name} — ${x.reason}` }))));
      const colSlot = h('div', {});
      let cols = { read: () => [] };
      sel.addEventListener('change', () => {
        const rep = r.compatible.find((x) => x.id === sel.value);
        cols = fieldMetricList(rep ? rep.numericColumns : [], 'columns', init && init.reportId === sel.value ? init.columns : null);
        colSlot.replaceChildren(rep && rep.warning ? h('p', { class: 'warning', text: rep.warning }) : '', rep ? cols.el : '');
      });
      const rejected = r.rejected.length ? h('details', { class: 'rejected-list' }, h('summary', { text: `${r.rejected.length} report(s) cannot be mapped` }),
        h('ul', {}, r.rejected.map((x) => h('li', { class: 'rejected' }, h('span', { text: x.name }), ' — ', h('span', { text: x.reason }))))) : null;
      slot.replaceChildren(...[field('Report', sel, 'reportId'), colSlot, rejected].filter(Boolean));
      if (init) { sel.value = init.reportId; sel.dispatchEvent(new Event('change')); }
      return () => ({ reportId: sel.value, columns: cols.read() });
    },
    async aggregation(slot, ctx) {
      const ta = h('textarea', {
        name: 'pipeline', rows: '10', spellcheck: 'false',
        placeholder: '[{"source": {"events": null, "timeSeries": {"period": "dayRange", "first": "now()", "count": -1}}}, …]',
      });
      const status = h('p', { class: 'muted', 'aria-live': 'polite', text: 'Paste a pipeline: it is checked as you type.' });
      const fieldsSlot = h('div', {});
      let fields = { read: () => [] };
      let timer = null; let seq = 0;
      const errSlot = () => slot.querySelector('.err[data-err="pipeline"]');
      const check = async () => {
        const mine = ++seq;
        errSlot().textContent = ''; ta.removeAttribute('aria-invalid');
        let pipeline;
        try { pipeline = JSON.parse(ta.value); } catch (e) {
          errSlot().textContent = `not valid JSON: ${e.message}`; ta.setAttribute('aria-invalid', 'true');
          fieldsSlot.replaceChildren(); fields = { read: () => [] }; return;
        }
        try {
          // The server's check, for this target (the same the save runs, without Pendo).
          const out = await api('POST', '/v1/discovery/aggregation-fields', { pipeline, target: ctx.target() });
          if (mine !== seq) return;
          status.textContent = `Valid: ${out.length} mappable field(s).`;
          fields = fieldMetricList(out.map((f) => ({ field: f })), 'fields', ctx.initial ? ctx.initial.fields : null);
          fieldsSlot.replaceChildren(fields.el);
          fieldsSlot.dispatchEvent(new Event('change', { bubbles: true }));
        } catch (e) {
          if (mine !== seq) return;
          errSlot().textContent = e.message; ta.setAttribute('aria-invalid', 'true');
          status.textContent = ''; fieldsSlot.replaceChildren(); fields = { read: () => [] };
        }
      };
      ta.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(check, 350); });
      ctx.onTarget = () => { if (ta.value.trim()) check(); };
      // The dry run: the pipeline run once by Pendo for the last complete day (what saving
      // does too), its rows, fields and first rows shown.
      const trialOut = h('div', { class: 'trial', 'aria-live': 'polite' });
      const tryBtn = h('button', {
        type: 'button', class: 'secondary', text: 'Run it for one day',
        onclick: () => submit(tryBtn, slot, async () => {
          let pipeline;
          try { pipeline = JSON.parse(ta.value); } catch (e) { throw new ApiError(400, { error: { message: `not valid JSON: ${e.message}`, field: 'pipeline' } }); }
          trialOut.replaceChildren(h('p', { class: 'muted', text: 'Running it in Pendo…' }));
          try {
            const r = await api('POST', '/v1/discovery/pipeline-check', { pipeline, target: ctx.target() });
            trialOut.replaceChildren(trialView(r.trial));
          } catch (e) { trialOut.replaceChildren(); throw e; }
        }),
      });
      slot.replaceChildren(field('Aggregation pipeline (JSON)', ta, 'pipeline'), status, h('div', { class: 'actions' }, tryBtn), trialOut, fieldsSlot);
      if (ctx.initial) { ta.value = JSON.stringify(ctx.initial.pipeline, null, 2); check(); }
      return () => {
        let pipeline;
        try { pipeline = JSON.parse(ta.value); } catch (e) { throw new ApiError(400, { error: { message: `not valid JSON: ${e.message}`, field: 'pipeline' } }); }
        return { pipeline, fields: fields.read() };
      };
    },
    async pes(slot, ctx) {
      // Pendo's apps by name (not only the ones typed in the apps table).
      const apps = await discover('apps');
      const sel = h('select', { name: 'appId' }, apps.map((a) => h('option', { value: String(a.id), text: `${a.name} (${a.id})` })));
      if (ctx.initial) sel.value = String(ctx.initial.appId);
      const boxes = state.choices.pesComponents.map((c, i) => {
        const cb = h('input', { type: 'checkbox', id: nextId('f'), value: c, checked: ctx.initial ? ctx.initial.components.includes(c) : i === 0 });
        return { c, cb, el: h('span', { class: 'check' }, cb, h('label', { for: cb.id, text: c })) };
      });
      const fmOk = state.integration.fieldMappings.companyId === 'accountId' || state.integration.fieldMappings.companyId === 'row.accountId';
      // (replaceChildren would write a null as the text "null".)
      slot.replaceChildren(...[field('App', sel, 'appId'),
        h('fieldset', {}, h('legend', { text: 'Components' }), boxes.map((b) => b.el), h('span', { class: 'err', role: 'alert', dataset: { err: 'components' } })),
        fmOk ? null : h('p', { class: 'warning', text: 'PES is per Pendo account: the company id field must be accountId.' })].filter(Boolean));
      return () => ({ appId: Number(sel.value), components: boxes.filter((b) => b.cb.checked).map((b) => b.c) });
    },
  };

  /** A dry run's result: its day, row count, fields and first rows. */
  function trialView(t) {
    const cell = (v) => (v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
    return h('div', { class: 'trial-result' },
      h('p', { role: 'status', text: `${t.day}: ${t.rows} ${t.rows === 1 ? 'row' : 'rows'}${t.rows ? ` with the fields ${t.outputFields.join(', ')}` : ' — nothing to map on that day'}.` }),
      t.sample.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'sample' },
        h('caption', { text: `The first ${t.sample.length} ${t.sample.length === 1 ? 'row' : 'rows'}` }),
        h('thead', {}, h('tr', {}, t.outputFields.map((f) => h('th', { scope: 'col', text: f })))),
        h('tbody', {}, t.sample.map((row) => h('tr', {}, t.outputFields.map((f) => h('td', { text: cell(row[f]) }))))))) : null);
  }

  async function eventForm(slot, what, idKey, label, ctx) {
    const list = await discover(what);
    state.discovery[`${what.replace(/-(\w)/g, (_, c) => c.toUpperCase())}List`] = list;
    // App names from Pendo; without them (Pendo unreachable) the ids still pick.
    const appNames = new Map((await discover('apps').catch(() => [])).map((a) => [String(a.id), a.name]));
    const sel = objectSelect(list, idKey, appNames);
    const minutes = h('input', { type: 'text', name: 'minutesMetric', autocomplete: 'off', placeholder: 'optional' });
    if (ctx && ctx.initial) { sel.value = ctx.initial[idKey]; minutes.value = ctx.initial.minutesMetric || ''; }
    slot.replaceChildren(field(label, sel, idKey), field('Minutes metric name', minutes, 'minutesMetric', 'Also store time on the ' + label.toLowerCase() + ' as this metric.'));
    return () => ({ [idKey]: sel.value, minutesMetric: minutes.value.trim() || null });
  }

  /**
   * A Guide mapping's source: the guide (its app and steps named), and the optional metrics of
   * its other events; "completed" only for a guide of several steps.
   */
  async function guideForm(slot, ctx) {
    const list = await discover('guides');
    state.discovery.guidesList = list;
    const appNames = new Map((await discover('apps').catch(() => [])).map((a) => [String(a.id), a.name]));
    const sel = objectSelect(list.map((g) => Object.assign({}, g, { name: `${g.name || g.id} (${g.steps} step${g.steps === 1 ? '' : 's'})` })), 'guideId', appNames);
    const optional = (name) => h('input', { type: 'text', name, autocomplete: 'off', placeholder: 'optional' });
    const advanced = optional('advancedMetric');
    const dismissed = optional('dismissedMetric');
    const completed = optional('completedMetric');
    const init = ctx && ctx.initial;
    if (init) {
      sel.value = init.guideId;
      advanced.value = init.advancedMetric || ''; dismissed.value = init.dismissedMetric || ''; completed.value = init.completedMetric || '';
    }
    const completedField = field('Completions metric name', completed, 'completedMetric', 'Times its last step was seen.');
    const onGuide = () => {
      const g = list.find((x) => x.id === sel.value);
      const several = !!g && g.steps > 1;
      completed.disabled = !several;
      if (!several) completed.value = '';
      completedField.style.display = several ? '' : 'none';
    };
    sel.addEventListener('change', onGuide);
    onGuide();
    slot.replaceChildren(field('Guide', sel, 'guideId'),
      h('p', { class: 'hint', text: 'The metric name counts the times the guide was seen; end users get an activity record of each day they saw it.' }),
      field('Steps advanced metric name', advanced, 'advancedMetric', 'Times a step was moved on from.'),
      field('Dismissals metric name', dismissed, 'dismissedMetric', 'Times the guide was dismissed.'),
      completedField);
    const text = (i) => i.value.trim() || null;
    return () => ({ guideId: sel.value, advancedMetric: text(advanced), dismissedMetric: text(dismissed), completedMetric: text(completed) });
  }

  const POLL_TYPE = { NPSRating: 'NPS', NPSReason: 'NPS reason', PositiveNegative: 'yes/no', NumberScale: 'number scale', MultipleChoice: 'multiple choice', FreeForm: 'free text' };

  /**
   * A Poll mapping's source: a poll of a guide (NPS first). An NPS poll's metric is the NPS
   * over a trailing window on companies, assets and projects (each end user's rating on end
   * users); another poll's is its responses, with the mean of numeric answers optional.
   */
  async function pollForm(slot, ctx) {
    const list = await discover('guides');
    state.discovery.guidesList = list;
    const polls = [];
    for (const g of list) for (const p of g.polls) polls.push({ guide: g, poll: p });
    polls.sort((a, b) => Number(b.poll.type === 'NPSRating') - Number(a.poll.type === 'NPSRating'));
    const sel = h('select', { name: 'pollId' }, polls.length
      ? polls.map((x, i) => h('option', { value: String(i), text: `${x.guide.name || x.guide.id}: ${x.poll.question || x.poll.id} (${POLL_TYPE[x.poll.type] || x.poll.type || 'poll'})` }))
      : h('option', { value: '', text: 'No guide of the subscription has a poll' }));
    const windowDays = h('input', { type: 'number', name: 'windowDays', min: '1', max: '366', value: '90' });
    const responses = h('input', { type: 'text', name: 'responsesMetric', autocomplete: 'off', placeholder: 'optional' });
    const mean = h('input', { type: 'text', name: 'meanMetric', autocomplete: 'off', placeholder: 'optional' });
    const windowField = field('Trailing window (days)', windowDays, 'windowDays', 'The NPS of each day counts each end user\'s latest response in these days.');
    const meanField = field('Mean metric name', mean, 'meanMetric', 'The mean of the numeric answers of each day.');
    const about = h('p', { class: 'hint' });
    const chosen = () => polls[Number(sel.value)];
    const onPoll = () => {
      const x = chosen();
      const nps = !!x && x.poll.type === 'NPSRating';
      const users = ctx.target() === 'endUser';
      windowField.style.display = nps && !users ? '' : 'none';
      meanField.style.display = nps ? 'none' : '';
      about.textContent = nps
        ? (users ? 'The metric is each end user\'s rating (0–10) on the day given; the response is an activity record.'
          : 'The metric is the NPS (% promoters 9–10 minus % detractors 0–6) of each day\'s trailing window; days without a response in it have no value.')
        : 'The metric counts the responses of each day; respondents get an activity record.';
    };
    sel.addEventListener('change', onPoll);
    ctx.onTarget = onPoll;
    const init = ctx.initial;
    if (init) {
      sel.value = String(polls.findIndex((x) => x.guide.id === init.guideId && x.poll.id === init.pollId));
      windowDays.value = init.windowDays || 90; responses.value = init.responsesMetric || ''; mean.value = init.meanMetric || '';
    }
    onPoll();
    slot.replaceChildren(field('Poll', sel, 'pollId'), about, windowField,
      field('Responses metric name', responses, 'responsesMetric', 'How many responses each value counts.'), meanField);
    return () => {
      const x = chosen();
      const nps = !!x && x.poll.type === 'NPSRating';
      const trailing = nps && ctx.target() !== 'endUser';
      return {
        guideId: x ? x.guide.id : '', pollId: x ? x.poll.id : '',
        windowDays: trailing ? Number(windowDays.value) || null : null,
        responsesMetric: responses.value.trim() || null,
        meanMetric: nps ? null : mean.value.trim() || null,
      };
    };
  }

  // ---------- apps & segments ----------
  function renderApps() {
    const p = pane('apps');
    if (!p || !state.integration) return;
    const rows = appRows().map((a) => {
      const prefix = h('input', { type: 'text', value: a.prefix, 'aria-label': `Prefix of app ${a.appId}` });
      const permanent = PERMANENT_APPS.includes(a.appId);
      const tr = h('tr', { dataset: { app: a.appId } });
      const save = h('button', {
        type: 'button', text: 'Save', onclick: () => submit(save, tr, async () => {
          const apps = await api('PUT', `/v1/apps/${encodeURIComponent(a.appId)}`, { prefix: prefix.value });
          await afterTableChange(apps, 'apps');
        }),
      });
      const del = h('button', {
        type: 'button', class: 'secondary', text: 'Delete', disabled: permanent,
        title: permanent ? 'A permanent row: it cannot be deleted' : null,
        'aria-label': permanent ? `App ${a.appId} is permanent and cannot be deleted` : `Delete app ${a.appId}`,
        onclick: () => submit(del, tr, async () => {
          const apps = await api('DELETE', `/v1/apps/${encodeURIComponent(a.appId)}`);
          await afterTableChange(apps, 'apps');
        }),
      });
      tr.append(h('th', { scope: 'row' }, h('span', { class: 'app-name', dataset: { app: a.appId }, text: a.appId === 'unknown' ? 'Every other app' : a.appId }),
        permanent ? h('span', { class: 'tag muted', text: 'permanent' }) : null),
        h('td', {}, prefix, h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } })), h('td', {}, h('div', { class: 'actions' }, save, del)));
      return tr;
    });
    // Pendo's apps by name, those not in the table yet (an app Pendo does not list is refused).
    const appId = h('select', { name: 'appId' }, h('option', { value: '', text: connected() ? 'Loading Pendo\'s apps…' : 'Connect Pendo first' }));
    if (connected()) {
      discover('apps').then((list) => {
        const inTable = new Set(appRows().map((a) => a.appId));
        const free = list.filter((a) => !inTable.has(String(a.id)));
        appId.replaceChildren(h('option', { value: '', text: free.length ? 'Choose an app' : 'Every Pendo app is in the table' }),
          ...free.map((a) => h('option', { value: String(a.id), text: `${a.name} (${a.id})` })));
        const names = new Map(list.map((a) => [String(a.id), a.name]));
        for (const el of p.querySelectorAll('.app-name')) {
          const n = names.get(el.dataset.app);
          if (n) el.textContent = `${n} (${el.dataset.app})`;
        }
      }).catch(() => {});
    }
    const prefix = h('input', { type: 'text', name: 'prefix', autocomplete: 'off' });
    const addBtn = h('button', { type: 'submit', text: 'Add app' });
    const form = h('form', { class: 'card inline-form' }, field('Pendo app', appId, 'appId'), field('Metric prefix', prefix, 'prefix'),
      h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } }), h('div', { class: 'actions' }, addBtn));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      submit(addBtn, form, async () => {
        if (!appId.value.trim()) throw new ApiError(400, { error: { message: 'choose one of your Pendo apps', field: 'appId' } });
        const apps = await api('PUT', `/v1/apps/${encodeURIComponent(appId.value.trim())}`, { prefix: prefix.value });
        await afterTableChange(apps, 'apps');
      });
    });
    p.replaceChildren(h('h2', { text: 'Apps' }),
      h('p', { class: 'muted', text: 'Multi-app mappings write one metric per app, named "prefix - metric". The default app (-323232) and "unknown" (every other app) are permanent.' }),
      h('div', { class: 'table-wrap' }, h('table', { class: 'apps' }, h('thead', {}, h('tr', {}, ['App', 'Prefix', ''].map((t) => h('th', { scope: 'col', text: t })))), h('tbody', {}, rows))),
      form);
    adminOnly(p, 'add apps or change their prefixes');
  }

  async function afterTableChange(rows, key) {
    state.integration[key] = rows;
    await refreshIntegration();
    if (key === 'apps') renderApps(); else renderSegments();
    toast('Saved');
  }

  function renderSegments() {
    const p = pane('segments');
    if (!p || !state.integration) return;
    const rows = state.integration.segments.map((s) => {
      const name = h('input', { type: 'text', value: s.name, 'aria-label': `Name of segment ${s.id}` });
      const tr = h('tr', { dataset: { segment: s.id } });
      const save = h('button', {
        type: 'button', text: 'Save', onclick: () => submit(save, tr, async () => {
          await afterTableChange(await api('PUT', `/v1/segments/${encodeURIComponent(s.id)}`, { name: name.value }), 'segments');
        }),
      });
      const del = h('button', {
        type: 'button', class: 'secondary', text: 'Delete', 'aria-label': `Delete segment ${s.name}`,
        onclick: () => submit(del, tr, async () => {
          await afterTableChange(await api('DELETE', `/v1/segments/${encodeURIComponent(s.id)}`), 'segments');
        }),
      });
      tr.append(h('th', { scope: 'row', text: s.id }), h('td', {}, name, h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } })),
        h('td', {}, h('div', { class: 'actions' }, save, del)));
      return tr;
    });
    const segId = h('input', { type: 'text', name: 'segmentId', list: 'pendo-segments', autocomplete: 'off' });
    const segName = h('input', { type: 'text', name: 'name', autocomplete: 'off' });
    const datalist = h('datalist', { id: 'pendo-segments' });
    if (connected()) {
      discover('segments').then((list) => {
        datalist.replaceChildren(...list.map((s) => h('option', { value: s.id, text: s.name })));
        segId.addEventListener('change', () => { const s = list.find((x) => x.id === segId.value); if (s && !segName.value) segName.value = s.name; });
      }).catch(() => {});
    }
    const addBtn = h('button', { type: 'submit', text: 'Add segment' });
    const form = h('form', { class: 'card inline-form' }, field('Pendo segment id', segId, 'segmentId', connected() ? 'Type to pick one of your Pendo segments.' : null),
      field('Name', segName, 'name'), datalist, h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } }), h('div', { class: 'actions' }, addBtn));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      submit(addBtn, form, async () => {
        if (!segId.value.trim()) throw new ApiError(400, { error: { message: 'enter a Pendo segment id', field: 'segmentId' } });
        await afterTableChange(await api('PUT', `/v1/segments/${encodeURIComponent(segId.value.trim())}`, { name: segName.value }), 'segments');
      });
    });
    p.replaceChildren(h('h2', { text: 'Segments' }),
      h('p', { class: 'muted', text: 'A mapping may be limited to one of these segments; a segment in use cannot be deleted.' }),
      rows.length ? h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Segment id', 'Name', ''].map((t) => h('th', { scope: 'col', text: t })))), h('tbody', {}, rows)))
        : h('p', { class: 'muted', text: 'No segment yet.' }),
      form);
    adminOnly(p, 'add, rename or remove segments');
  }

  // ---------- metrics ----------
  const isoDay = (d) => d.toISOString().slice(0, 10);
  function defaultRange() {
    const to = new Date(); to.setUTCDate(to.getUTCDate() - 1);
    const from = new Date(to); from.setUTCDate(from.getUTCDate() - (state.integration.daysToSync - 1));
    return [isoDay(from), isoDay(to)];
  }

  function renderMetrics() {
    const p = pane('metrics');
    if (!p || !state.integration) return;
    if (p.dataset.drawn) return; // keep the user's choices when coming back to the tab
    p.dataset.drawn = 'true';
    const kind = h('select', { name: 'kind' }, Object.entries(TARGET_TITLE).map(([v, t]) => h('option', { value: v, text: t })));
    const object = h('select', { name: 'object' });
    const [f, t] = defaultRange();
    const from = h('input', { type: 'date', name: 'from', value: f });
    const to = h('input', { type: 'date', name: 'to', value: t });
    const showBtn = h('button', { type: 'submit', text: 'Show' });
    const out = h('div', { class: 'metrics-out', 'aria-live': 'polite' });
    const form = h('form', { class: 'card inline-form', id: 'metrics-form' }, field('Object', kind, 'kind'), field(TARGET_TITLE.company, object, 'id'),
      field('From', from, 'from'), field('To', to, 'to'), h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } }), h('div', { class: 'actions' }, showBtn));
    const loadObjects = () => submit(null, form, async () => {
      form.querySelector(`label[for="${object.id}"]`).textContent = TARGET_TITLE[kind.value];
      const list = await api('GET', `/v1/directory/${DIRECTORY[kind.value]}`);
      object.replaceChildren(...(list || []).map((o) => {
        const id = kind.value === 'endUser' ? o.id : o.externalId;
        const label = kind.value === 'endUser' ? [o.email, o.externalId, `${o.name || ''} ${o.surname || ''}`.trim()].filter(Boolean).join(' · ') || o.id : (o.name ? `${o.name} (${o.externalId})` : o.externalId);
        return h('option', { value: id, text: label });
      }));
      if (!list || !list.length) object.append(h('option', { value: '', text: 'The directory has none' }));
    });
    kind.addEventListener('change', loadObjects);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      submit(showBtn, form, () => showObject(kind.value, object.value, from.value, to.value, out));
    });
    p.replaceChildren(h('h2', { text: 'Metrics' }), form, out);
    loadObjects();
  }

  async function showObject(kind, id, from, to, out) {
    if (!id) throw new ApiError(400, { error: { message: 'choose an object', field: 'id' } });
    const base = `/v1/objects/${kind}/${encodeURIComponent(id)}`;
    const [metrics, system, activity] = await Promise.all([
      api('GET', `${base}/metrics`), api('GET', `${base}/system`),
      kind === 'company' || kind === 'endUser' ? api('GET', `${base}/activity?from=${from}&limit=50`) : Promise.resolve(null),
    ]);
    // One chart per metric as mapped: a multi-app metric ("prefix - name", one per app) is one
    // chart with a line per app.
    const charts = new Map();
    for (const mi of metrics) {
      const prefix = mi.app ? prefixOf(mi.app) : '';
      const baseName = prefix && mi.metric.startsWith(`${prefix} - `) ? mi.metric.slice(prefix.length + 3) : mi.metric;
      if (!charts.has(baseName)) charts.set(baseName, []);
      charts.get(baseName).push(mi);
    }
    const series = await Promise.all(metrics.map((mi) => api('GET', `${base}/series?metric=${encodeURIComponent(mi.metric)}&from=${from}&to=${to}`)));
    const byMetric = new Map(metrics.map((mi, i) => [`${mi.metric}\u0000${mi.app}`, series[i].filter((pt) => pt.app === mi.app)]));
    const days = [];
    for (let d = new Date(`${from}T00:00:00Z`); isoDay(d) <= to; d.setUTCDate(d.getUTCDate() + 1)) days.push(isoDay(d));

    const sys = h('dl', { class: 'system' },
      kind === 'endUser' ? [h('dt', { text: 'Last seen' }), h('dd', { text: system.lastSeen || 'never' }),
        h('dt', { text: 'Last active' }), h('dd', { text: system.lastActive || 'never' })] : null,
      kind === 'company' ? [h('dt', { text: 'Users active last 7 days' }), h('dd', { text: String(system.usersActiveLast7Days ?? 0) })] : null);
    const chartEls = [];
    for (const [name, infos] of charts) {
      chartEls.push(chartCard(name, infos.map((mi) => ({
        label: mi.app ? (prefixOf(mi.app) || `app ${mi.app}`) : name,
        points: byMetric.get(`${mi.metric}\u0000${mi.app}`),
        synced: mi.syncedFrom && mi.syncedTo ? [mi.syncedFrom, mi.syncedTo] : null,
      })), days));
    }
    out.replaceChildren(
      h('section', { class: 'card' }, h('h3', { text: 'System metrics' }), kind === 'company' || kind === 'endUser' ? sys : h('p', { class: 'muted', text: 'System metrics exist for companies and end users.' })),
      chartEls.length ? h('div', { class: 'charts' }, chartEls) : h('p', { class: 'muted', text: 'No metric on this object yet.' }),
      activity ? activityTable(activity, await endUserNames(activity)) : null);
    for (const c of chartEls) c.draw();
  }

  /**
   * One metric's chart and its values table, a line per app. A day inside the line's synced
   * range (the server's `syncedFrom`..`syncedTo`) without a stored value had no events: 0. A day
   * outside it was not synced: a gap in the line, "not synced" in the table.
   */
  function chartCard(name, lines, days) {
    const xs = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
    const data = [xs];
    let points = 0;
    let zeros = 0;
    for (const l of lines) {
      const byDay = new Map(l.points.map((pt) => [pt.day, pt.value]));
      const synced = (d) => l.synced && d >= l.synced[0] && d <= l.synced[1];
      data.push(days.map((d) => {
        if (byDay.has(d)) return byDay.get(d);
        if (synced(d)) { zeros += 1; return 0; }
        return null;
      }));
      points += byDay.size;
    }
    const plot = h('div', { class: 'plot', role: 'img', 'aria-label': `${name}: ${points} daily values and ${zeros} days without events from ${days[0]} to ${days[days.length - 1]}` });
    const table = h('table', { class: 'values' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Day' }), lines.map((l) => h('th', { scope: 'col', text: l.label })))),
      h('tbody', {}, days.map((d, i) => h('tr', {}, h('th', { scope: 'row', text: d }),
        data.slice(1).map((s) => h('td', { class: s[i] === null ? 'muted' : 'num', text: s[i] === null ? 'not synced' : String(s[i]) }))))));
    const card = h('section', { class: 'card chart', dataset: { metric: name, points: String(points), zeros: String(zeros), lines: String(lines.length) } },
      h('h3', { text: name }), plot, h('details', {}, h('summary', { text: 'Values' }), h('div', { class: 'table-wrap' }, table)));
    card.draw = () => {
      const width = Math.max(plot.clientWidth, 240);
      const u = new uPlot({
        width, height: 220,
        scales: { x: { time: true } },
        legend: { show: lines.length > 1 },
        axes: [{ space: 60 }, { size: 50 }],
        series: [{}, ...lines.map((l, i) => ({
          // A day that was not synced is a gap: the line never joins across it.
          label: l.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false,
          points: { show: true, size: 5, fill: COLORS[i % COLORS.length] },
        }))],
      }, data, plot);
      card.dataset.drawn = String(points);
      const ro = new ResizeObserver(() => { const w = Math.max(plot.clientWidth, 240); if (Math.abs(w - u.width) > 4) u.setSize({ width: w, height: 220 }); });
      ro.observe(plot);
    };
    return card;
  }

  /** End users by service id, as a person reads them: "Ann Lee <ann@x.io>", the email or the external id. */
  async function endUserNames(rows) {
    if (!rows || !rows.length) return new Map();
    const list = await api('GET', '/v1/directory/end-users').catch(() => []);
    return new Map(list.map((u) => {
      const name = [u.name, u.surname].filter(Boolean).join(' ');
      const label = name && u.email ? `${name} <${u.email}>` : name || u.email || u.externalId || u.id;
      return [u.id, label];
    }));
  }

  function activityTable(rows, names = new Map()) {
    return h('section', { class: 'card' }, h('h3', { text: 'Recent activity' }),
      rows.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'activity' },
        h('thead', {}, h('tr', {}, ['Day', 'End user', 'About', 'Events', 'Minutes', ''].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, rows.map((a) => h('tr', {}, h('td', { text: a.day }), h('td', { text: names.get(a.endUserId) || a.endUserId, title: a.endUserId }), h('td', { text: a.label }),
          h('td', { class: 'num', text: String(a.events) }), h('td', { class: 'num', text: String(a.minutes) }),
          h('td', { text: a.passive ? 'passive' : '' }))))))
        : h('p', { class: 'muted', text: 'No recent activity.' }));
  }

  // ---------- boot ----------
  document.addEventListener('DOMContentLoaded', () => {
    document.getElementById('signout').addEventListener('click', () => signOut('Signed out.'));
    token = readToken();
    if (!token) { renderSignIn(); return; }
    start().catch((e) => renderSignIn(e.message));
  });
