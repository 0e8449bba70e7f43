  // ---------- unmatched identities: what a mapping could not use, and its recovery ----------
  // Joined after app.js into the same function scope (see shared/src/api/web.rs).

  /**
   * Per reason: the label of one identity ("Why"), how its identities are counted (one, many),
   * and what the user can do about it (only reasons the directory can cure say to add them).
   */
  const UNMATCHED = {
    companyNotInDirectory: { label: 'company not in the directory', one: 'company not in the directory', many: 'companies not in the directory',
      advice: 'Add the missing companies to the directory (Directory tab: a CSV file or an import from Pendo); their days can then be recovered.' },
    notInDirectory: { label: 'not in the directory', one: 'asset or project not in the directory', many: 'assets or projects not in the directory',
      advice: 'Add the missing assets or projects to the directory; their days can then be recovered.' },
    endUserNotFound: { label: 'end user not found (creation off)', one: 'end user not found (creation off)', many: 'end users not found (creation off)',
      advice: 'Add the missing end users to the directory, or turn on "Auto-create users" for this mapping; their days can then be recovered.' },
    noCompanyId: { label: 'no company id', one: 'visitor without a company id', many: 'visitors without a company id', rowsOnly: 'rows without a company id',
      advice: 'Pendo sent these visitors\' rows without a company (account) id: nothing in the directory can match them until Pendo has one.' },
    anonymousVisitor: { label: 'anonymous visitor', one: 'anonymous visitor', many: 'anonymous visitors', rowsOnly: 'rows of anonymous visitors',
      advice: 'Anonymous visitors (_PENDO_T_…) have no identity to match: they are never in the directory, and their rows are counted here only.' },
    noId: { label: 'no id', rowsOnly: 'rows without an id',
      advice: 'These rows carry no id in the field the mapping\'s target reads.' },
  };

  /** "1 row", "412 rows". */
  const rowsText = (n) => `${n} ${n === 1 ? 'row' : 'rows'}`;

  /**
   * One reason's line: "412 rows from 7 companies not in the directory"; "60 rows of 11
   * visitors without a company id"; when the identities past the listed bound were only
   * counted, "at least 7"; a reason without identities, "12 rows without an id".
   */
  function unmatchedLine(reason, t) {
    const u = UNMATCHED[reason] || { rowsOnly: `rows (${reason})` };
    if (!u.many || !t.identities) return `${rowsText(t.rows)}${(u.rowsOnly || `rows from ${u.many}`).replace(/^rows/, '')}`;
    const n = t.otherRows > 0 ? `at least ${t.identities}` : String(t.identities);
    const who = t.identities === 1 && !(t.otherRows > 0) ? u.one : u.many;
    const link = reason === 'noCompanyId' || reason === 'anonymousVisitor' ? 'of' : 'from';
    return `${rowsText(t.rows)} ${link} ${n} ${who}`;
  }

  async function refreshUnmatched() {
    try {
      state.unmatched = new Map((await api('GET', '/v1/unmatched')).map((u) => [u.mappingId, u]));
    } catch {
      state.unmatched = new Map();
    }
  }

  /**
   * "Recover all (12 days in 2 mappings)", for the mapping tab's head when any mapping has days
   * the directory now resolves: one recovery per such mapping (POST /v1/recover), each shown in
   * its row's progress slot.
   */
  function recoverAllSlot() {
    const slot = h('div', { class: 'recover-all' });
    const list = [...(state.unmatched || new Map()).values()].filter((u) => u.recoverableDays > 0);
    if (!list.length) return slot;
    const days = list.reduce((n, u) => n + u.recoverableDays, 0);
    const btn = h('button', {
      type: 'button', class: 'secondary', text: `Recover all (${count(days, 'day')} in ${count(list.length, 'mapping')})`,
      onclick: () => submit(btn, slot, async () => {
        const r = await api('POST', '/v1/recover');
        toast([`Recovering ${count(r.started.length, 'mapping')}.`, ...r.left].join(' '));
        for (const s of r.started) {
          watchRun(s.runId, state.progressSlots.get(s.mappingId), async () => { await refreshMappings(); });
        }
      }),
    });
    slot.append(btn, h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } }));
    return slot;
  }

  /** "412 rows from 7 companies not in the directory — Show", for a mapping's status cell. */
  function unmatchedSummary(m) {
    const u = state.unmatched && state.unmatched.get(m.id);
    if (!u) return null;
    const lines = Object.entries(u.totals).filter(([, t]) => t.rows > 0).map(([reason, t]) => unmatchedLine(reason, t));
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
      Object.entries(UNMATCHED).map(([k, u]) => h('option', { value: k, text: u.label })));
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
        recoverable ? h('p', { class: 'muted', text: `${recoverable} of these are in the directory now: Recover re-fetches only their days (the next daily run does too).` }) : null,
        // What can be done, per reason present (anonymous visitors are never advised for the directory).
        h('ul', { class: 'muted unmatched-advice' }, Object.entries(v.totals || {}).filter(([, t]) => t.rows > 0)
          .map(([r]) => h('li', { dataset: { reason: r }, text: (UNMATCHED[r] || {}).advice || r }))),
        v.identities.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'unmatched' },
          h('thead', {}, h('tr', {}, ['Pendo id', 'Why', 'Rows', 'Value', 'First day', 'Last day'].map((t) => h('th', { scope: 'col', text: t })))),
          h('tbody', {}, v.identities.map((i) => h('tr', { dataset: { reason: i.reason } }, h('td', { text: i.identity || '(none)' }),
            h('td', { text: (UNMATCHED[i.reason] || { label: i.reason }).label }), h('td', { class: 'num', text: String(i.rows) }),
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
