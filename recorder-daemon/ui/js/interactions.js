// The Interactions page: per-column filters as the store supports them, sorting, paging,
// column choice, saved searches and the action menu.
import { h, toast, saveBlob, modal, navigate } from './util.js';
import { api, can, mediaUrl } from './api.js';
import { COLUMNS, tick } from './columns.js';

const COLS_KEY = 'recorder.columns';
const PAGE_SIZES = [10, 25, 50, 100];

function visibleColumns() {
  try {
    const saved = JSON.parse(localStorage.getItem(COLS_KEY));
    if (Array.isArray(saved)) return new Set(saved);
  } catch { /* default */ }
  return new Set(COLUMNS.filter((c) => !c.hidden).map((c) => c.id));
}

/** Reads the query state from the address bar, so a search survives a reload and is a link. */
function stateFromUrl() {
  const q = new URLSearchParams(location.search);
  return {
    filters: [...q.entries()].filter(([k]) => !['sort', 'order', 'page', 'pageSize'].includes(k)),
    sort: q.get('sort') || 'startTime',
    order: q.get('order') || 'desc',
    page: Number(q.get('page')) || 1,
    pageSize: Number(q.get('pageSize')) || 25,
  };
}

function queryString(st, paging = true) {
  const q = new URLSearchParams(st.filters);
  q.set('sort', st.sort);
  q.set('order', st.order);
  if (paging) { q.set('page', st.page); q.set('pageSize', st.pageSize); }
  return q.toString();
}

export async function interactionsPage(main, me) {
  document.title = 'Interactions - Recorder';
  const st = stateFromUrl();
  const cols = visibleColumns();
  const selected = new Set();
  let rows = [];
  let total = 0;
  let totalIsLowerBound = false;
  const tags = await api('/tags');

  const setFilter = (key, values) => {
    st.filters = st.filters.filter(([k]) => k !== key);
    for (const v of [].concat(values)) if (v !== '' && v != null) st.filters.push([key, v]);
    st.page = 1;
    load();
  };
  const getFilter = (key) => st.filters.filter(([k]) => k === key).map(([, v]) => v);

  const status = h('p', { role: 'status', class: 'muted', 'aria-live': 'polite' });
  const err = h('p', { class: 'err', role: 'alert' });
  const table = h('table', { 'aria-describedby': 'ix-status' });
  status.id = 'ix-status';
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });

  function filterControl(c) {
    const f = c.filter;
    if (!f) return '';
    const label = `Filter ${c.label}`;
    if (f.kind === 'text') {
      const i = h('input', { type: 'text', 'aria-label': label, placeholder: f.hint, value: getFilter(f.key)[0] || '' });
      i.addEventListener('change', () => setFilter(f.key, i.value.trim()));
      return i;
    }
    if (f.kind === 'select' || f.kind === 'tag') {
      const opts = f.kind === 'tag' ? tags.map((t) => t.name) : f.options;
      const cur = getFilter(f.key)[0] || '';
      const s = h('select', { 'aria-label': label },
        h('option', { value: '' }, 'All'),
        opts.map((o) => h('option', { value: o, selected: o === cur }, o)));
      s.addEventListener('change', () => setFilter(f.key, s.value));
      return s;
    }
    if (f.kind === 'dates') {
      const mk = (key, lab, suffix) => {
        const v = getFilter(key)[0];
        const i = h('input', { type: 'date', 'aria-label': `${c.label} ${lab}`, value: v ? v.slice(0, 10) : '' });
        i.addEventListener('change', () => setFilter(key, i.value ? `${i.value}${suffix}` : ''));
        return i;
      };
      return h('span', {}, mk('from', 'from', 'T00:00:00Z'), ' ', mk('to', 'to', 'T23:59:59Z'));
    }
    if (f.kind === 'times') {
      const mk = (key, lab) => {
        const i = h('input', { type: 'time', 'aria-label': `${c.label} ${lab} (UTC)`, value: getFilter(key)[0] || '' });
        i.addEventListener('change', () => setFilter(key, i.value));
        return i;
      };
      return h('span', {}, mk('timeFrom', 'from'), ' ', mk('timeTo', 'to'));
    }
    return '';
  }

  function header() {
    const shown = COLUMNS.filter((c) => cols.has(c.id));
    const allBox = h('input', { type: 'checkbox', 'aria-label': 'Select all on this page',
      checked: rows.length > 0 && rows.every((r) => selected.has(r.id)) });
    allBox.addEventListener('change', () => {
      for (const r of rows) allBox.checked ? selected.add(r.id) : selected.delete(r.id);
      body();
      actions();
    });
    const heads = shown.map((c) => {
      const sorted = c.sort && st.sort === c.sort;
      const aria = sorted ? (st.order === 'asc' ? 'ascending' : 'descending') : (c.sort ? 'none' : null);
      return h('th', { scope: 'col', 'aria-sort': aria },
        c.sort ? h('button', { type: 'button', class: 'sort', onclick: () => {
          if (st.sort === c.sort) st.order = st.order === 'asc' ? 'desc' : 'asc';
          else { st.sort = c.sort; st.order = 'asc'; }
          load();
        } }, c.label, sorted ? (st.order === 'asc' ? ' ▲' : ' ▼') : '') : c.label);
    });
    return h('thead', {},
      h('tr', {}, h('th', { scope: 'col' }, allBox), heads),
      h('tr', { class: 'filters' }, h('th', {}, ''), shown.map((c) => h('th', {}, filterControl(c)))));
  }

  function body() {
    const shown = COLUMNS.filter((c) => cols.has(c.id));
    const tb = h('tbody', {}, rows.map((r) => {
      const box = h('input', { type: 'checkbox', 'aria-label': `Select call ${r.id}`, checked: selected.has(r.id) });
      box.addEventListener('change', () => { box.checked ? selected.add(r.id) : selected.delete(r.id); actions(); });
      const tr = h('tr', { class: r.mediaStatus === 'Recording' ? 'active' : '', 'data-id': r.id },
        h('td', {}, box), shown.map((c) => h('td', {}, c.cell(r))));
      tr.addEventListener('dblclick', () => navigate(`/ui/interactions/${r.id}`));
      return tr;
    }));
    table.replaceChildren(header(), tb);
    if (!rows.length) tb.append(h('tr', {}, h('td', { colspan: shown.length + 1 }, 'No interactions match.')));
  }

  // A broad search's total is a lower bound (the server stops counting): shown as "1,000+",
  // and the next page stays reachable while pages come back full.
  const shownTotal = () => (totalIsLowerBound ? `${total.toLocaleString('en-US')}+` : `${total}`);

  function pages() {
    const last = Math.max(1, Math.ceil(total / st.pageSize));
    const size = h('select', { id: 'page-size' }, PAGE_SIZES.map((n) => h('option', { value: n, selected: n === st.pageSize }, n)));
    size.addEventListener('change', () => { st.pageSize = Number(size.value); st.page = 1; load(); });
    const from = rows.length ? (st.page - 1) * st.pageSize + 1 : 0;
    const to = (st.page - 1) * st.pageSize + rows.length;
    const where = totalIsLowerBound ? `page ${st.page}` : `page ${st.page} of ${last}`;
    const noNext = totalIsLowerBound ? rows.length < st.pageSize : st.page >= last;
    pager.replaceChildren(
      h('label', { for: 'page-size' }, 'Rows per page'), size,
      h('button', { type: 'button', disabled: st.page <= 1, onclick: () => { st.page--; load(); } }, 'Previous page'),
      h('span', {}, `${from}–${to} of ${shownTotal()} (${where})`),
      h('button', { type: 'button', disabled: noNext, onclick: () => { st.page++; load(); } }, 'Next page'));
  }

  async function load() {
    const qs = queryString(st);
    history.replaceState(null, '', `/ui/interactions?${qs}`);
    err.textContent = '';
    try {
      const p = await api(`/interactions?${qs}`);
      rows = p.items;
      total = p.total;
      totalIsLowerBound = p.totalIsLowerBound === true;
      status.textContent = `${shownTotal()} interaction${total === 1 && !totalIsLowerBound ? '' : 's'}`;
    } catch (e) {
      rows = [];
      total = 0;
      totalIsLowerBound = false;
      err.textContent = e.message;
    }
    body();
    pages();
    actions();
  }

  // Select Columns.
  const colMenu = h('details', { class: 'menu' }, h('summary', {}, 'Select Columns'),
    h('div', { class: 'pop', role: 'group', 'aria-label': 'Columns' }, COLUMNS.map((c) => {
      const b = h('input', { type: 'checkbox', id: `col-${c.id}`, checked: cols.has(c.id) });
      b.addEventListener('change', () => {
        b.checked ? cols.add(c.id) : cols.delete(c.id);
        localStorage.setItem(COLS_KEY, JSON.stringify([...cols]));
        body();
      });
      return h('span', {}, b, h('label', { for: `col-${c.id}` }, ` ${c.label}`));
    })));

  // Saved searches.
  const savedSel = h('select', { id: 'saved' });
  async function loadSaved() {
    const list = await api('/saved-searches');
    savedSel.replaceChildren(h('option', { value: '' }, '(none)'),
      ...list.map((s) => h('option', { value: s.query, 'data-id': s.id }, s.name)));
  }
  savedSel.addEventListener('change', () => {
    if (!savedSel.value) return;
    const q = new URLSearchParams(savedSel.value);
    st.filters = [...q.entries()].filter(([k]) => !['sort', 'order', 'page', 'pageSize'].includes(k));
    st.sort = q.get('sort') || st.sort;
    st.order = q.get('order') || st.order;
    st.page = 1;
    load();
  });
  const saveBtn = h('button', { type: 'button', onclick: async () => {
    const name = h('input', { type: 'text', name: 'name', id: 'saved-name', required: true, maxlength: 100 });
    const fd = await modal('Save search', h('div', {}, h('label', { for: 'saved-name' }, 'Name'), name), 'Save');
    if (!fd) return;
    try {
      await api('/saved-searches', { method: 'POST', body: { name: fd.get('name'), query: queryString(st, false) } });
      toast('Search saved');
      await loadSaved();
    } catch (e) { toast(`Not saved: ${e.message}`); }
  } }, 'Save search');
  const delSaved = h('button', { type: 'button', onclick: async () => {
    const o = savedSel.selectedOptions[0];
    if (!o || !o.dataset.id) return;
    await api(`/saved-searches/${o.dataset.id}`, { method: 'DELETE' });
    toast('Saved search deleted');
    await loadSaved();
  } }, 'Delete saved search');
  const clear = h('button', { type: 'button', onclick: () => { st.filters = []; st.page = 1; savedSel.value = ''; render(); } }, 'Clear filters');

  // Actions: only those the caller may perform are offered.
  const actionPop = h('div', { class: 'pop', role: 'group', 'aria-label': 'Actions' });
  const actionMenu = h('details', { class: 'menu', id: 'actions' }, h('summary', {}, 'Actions'), actionPop);
  function actions() {
    const n = selected.size;
    const items = [];
    if (can(me, 'download')) {
      items.push(h('button', { type: 'button', disabled: n !== 1, title: 'Select one call',
        onclick: () => { downloadAudio([...selected][0]); } }, 'Download Audio'));
    }
    items.push(h('button', { type: 'button', onclick: exportCsv }, n ? `Export CSV (${n} selected)` : 'Export CSV (whole search)'));
    if (can(me, 'tag')) items.push(h('button', { type: 'button', disabled: !n, onclick: tagCalls }, 'Tag'));
    if (can(me, 'deleteCalls')) items.push(h('button', { type: 'button', disabled: !n, onclick: deleteCalls }, 'Delete Calls'));
    actionPop.replaceChildren(...items);
  }
  function downloadAudio(id) {
    actionMenu.open = false;
    const a = h('a', { href: mediaUrl(id, 'merged', true), download: `interaction-${id}.ogg` });
    document.body.append(a);
    a.click();
    a.remove();
  }
  async function exportCsv() {
    actionMenu.open = false;
    try {
      const r = selected.size
        ? await api('/interactions/export', { method: 'POST', body: { interactionIds: [...selected] }, raw: true })
        : await api(`/interactions/export?${queryString(st, false)}`, { raw: true });
      saveBlob(await r.blob(), 'interactions.csv');
      toast('Export ready');
    } catch (e) { toast(`Export failed: ${e.message}`); }
  }
  async function tagCalls() {
    actionMenu.open = false;
    const box = h('fieldset', {}, h('legend', {}, `Tags of ${selected.size} call(s) (replaces their tags)`),
      tags.length ? tags.map((t) => h('div', {}, h('input', { type: 'checkbox', name: 'tag', value: t.id, id: `tag-${t.id}` }),
        h('label', { for: `tag-${t.id}` }, ` ${t.name}`))) : h('p', {}, 'No tags are defined.'));
    const fd = await modal('Tag', box, 'Apply');
    if (!fd) return;
    try {
      await api('/interactions/tags', { method: 'PUT', body: { interactionIds: [...selected], tagIds: fd.getAll('tag').map(Number) } });
      toast('Tags set');
      load();
    } catch (e) { toast(`Not tagged: ${e.message}`); }
  }
  async function deleteCalls() {
    actionMenu.open = false;
    const form = h('div', {},
      h('fieldset', {}, h('legend', {}, 'Delete'),
        h('div', {}, h('input', { type: 'radio', name: 'scope', value: 'metadataAndMedia', id: 'del-all', checked: true }), h('label', { for: 'del-all' }, ' Metadata and media')),
        h('div', {}, h('input', { type: 'radio', name: 'scope', value: 'mediaOnly', id: 'del-media' }), h('label', { for: 'del-media' }, ' Media only'))),
      h('label', { for: 'del-by' }, 'Authorized By'), h('input', { type: 'text', name: 'authorizedBy', id: 'del-by', required: true, maxlength: 1000 }),
      h('label', { for: 'del-note' }, 'Note'), h('textarea', { name: 'note', id: 'del-note', required: true, maxlength: 1000 }),
      h('p', { class: 'muted' }, 'Deletion runs in the next retention cycle; calls of users on legal hold are refused.'));
    const fd = await modal(`Delete ${selected.size} call(s)`, form, 'Delete');
    if (!fd) return;
    const body = { scope: fd.get('scope'), authorizedBy: fd.get('authorizedBy'), note: fd.get('note') };
    const failed = [];
    for (const id of selected) {
      try { await api(`/interactions/${id}/deletion`, { method: 'POST', body }); } catch (e) { failed.push(`${id}: ${e.message}`); }
    }
    toast(failed.length ? `Refused: ${failed.join('; ')}` : 'Deletion requested');
    load();
  }

  function render() {
    main.replaceChildren(
      h('h1', {}, 'Interactions'),
      h('div', { class: 'toolbar' },
        h('label', { for: 'saved' }, 'Saved searches'), savedSel, saveBtn, delSaved, clear,
        h('span', { class: 'spacer' }), colMenu, actionMenu),
      err, status, h('div', { class: 'tablewrap' }, table), pager);
    load();
  }
  render();
  loadSaved().catch(() => {});
  const ticker = setInterval(() => tick(table), 1000);
  const closeMenus = (ev) => { for (const d of main.querySelectorAll('details.menu[open]')) if (!d.contains(ev.target)) d.open = false; };
  document.addEventListener('click', closeMenus);
  return () => { clearInterval(ticker); document.removeEventListener('click', closeMenus); };
}
