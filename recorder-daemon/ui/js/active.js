// Active Calls and My Active Calls: the calls being recorded now, refreshed in place.
import { h, time, toast, modal } from './util.js';
import { api, can } from './api.js';
import { durationCell, tick } from './columns.js';

const REFRESH_MS = 5000;

export async function activePage(main, me, mine) {
  const title = mine ? 'My Active Calls' : 'Active Calls';
  document.title = `${title} - Recorder`;
  const tags = can(me, 'tag') ? await api('/tags') : [];
  const status = h('p', { role: 'status', class: 'muted' });
  const err = h('p', { class: 'err', role: 'alert' });
  const tbody = h('tbody');
  const table = h('table', {}, h('thead', {}, h('tr', {},
    ['User', 'Start Time', 'Duration', 'Calling Party', 'Called Party', 'Call Type', 'Tags', 'Notes', 'Actions']
      .map((c) => h('th', { scope: 'col' }, c)))), tbody);
  main.replaceChildren(h('h1', {}, title), err, status, h('div', { class: 'tablewrap' }, table));

  async function tag(r) {
    const box = h('fieldset', {}, h('legend', {}, 'Tags (replaces the call\'s tags)'),
      tags.map((t) => h('div', {}, h('input', { type: 'checkbox', name: 'tag', value: t.id, id: `atag-${t.id}`, checked: r.tags.includes(t.name) }),
        h('label', { for: `atag-${t.id}` }, ` ${t.name}`))));
    const fd = await modal(`Tag call ${r.id}`, box, 'Apply');
    if (!fd) return;
    try {
      await api('/interactions/tags', { method: 'PUT', body: { interactionIds: [r.id], tagIds: fd.getAll('tag').map(Number) } });
      toast('Tags set');
      refresh();
    } catch (e) { toast(e.message); }
  }
  async function note(r) {
    const fd = await modal(`Note on call ${r.id}`, h('div', {}, h('label', { for: 'anote' }, 'Note'),
      h('textarea', { id: 'anote', name: 'text', required: true, maxlength: 10000 })), 'Add note');
    if (!fd) return;
    try {
      await api(`/interactions/${r.id}/notes`, { method: 'POST', body: { text: fd.get('text') } });
      toast('Note added');
      refresh();
    } catch (e) { toast(e.message); }
  }

  async function refresh() {
    const q = new URLSearchParams({ sort: 'startTime', order: 'desc', pageSize: '200' });
    if (mine) q.set('user', me.upn || me.oid);
    try {
      const p = await api(`/interactions/active?${q}`);
      err.textContent = '';
      status.textContent = `${p.total}${p.totalIsLowerBound ? '+' : ''} active call${p.total === 1 && !p.totalIsLowerBound ? '' : 's'}, refreshed ${time(new Date().toISOString())} UTC`;
      tbody.replaceChildren(...p.items.map((r) => h('tr', { class: 'active', 'data-id': r.id },
        h('td', {}, h('a', { href: `/ui/interactions/${r.id}` }, r.targetDisplayName || r.targetUpn || '(unknown)')),
        h('td', {}, time(r.startTime)), h('td', {}, durationCell(r)),
        h('td', {}, r.callingParty), h('td', {}, r.calledParty), h('td', {}, r.callType),
        h('td', {}, r.tags.map((t) => h('span', { class: 'chip' }, t))),
        h('td', {}, r.notes.join(' | ').slice(0, 60)),
        h('td', {},
          can(me, 'tag') ? h('button', { type: 'button', onclick: () => tag(r) }, 'Tag') : '', ' ',
          can(me, 'addNotes') ? h('button', { type: 'button', onclick: () => note(r) }, 'Add note') : ''))));
      if (!p.items.length) tbody.append(h('tr', {}, h('td', { colspan: 9 }, 'No call is being recorded.')));
    } catch (e) { err.textContent = e.message; }
  }
  await refresh();
  const poll = setInterval(refresh, REFRESH_MS);
  const ticker = setInterval(() => tick(tbody), 1000);
  return () => { clearInterval(poll); clearInterval(ticker); };
}
