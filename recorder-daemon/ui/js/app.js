// The single page: sign-in, navigation and the client-side routes under /ui/.
import { h } from './util.js';
import { token, setToken, signOut, whoAmI, hasCalls, can } from './api.js';
import { interactionsPage } from './interactions.js';
import { playerPage } from './player.js';
import { activePage } from './active.js';
import { settingsPage, SETTINGS } from './settings.js';

// `#token=...` passes a token once (a link from a portal); it leaves the address bar at once.
const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
if (m) {
  setToken(decodeURIComponent(m[1]));
  history.replaceState(null, '', location.pathname + location.search);
}

let cleanup = null;

export function go(path) {
  history.pushState(null, '', path);
  render();
}

document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[href^="/ui/"]');
  if (!a || a.hasAttribute('download') || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  go(a.getAttribute('href'));
});
window.addEventListener('popstate', render);
window.addEventListener('navigate', (ev) => go(ev.detail));
window.addEventListener('signed-out', () => go('/ui/signin'));

function nav(me, route) {
  const links = [];
  if (hasCalls(me)) {
    links.push(['/ui/interactions', 'Interactions'], ['/ui/active', 'Active Calls'], ['/ui/my-active', 'My Active Calls']);
  }
  if (SETTINGS.some((s) => s.visible(me))) links.push(['/ui/settings', 'Settings']);
  const n = document.getElementById('nav');
  n.replaceChildren(...links.map(([href, label]) => h('a', {
    href, 'aria-current': route.startsWith(href) ? 'page' : null,
  }, label)));
  document.getElementById('who').replaceChildren(
    h('span', {}, me.upn || me.oid),
    h('button', { type: 'button', onclick: () => { signOut(); go('/ui/signin'); } }, 'Sign out'));
}

function signIn(main, message) {
  document.getElementById('nav').replaceChildren();
  document.getElementById('who').replaceChildren();
  document.title = 'Sign in - Recorder';
  const ta = h('textarea', { id: 'token', name: 'token', required: true, autocomplete: 'off', spellcheck: 'false' });
  main.replaceChildren(h('section', { class: 'signin' },
    h('h1', {}, 'Sign in'),
    message ? h('p', { class: 'err', role: 'alert' }, message) : null,
    h('p', {}, 'Paste your access token (', h('code', {}, 'recorder-daemon token --upn ...'), ').'),
    h('form', { onsubmit: async (ev) => {
      ev.preventDefault();
      setToken(ta.value);
      go('/ui/interactions');
    } },
    h('label', { for: 'token' }, 'Access token'), ta,
    h('p', {}, h('button', { type: 'submit', class: 'primary' }, 'Sign in')))));
  ta.focus();
}

async function render() {
  if (cleanup) { cleanup(); cleanup = null; }
  const main = document.getElementById('main');
  const route = location.pathname.replace(/^\/ui\/?/, '/ui/');
  if (!token() || route === '/ui/signin') { signIn(main); return; }
  let me;
  try { me = await whoAmI(); } catch (e) { signIn(main, `Sign-in failed: ${e.message}`); return; }
  nav(me, route);
  const rest = route.slice('/ui/'.length).split('/').filter(Boolean);
  main.replaceChildren();
  try {
    if (rest.length === 0 || (rest[0] === 'interactions' && rest.length === 1)) {
      if (!hasCalls(me)) {
        const first = SETTINGS.find((s) => s.visible(me));
        if (first && rest.length === 0) { go(`/ui/settings/${first.id}`); return; }
        main.append(h('h1', {}, 'Interactions'), h('p', { role: 'alert' }, 'Your access profile gives you no access to calls.'));
        return;
      }
      cleanup = await interactionsPage(main, me);
    } else if (rest[0] === 'interactions') {
      cleanup = await playerPage(main, me, rest[1]);
    } else if (rest[0] === 'active' || rest[0] === 'my-active') {
      cleanup = await activePage(main, me, rest[0] === 'my-active');
    } else if (rest[0] === 'settings') {
      cleanup = await settingsPage(main, me, rest[1]);
    } else {
      main.append(h('h1', {}, 'Not found'), h('p', {}, 'No such page.'));
    }
  } catch (e) {
    main.append(h('p', { class: 'err', role: 'alert' }, `Error: ${e.message}`));
  }
  if (!main.contains(document.activeElement)) main.focus({ preventScroll: true });
}

export { can };
render();
