// Settings: tags, recording profiles, access profiles, users (legal hold), audit trail,
// system activity and storage status. Endpoints another release adds (storages, alarms,
// activity, recording profiles) show "not available" on 404 instead of failing.
import { h, toast, modal, saveBlob, dateTime } from './util.js';
import { api, can } from './api.js';

const any = (me, ...p) => p.some((x) => can(me, x));

export const SETTINGS = [
  { id: 'tags', label: 'Tags', visible: (me) => can(me, 'manageTags'), page: tagsPage },
  { id: 'recording-profiles', label: 'Recording profiles', visible: (me) => any(me, 'manageRecordingProfiles', 'configureSystem'), page: recordingProfilesPage },
  { id: 'access-profiles', label: 'Access profiles', visible: (me) => can(me, 'manageAccessProfiles'), page: accessProfilesPage },
  { id: 'users', label: 'Users', visible: (me) => can(me, 'configureSystem'), page: usersPage },
  { id: 'audit', label: 'Audit trail', visible: (me) => can(me, 'auditTrail'), page: auditPage },
  { id: 'activity', label: 'System activity', visible: (me) => can(me, 'configureSystem'), page: activityPage },
  { id: 'storage', label: 'Storage status', visible: (me) => can(me, 'configureSystem'), page: storagePage },
];

export async function settingsPage(main, me, which) {
  const pages = SETTINGS.filter((s) => s.visible(me));
  const cur = pages.find((p) => p.id === which);
  const nav = h('nav', { 'aria-label': 'Settings', class: 'toolbar' }, pages.map((p) =>
    h('a', { href: `/ui/settings/${p.id}`, 'aria-current': p === cur ? 'page' : null }, p.label)));
  document.title = `${cur ? cur.label : 'Settings'} - Recorder`;
  const body = h('section');
  main.replaceChildren(h('h1', {}, cur ? `Settings: ${cur.label}` : 'Settings'), nav, body);
  if (!cur) {
    body.append(pages.length ? h('p', {}, 'Choose a page.') : h('p', { role: 'alert' }, 'Your access profile allows no settings.'));
    return null;
  }
  return cur.page(body, me);
}

let documented = null;
/** The API paths this daemon serves, from its OpenAPI document (the API's own truth). */
async function paths() {
  if (!documented) {
    const r = await fetch('/api/v1/openapi.json');
    documented = r.ok ? Object.keys((await r.json()).paths) : [];
  }
  return documented;
}

/** GET of a route a later release adds: "not available" when the served OpenAPI document
 * does not list it (no request, so no failed request in the console) or it answers 404. */
async function optional(path, body) {
  const na = () => body.append(h('p', { class: 'na', role: 'status' }, 'Not available on this server.'));
  if (!(await paths()).includes(`/api/v1${path}`)) { na(); return null; }
  try {
    return await api(path);
  } catch (e) {
    body.append(h('p', { class: 'na', role: 'status' },
      e.status === 404 ? 'Not available on this server.' : `Error: ${e.message}`));
    return null;
  }
}

function table(headers, rows) {
  return h('div', { class: 'tablewrap' }, h('table', {},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.length ? rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c ?? ''))))
      : h('tr', {}, h('td', { colspan: headers.length }, 'None.')))));
}

/** Generic table of whatever objects an optional endpoint returns. */
function objects(list) {
  const items = Array.isArray(list) ? list : (list.items || []);
  const keys = [...new Set(items.flatMap((o) => Object.keys(o)))].slice(0, 10);
  return table(keys, items.map((o) => keys.map((k) => (typeof o[k] === 'object' && o[k] !== null ? JSON.stringify(o[k]) : String(o[k] ?? '')))));
}

async function tagsPage(body) {
  async function draw() {
    const tags = await api('/tags');
    body.replaceChildren(
      h('p', {}, h('button', { type: 'button', class: 'primary', onclick: () => edit() }, 'New tag')),
      table(['Name', 'Description', ''], tags.map((t) => [t.name, t.description, h('span', {},
        h('button', { type: 'button', 'aria-label': `Edit tag ${t.name}`, onclick: () => edit(t) }, 'Edit'), ' ',
        h('button', { type: 'button', 'aria-label': `Delete tag ${t.name}`, onclick: async () => {
          try { await api(`/tags/${t.id}`, { method: 'DELETE' }); toast('Tag deleted'); draw(); } catch (e) { toast(e.message); }
        } }, 'Delete'))])));
  }
  async function edit(t) {
    const fd = await modal(t ? 'Edit tag' : 'New tag', h('div', {},
      h('label', { for: 'tag-name' }, 'Name'), h('input', { type: 'text', id: 'tag-name', name: 'name', required: true, maxlength: 100, value: t ? t.name : '' }),
      h('label', { for: 'tag-desc' }, 'Description'), h('input', { type: 'text', id: 'tag-desc', name: 'description', maxlength: 1000, value: t ? t.description : '' })), 'Save');
    if (!fd) return;
    try {
      await api(t ? `/tags/${t.id}` : '/tags', { method: t ? 'PUT' : 'POST', body: { name: fd.get('name'), description: fd.get('description') } });
      toast('Tag saved');
      draw();
    } catch (e) { toast(e.message); }
  }
  await draw();
  return null;
}

async function recordingProfilesPage(body) {
  const list = await optional('/recording-profiles', body);
  if (list) body.append(objects(list));
  return null;
}

async function accessProfilesPage(body) {
  const list = await api('/access-profiles');
  body.append(table(['Name', 'Groups', 'Call access', 'Call access groups', 'Permissions', 'Global admin'],
    list.map((p) => [p.name, p.groups.join(', '), p.callAccess, p.callAccessGroups.join(', '), p.permissions.join(', '), p.globalAdmin ? 'Yes' : 'No'])));
  return null;
}

async function usersPage(body) {
  const users = await api('/users');
  body.append(table(['Name', 'UPN', 'Groups', 'Recording profile', 'Legal hold'], users.map((u) => {
    const box = h('input', { type: 'checkbox', checked: u.legalHold, 'aria-label': `Legal hold for ${u.upn}` });
    box.addEventListener('change', async () => {
      try {
        await api(`/users/${encodeURIComponent(u.oid)}/legal-hold`, { method: 'PUT', body: { legalHold: box.checked } });
        toast(`Legal hold ${box.checked ? 'on' : 'off'} for ${u.upn}`);
      } catch (e) { box.checked = !box.checked; toast(e.message); }
    });
    return [u.displayName, u.upn, u.groups.join(', '), u.recordingProfile || '', box];
  })));
  return null;
}

const ACTIONS = ['login', 'view', 'play', 'download', 'export', 'add', 'modify', 'delete', 'disable', 'legal hold'];

async function auditPage(body) {
  const f = {};
  const field = (key, label, el) => { f[key] = el; el.id = `audit-${key}`; return h('span', {}, h('label', { for: el.id }, `${label} `), el); };
  const out = h('div');
  let page = 1;
  const query = () => {
    const q = new URLSearchParams();
    for (const [k, el] of Object.entries(f)) {
      if (!el.value) continue;
      q.set(k, k === 'from' ? `${el.value}T00:00:00Z` : k === 'to' ? `${el.value}T23:59:59Z` : el.value);
    }
    return q;
  };
  async function load() {
    const q = query();
    q.set('page', page);
    q.set('pageSize', 50);
    try {
      const p = await api(`/audit?${q}`);
      out.replaceChildren(h('p', { role: 'status' }, `${p.total} entries`),
        table(['When', 'User', 'Action', 'Item type', 'Item', 'Description'], p.items.map((e) => [dateTime(e.at), e.userUpn || e.userOid, e.action, e.itemType, e.item, e.description])),
        h('div', { class: 'pager' },
          h('button', { type: 'button', disabled: page <= 1, onclick: () => { page--; load(); } }, 'Previous page'),
          h('span', {}, `page ${page}`),
          h('button', { type: 'button', disabled: page * 50 >= p.total, onclick: () => { page++; load(); } }, 'Next page')));
    } catch (e) { out.replaceChildren(h('p', { class: 'err', role: 'alert' }, e.message)); }
  }
  body.append(h('form', { class: 'toolbar', onsubmit: (ev) => { ev.preventDefault(); page = 1; load(); } },
    field('from', 'From', h('input', { type: 'date' })), field('to', 'To', h('input', { type: 'date' })),
    field('name', 'User', h('input', { type: 'text' })),
    field('action', 'Action', h('select', {}, h('option', { value: '' }, 'All'), ACTIONS.map((a) => h('option', { value: a }, a)))),
    field('item', 'Item', h('input', { type: 'text' })), field('text', 'Description', h('input', { type: 'text' })),
    h('button', { type: 'submit', class: 'primary' }, 'Search'),
    h('button', { type: 'button', onclick: async () => {
      try { saveBlob(await (await api(`/audit/export?${query()}`, { raw: true })).blob(), 'audit.csv'); } catch (e) { toast(e.message); }
    } }, 'Export CSV')), out);
  await load();
  return null;
}

async function activityPage(body) {
  const list = await optional('/activity', body);
  if (list) body.append(objects(list));
  return null;
}

async function storagePage(body) {
  body.append(h('h2', {}, 'Storages'));
  const s = await optional('/storages', body);
  if (s) body.append(objects(s));
  body.append(h('h2', {}, 'Alarms'));
  const a = await optional('/alarms', body);
  if (a) body.append(objects(a));
  return null;
}
