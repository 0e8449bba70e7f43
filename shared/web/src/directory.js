  // ---------- directory: import from Pendo, CSV upload ----------
  // Joined after app.js into the same function scope (see shared/src/api/web.rs).

  const SKIP_REASONS = {
    noCompanyId: 'no company id',
    companyNotInDirectory: 'company not in the directory',
    noIdOrEmail: 'no end-user id or email',
    emailTaken: 'email of another end user',
    repeated: 'repeats an earlier row',
    invalid: 'invalid value',
  };

  /** A CSV file PUT as it is (the browser streams it); the JSON answer, or an ApiError. */
  async function uploadCsv(path, file) {
    let resp;
    try {
      resp = await fetch(path, { method: 'PUT', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'text/csv' }, body: file });
    } catch (e) {
      throw new ApiError(0, { error: { code: 'network', message: `the server could not be reached (${e.message})` } });
    }
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    if (!resp.ok) throw new ApiError(resp.status, json);
    return json;
  }

  function countsTable(caption, counts) {
    const skipped = Object.entries(counts.skipped || {});
    const rows = [['Read from Pendo', counts.read], ['New', counts.created], ['Filled in (empty fields)', counts.filled],
      ['Unchanged', counts.unchanged], ...skipped.map(([k, n]) => [`Skipped: ${SKIP_REASONS[k] || k}`, n])];
    return h('table', { class: 'counts', dataset: { counts: caption } }, h('caption', { text: caption }),
      h('tbody', {}, rows.map(([k, n]) => h('tr', {}, h('th', { scope: 'row', text: k }), h('td', { class: 'num', text: String(n) })))));
  }

  function sampleTable(sample) {
    if (!sample.length) return h('p', { class: 'muted', text: 'Nothing would change.' });
    return h('div', { class: 'table-wrap' }, h('table', { class: 'sample' },
      h('thead', {}, h('tr', {}, ['Pendo id', 'Would', 'External id', 'Company', 'Name', 'Email / why'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, sample.map((r) => h('tr', { dataset: { action: r.action } }, h('td', { text: r.pendoId }),
        h('td', { text: r.action === 'fill' ? 'fill in' : r.action }), h('td', { text: r.externalId || '' }), h('td', { text: r.companyId || '' }),
        h('td', { text: [r.name, r.surname].filter(Boolean).join(' ') }), h('td', { text: r.reason || r.email || '' }))))));
  }

  function importState(job) {
    const done = `${job.pages} page${job.pages === 1 ? '' : 's'} read`;
    if (job.state === 'finished') return `Finished: ${done}.`;
    if (job.state === 'failed') return `Failed after ${done}: ${job.error || 'unknown error'}`;
    return `Running (${job.stage === 'companies' ? 'companies' : 'end users'}): ${done} so far…`;
  }

  /** Polls an import until it ends, redrawing `slot` each time. */
  function watchImport(id, slot) {
    const draw = (job) => slot.replaceChildren(h('p', { role: 'status', class: `import-${job.state}`, text: importState(job) }),
      h('div', { class: 'counts-pair' }, countsTable('Companies', job.companies), countsTable('End users', job.endUsers)));
    const tick = async () => {
      let job;
      try { job = await api('GET', `/v1/imports/${encodeURIComponent(id)}`); } catch (e) { slot.replaceChildren(h('p', { class: 'error-text', text: e.message })); return; }
      draw(job);
      if (job.state === 'running') setTimeout(tick, 700);
      else refreshDirectorySizes();
    };
    tick();
  }

  function importCard() {
    const nameField = h('input', { type: 'text', name: 'companyNameField', value: 'metadata.agent.name', autocomplete: 'off' });
    const companies = h('input', { type: 'checkbox', name: 'companies', checked: true });
    const endUsers = h('input', { type: 'checkbox', name: 'endUsers', checked: true });
    const out = h('div', { id: 'import-result', 'aria-live': 'polite' });
    const preview = h('button', { type: 'button', class: 'secondary', text: 'Preview (dry run)' });
    const run = h('button', { type: 'button', text: 'Import' });
    const card = h('section', { class: 'card', id: 'import-card' }, h('h3', { text: 'Import from Pendo' }),
      h('p', { class: 'muted', text: 'Companies from your Pendo accounts, end users from identified visitors, read through the field mappings. Nothing that is filled in is overwritten; preview first to see what would change.' }),
      h('div', { class: 'actions' }, h('label', { class: 'check' }, companies, 'Companies'), h('label', { class: 'check' }, endUsers, 'End users')),
      field('Company name field (account)', nameField, 'companyNameField', 'A path into account metadata; leave empty for no names.'),
      h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } }),
      h('div', { class: 'actions' }, preview, run), out);
    const body = (dryRun) => ({ dryRun, companies: companies.checked, endUsers: endUsers.checked, companyNameField: nameField.value.trim() || null });
    preview.addEventListener('click', () => submit(preview, card, async () => {
      out.replaceChildren(h('p', { class: 'muted', text: 'Reading from Pendo…' }));
      const p = await api('POST', '/v1/imports', body(true));
      out.replaceChildren(h('p', { role: 'status', text: `Preview: ${p.pendoCalls} Pendo call${p.pendoCalls === 1 ? '' : 's'}; nothing was written.` }),
        h('div', { class: 'counts-pair' }, countsTable('Companies', p.companies), countsTable('End users', p.endUsers)), sampleTable(p.sample));
    }));
    run.addEventListener('click', () => submit(run, card, async () => {
      const job = await api('POST', '/v1/imports', body(false));
      watchImport(job.id, out);
    }));
    if (!connected()) {
      for (const b of [preview, run]) b.disabled = true;
      out.replaceChildren(h('p', { class: 'muted', text: 'Connect Pendo first.' }));
    }
    return card;
  }

  function uploadCard() {
    const kind = h('select', { name: 'kind' }, [['companies', 'Companies'], ['end-users', 'End users'], ['assets', 'Assets'], ['projects', 'Projects']]
      .map(([v, t]) => h('option', { value: v, text: t })));
    const file = h('input', { type: 'file', name: 'file', accept: '.csv,text/csv' });
    const out = h('div', { id: 'upload-result', 'aria-live': 'polite' });
    const send = h('button', { type: 'submit', text: 'Upload' });
    const columns = h('p', { class: 'hint' });
    const showColumns = () => {
      columns.textContent = `Header row: ${kind.value === 'end-users' ? 'companyId,externalId,email,name,surname' : 'externalId,name,companyId'} (at most 100,000 rows). An empty cell leaves the stored field as it is; a cell of - clears it.${kind.value === 'end-users' ? ' Each end user\'s company must be in the directory first.' : ''}`;
    };
    kind.addEventListener('change', showColumns);
    showColumns();
    const form = h('form', { class: 'card', id: 'upload-form' }, h('h3', { text: 'Upload a CSV file' }),
      field('Directory', kind, 'kind'), field('File', file, 'header'), columns,
      h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } }), h('div', { class: 'actions' }, send), out);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      submit(send, form, async () => {
        out.replaceChildren();
        const f = file.files && file.files[0];
        if (!f) throw new ApiError(400, { error: { message: 'choose a CSV file', field: 'header' } });
        const r = await uploadCsv(`/v1/directory/${kind.value}`, f);
        const errors = r.errors.slice(0, 20);
        const more = r.errors.length + r.errorsNotListed - errors.length;
        out.replaceChildren(...[h('p', { role: 'status', text: `${r.accepted} of ${r.rows} rows stored.` }),
          errors.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'upload-errors' },
            h('thead', {}, h('tr', {}, ['Line', 'Field', 'Why'].map((t) => h('th', { scope: 'col', text: t })))),
            // A spreadsheet's line numbers: the header is line 1, the first row line 2.
            h('tbody', {}, errors.map((e) => h('tr', {}, h('td', { class: 'num', text: String(e.index + 2) }), h('td', { text: e.field || '' }), h('td', { text: e.message })))))) : null,
          more > 0 ? h('p', { class: 'muted', text: `${more} more rows were refused.` }) : null].filter(Boolean));
        refreshDirectorySizes();
      });
    });
    return form;
  }

  /** Deleting one entry (admins): what happens to its values is said before and after. */
  function deleteCard() {
    const kind = h('select', { name: 'kind' }, [['companies', 'Company'], ['end-users', 'End user'], ['assets', 'Asset'], ['projects', 'Project']]
      .map(([v, t]) => h('option', { value: v, text: t })));
    const id = h('input', { type: 'text', name: 'id', required: 'required', autocomplete: 'off' });
    const hint = h('p', { class: 'hint' });
    const showHint = () => {
      hint.textContent = `${kind.value === 'end-users' ? 'The end user\'s id as the directory lists it (company|x:external id).' : 'The external id.'} Its values and activity stay as stored and are no longer updated; the next Re-sync all drops them.`;
    };
    kind.addEventListener('change', showHint);
    showHint();
    const out = h('p', { id: 'delete-result', role: 'status' });
    const send = h('button', { type: 'submit', class: 'danger', text: 'Delete' });
    const form = h('form', { class: 'card', id: 'delete-entry-form' }, h('h3', { text: 'Delete an entry' }),
      field('Directory', kind, 'kind'), field('Id', id, 'id'), hint,
      h('span', { class: 'err', role: 'alert', dataset: { err: '_form' } }), h('div', { class: 'actions' }, send), out);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      submit(send, form, async () => {
        out.textContent = '';
        const r = await api('DELETE', `/v1/directory/${kind.value}/${encodeURIComponent(id.value.trim())}`);
        out.textContent = `Deleted ${r.deleted}: ${r.values}.`;
        id.value = '';
        refreshDirectorySizes();
      });
    });
    return form;
  }

  async function refreshDirectorySizes() {
    const el = document.getElementById('directory-sizes');
    if (!el) return;
    const sizes = await Promise.all(['companies', 'end-users', 'assets', 'projects']
      .map((k) => api('GET', `/v1/directory/${k}`).then((l) => l.length).catch(() => '?')));
    el.textContent = `In the directory: ${sizes[0]} companies, ${sizes[1]} end users, ${sizes[2]} assets, ${sizes[3]} projects.`;
  }

  function renderDirectory() {
    const p = pane('directory');
    if (!p || !state.integration) return;
    p.replaceChildren(h('h2', { text: 'Directory' }),
      h('p', { id: 'directory-sizes', class: 'muted', role: 'status' }),
      importCard(), uploadCard(), deleteCard());
    adminOnly(p, 'change the directory (uploads, imports from Pendo, deletes)');
    refreshDirectorySizes();
  }
