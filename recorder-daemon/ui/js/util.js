// DOM and formatting helpers shared by the pages.

/** Builds an element: h('button', {class: 'x', onclick: f}, 'text', child). */
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v;
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

export function pad(n) { return String(n).padStart(2, '0'); }

/** 83 s -> "1:23", 3723 s -> "1:02:03". */
export function clock(secs) {
  if (!Number.isFinite(secs) || secs < 0) secs = 0;
  const s = Math.floor(secs % 60), m = Math.floor(secs / 60) % 60, hr = Math.floor(secs / 3600);
  return hr ? `${hr}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** Seconds between two RFC 3339 times (the end defaults to now: an active call). */
export function duration(start, end) {
  const a = Date.parse(start), b = end ? Date.parse(end) : Date.now();
  return Math.max(0, (b - a) / 1000);
}

export function date(t) { return t ? new Date(t).toISOString().slice(0, 10) : ''; }
export function time(t) { return t ? new Date(t).toISOString().slice(11, 19) : ''; }
export function dateTime(t) { return t ? new Date(t).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : ''; }

let toastTimer;
/** A short message read out by screen readers (the toast is a polite live region). */
export function toast(msg) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove('show'), 4000);
}

/** Saves a Blob under a file name. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A modal dialog holding `body`; resolves with the submitted FormData or null. */
export function modal(title, body, okLabel = 'OK') {
  return new Promise((resolve) => {
    const err = h('p', { class: 'err', role: 'alert' });
    const form = h('form', { method: 'dialog' },
      h('h2', { id: 'dlg-title' }, title), body, err,
      h('div', { class: 'toolbar' },
        h('button', { type: 'submit', class: 'primary', value: 'ok' }, okLabel),
        h('button', { type: 'button', onclick: () => { d.close(); } }, 'Cancel')));
    const d = h('dialog', { 'aria-labelledby': 'dlg-title' }, form);
    let result = null;
    form.addEventListener('submit', (ev) => {
      if (!form.checkValidity()) { ev.preventDefault(); return; }
      result = new FormData(form);
    });
    d.addEventListener('close', () => { d.remove(); resolve(result); });
    document.body.append(d);
    d.showModal();
  });
}

/** Okabe-Ito palette: told apart under the common colour-vision deficiencies. */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];

/** Client-side navigation without importing the router (no import cycle). */
export function navigate(path) {
  window.dispatchEvent(new CustomEvent('navigate', { detail: path }));
}
