  // ---------- unmatched identities: what a mapping could not use, and its recovery ----------
  // Joined after app.js into the same function scope (see shared/src/api/web.rs).

  /** Per reason: what its identities are, and a sentence for a count of them. */
  const UNMATCHED = {
    companyNotInDirectory: ['companies not in the directory', 'company'],
    notInDirectory: ['assets or projects not in the directory', 'asset or project'],
    endUserNotFound: ['end users not found (creation off)', 'end user'],
    noCompanyId: ['rows without a company id', 'visitor'],
    anonymousVisitor: ['anonymous visitors', 'visitor'],
    noId: ['rows without an id', 'row'],
  };

  async function refreshUnmatched() {
    try {
      state.unmatched = new Map((await api('GET', '/v1/unmatched')).map((u) => [u.mappingId, u]));
    } catch {
      state.unmatched = new Map();
    }
  }

  /** "412 rows from 7 companies not in the directory — Show", for a mapping's status cell. */
  function unmatchedSummary(m) {
    const u = state.unmatched && state.unmatched.get(m.id);
    if (!u) return null;
    const lines = Object.entries(u.totals).filter(([, t]) => t.rows > 0).map(([reason, t]) => {
      const [what] = UNMATCHED[reason] || [reason];
      const ids = t.identities + (t.otherRows > 0 ? '+' : '');
      return `${t.rows} rows from ${ids} ${what}`;
    });
    if (!lines.length) return null;
    const show = h('button', {
      type: 'button', class: 'link-button', text: 'show', 'aria-label': `Show what ${m.metricName} could not use`,
      onclick: () => showUnmatched(m),
    });
    return h('div', { class: 'unmatched-summary', dataset: { mapping: m.id } },
      h('span', { class: 'warn-text', text: lines.join('; ') }),
      u.recoverableDays ? h('span', { class: 'muted', text: ` (${u.recoverableDays} days recoverable)` }) : null, ' — ', show);
  }

  function csvCell(v) {
    const s = String(v ?? '');
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }

  /** The panel of one mapping's unmatched identities, at the top of the Mapping tab. */
  async function showUnmatched(m) {
    const p = pane('mapping');
    let panel = document.getElementById('unmatched-panel');
    if (!panel) {
      panel = h('section', { class: 'card', id: 'unmatched-panel', 'aria-live': 'polite' });
      p.prepend(panel);
    }
    const reason = h('select', { name: 'reason', 'aria-label': 'Reason' }, h('option', { value: '', text: 'Every reason' }),
      Object.entries(UNMATCHED).map(([k, [what]]) => h('option', { value: k, text: what })));
    const sort = h('select', { name: 'sort', 'aria-label': 'Sort by' }, h('option', { value: 'rows', text: 'Most rows first' }),
      h('option', { value: 'value', text: 'Most value first' }));
    const body = h('div');
    const close = h('button', { type: 'button', class: 'secondary', text: 'Close', onclick: () => panel.remove() });
    const download = h('button', { type: 'button', class: 'secondary', text: 'Download CSV' });
    const recover = h('button', { type: 'button', text: 'Recover' });
    const load = async () => {
      const q = new URLSearchParams({ sort: sort.value, limit: '1000' });
      if (reason.value) q.set('reason', reason.value);
      const v = await api('GET', `/v1/mappings/${encodeURIComponent(m.id)}/unmatched?${q}`);
      const recoverable = Object.values(v.recoverable).reduce((n, ids) => n + ids.length, 0);
      recover.disabled = !v.recoverableDays.length || !connected();
      recover.textContent = v.recoverableDays.length ? `Recover ${v.recoverableDays.length} days` : 'Recover';
      download.onclick = () => {
        const lines = ['reason,pendo_id,rows,value,first_day,last_day',
          ...v.identities.map((i) => [i.reason, i.identity, i.rows, i.value, i.firstDay, i.lastDay].map(csvCell).join(','))];
        const a = h('a', { href: URL.createObjectURL(new Blob([`${lines.join('\n')}\n`], { type: 'text/csv' })), download: `unmatched-${m.id}.csv` });
        document.body.append(a); a.click(); a.remove();
      };
      body.replaceChildren(
        h('p', { class: 'muted', text: recoverable
          ? `${recoverable} of these are in the directory now: Recover re-fetches only their days (the next daily run does too).`
          : 'Add the missing companies or end users to the directory (Directory tab: a CSV file or an import from Pendo); their days can then be recovered.' }),
        v.identities.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'unmatched' },
          h('thead', {}, h('tr', {}, ['Pendo id', 'Why', 'Rows', 'Value', 'First day', 'Last day'].map((t) => h('th', { scope: 'col', text: t })))),
          h('tbody', {}, v.identities.map((i) => h('tr', { dataset: { reason: i.reason } }, h('td', { text: i.identity || '(none)' }),
            h('td', { text: (UNMATCHED[i.reason] || [i.reason])[0] }), h('td', { class: 'num', text: String(i.rows) }),
            h('td', { class: 'num', text: String(Math.round(i.value * 100) / 100) }), h('td', { text: i.firstDay }), h('td', { text: i.lastDay }))))))
          : h('p', { class: 'muted', text: 'Nothing unmatched.' }));
    };
    recover.onclick = () => submit(recover, panel, async () => {
      const { runId } = await api('POST', `/v1/mappings/${encodeURIComponent(m.id)}/recover`);
      recover.disabled = true;
      watchRun(runId, body, async () => { await refreshMappings(); await load(); toast(`${m.metricName}: recovered`); });
    });
    reason.addEventListener('change', () => load().catch((e) => toast(e.message, true)));
    sort.addEventListener('change', () => load().catch((e) => toast(e.message, true)));
    panel.replaceChildren(h('h3', { text: `What "${m.metricName}" could not use` }),
      h('div', { class: 'actions' }, reason, sort, download, recover, close),
      h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } }), body);
    await load().catch((e) => body.replaceChildren(h('p', { class: 'error-text', text: e.message })));
    panel.scrollIntoView({ block: 'nearest' });
  }
