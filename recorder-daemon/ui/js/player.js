// The player (the Call Link /ui/interactions/<id>): details, a per-speaker time line, the
// transport controls, the leg switch, tags and notes.
import { h, clock, dateTime, toast, PALETTE } from './util.js';
import { api, can, mediaUrl } from './api.js';
import { statusIcon, durationCell, tick } from './columns.js';

const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 2];
const LEGEND_SHOWN = 3;

export async function playerPage(main, me, idText) {
  const id = Number(idText);
  if (!Number.isInteger(id) || id <= 0) {
    main.append(h('h1', {}, 'Interaction'), h('p', { role: 'alert' }, 'Not a call link.'));
    return null;
  }
  document.title = `Interaction ${id} - Recorder`;
  let d;
  try {
    d = await api(`/interactions/${id}`);
  } catch (e) {
    main.append(h('h1', {}, `Interaction ${id}`),
      h('p', { role: 'alert', class: 'err' }, e.status === 404 || e.status === 403 ? 'This interaction does not exist or you may not see it.' : e.message));
    return null;
  }
  const mayPlay = can(me, 'play');
  // What the store can serve (`playableLegs`): "Merged" only once the merged recording is
  // stored; before that the legs themselves. With none stored yet, ask for the default and let
  // the server's answer (404) say so.
  const legs = d.playableLegs && d.playableLegs.length ? d.playableLegs : ['merged'];
  let leg = legs[0];
  let segments = [];
  let speakers = [];
  const only = new Set();
  let showAllLegend = false;

  const audio = h('audio', { preload: 'metadata', 'aria-label': 'Recording' });
  const playBtn = h('button', { type: 'button', id: 'play', disabled: !mayPlay }, 'Play');
  const timeOut = h('span', { id: 'time', 'aria-live': 'off' }, '0:00 / 0:00');
  const lanes = h('div', { class: 'lanes' });
  const head = h('div', { class: 'playhead', 'aria-hidden': 'true' });
  const timeline = h('div', { class: 'timeline', id: 'timeline', role: 'slider', tabindex: 0,
    'aria-label': 'Seek', 'aria-valuemin': 0, 'aria-valuemax': 0, 'aria-valuenow': 0 }, lanes, head);
  const legend = h('div', { class: 'legend', role: 'group', 'aria-label': 'Participants' });
  const segInfo = h('p', { class: 'muted', id: 'seg-info' });

  const total = () => {
    const a = Number.isFinite(audio.duration) ? audio.duration : 0;
    const s = segments.reduce((m, x) => Math.max(m, x.end_ms / 1000), 0);
    return Math.max(a, s, 0.001);
  };
  const visible = () => segments.filter((s) => only.size === 0 || only.has(s.participant));
  const colour = (p) => PALETTE[speakers.indexOf(p) % PALETTE.length];

  function drawTimeline() {
    const t = total();
    const shownSpeakers = speakers.filter((p) => only.size === 0 || only.has(p));
    lanes.replaceChildren(...shownSpeakers.map((p) => h('div', { class: 'lane', 'data-participant': p },
      h('span', { class: 'lbl' }, p),
      segments.filter((s) => s.participant === p).map((s) => h('div', {
        class: 'seg', 'data-participant': p, 'data-start': s.start_ms,
        title: `${p} ${clock(s.start_ms / 1000)}–${clock(s.end_ms / 1000)}`,
        style: `left:${(100 * s.start_ms) / 1000 / t}%;width:${Math.max(0.3, (100 * (s.end_ms - s.start_ms)) / 1000 / t)}%;background:${colour(p)}`,
      })))));
    segInfo.textContent = `${visible().length} of ${segments.length} segments shown`;
    drawHead();
  }
  function drawHead() {
    const t = total();
    head.style.left = `${(100 * audio.currentTime) / t}%`;
    timeOut.textContent = `${clock(audio.currentTime)} / ${clock(t)}`;
    timeline.setAttribute('aria-valuemax', Math.round(t));
    timeline.setAttribute('aria-valuenow', Math.round(audio.currentTime));
    timeline.setAttribute('aria-valuetext', `${clock(audio.currentTime)} of ${clock(t)}`);
  }
  function drawLegend() {
    const names = showAllLegend ? speakers : speakers.slice(0, LEGEND_SHOWN);
    const more = speakers.length - names.length;
    legend.replaceChildren(
      ...names.map((p) => h('button', { type: 'button', 'aria-pressed': String(only.has(p)), 'data-participant': p,
        onclick: () => { only.has(p) ? only.delete(p) : (only.clear(), only.add(p)); drawLegend(); drawTimeline(); } },
      h('span', { class: 'swatch', style: `background:${colour(p)}`, 'aria-hidden': 'true' }), p)),
      more > 0 ? h('button', { type: 'button', 'aria-label': `Show ${more} more participants`, onclick: () => { showAllLegend = true; drawLegend(); } }, `+${more}`) : '',
      h('button', { type: 'button', id: 'reset', onclick: () => { only.clear(); drawLegend(); drawTimeline(); } }, 'Reset'));
  }

  async function loadLeg() {
    segments = [];
    speakers = [];
    only.clear();
    if (!mayPlay) return;
    audio.src = mediaUrl(id, leg);
    try {
      segments = (await api(`/interactions/${id}/segments?leg=${leg}`)).segments;
    } catch (e) {
      segInfo.textContent = `No time line: ${e.message}`;
    }
    segments.sort((a, b) => a.start_ms - b.start_ms);
    speakers = [...new Set(segments.map((s) => s.participant))];
    drawLegend();
    drawTimeline();
  }

  function seekTo(secs) {
    audio.currentTime = Math.min(Math.max(0, secs), total());
    drawHead();
  }
  function jump(dir) {
    const now = audio.currentTime * 1000;
    const v = visible();
    const s = dir > 0 ? v.find((x) => x.start_ms > now + 50) : [...v].reverse().find((x) => x.start_ms < now - 500);
    if (s) seekTo(s.start_ms / 1000);
    else if (dir < 0) seekTo(0);
  }
  // Drag to seek on the time line.
  const fromPointer = (ev) => {
    const r = timeline.getBoundingClientRect();
    return ((ev.clientX - r.left) / r.width) * total();
  };
  timeline.addEventListener('pointerdown', (ev) => {
    timeline.setPointerCapture(ev.pointerId);
    seekTo(fromPointer(ev));
    const move = (e) => seekTo(fromPointer(e));
    const up = () => { timeline.removeEventListener('pointermove', move); timeline.removeEventListener('pointerup', up); };
    timeline.addEventListener('pointermove', move);
    timeline.addEventListener('pointerup', up);
  });
  timeline.addEventListener('keydown', (ev) => {
    const step = { ArrowLeft: -5, ArrowRight: 5, PageDown: -30, PageUp: 30 }[ev.key];
    if (step) { seekTo(audio.currentTime + step); ev.preventDefault(); }
    if (ev.key === 'Home') { seekTo(0); ev.preventDefault(); }
    if (ev.key === 'End') { seekTo(total()); ev.preventDefault(); }
  });

  playBtn.addEventListener('click', () => (audio.paused ? audio.play().catch((e) => toast(`Cannot play: ${e.message}`)) : audio.pause()));
  audio.addEventListener('play', () => { playBtn.textContent = 'Pause'; });
  audio.addEventListener('pause', () => { playBtn.textContent = 'Play'; });
  audio.addEventListener('timeupdate', drawHead);
  audio.addEventListener('loadedmetadata', drawTimeline);
  audio.addEventListener('durationchange', drawTimeline);
  audio.addEventListener('error', () => { if (audio.getAttribute('src')) segInfo.textContent = 'The recording cannot be loaded.'; });

  const vol = h('input', { type: 'range', id: 'volume', min: 0, max: 1, step: 0.05, value: 1 });
  vol.addEventListener('input', () => { audio.volume = Number(vol.value); audio.muted = false; mute.setAttribute('aria-pressed', 'false'); });
  const mute = h('button', { type: 'button', id: 'mute', 'aria-pressed': 'false', onclick: () => {
    audio.muted = !audio.muted;
    mute.setAttribute('aria-pressed', String(audio.muted));
  } }, 'Mute');
  const speed = h('select', { id: 'speed' }, SPEEDS.map((s) => h('option', { value: s, selected: s === 1 }, `${s}×`)));
  speed.addEventListener('change', () => { audio.playbackRate = Number(speed.value); });

  const legSwitch = legs.length > 1 ? h('fieldset', { class: 'legs' }, h('legend', {}, 'Recording'),
    legs.map((l) => {
      const r = h('input', { type: 'radio', name: 'leg', id: `leg-${l}`, value: l, checked: l === leg });
      r.addEventListener('change', () => { leg = l; loadLeg(); });
      return h('span', {}, r, h('label', { for: `leg-${l}` }, ` ${l[0].toUpperCase()}${l.slice(1)}`));
    })) : '';

  // Details, tags and notes.
  const s = d;
  // Legs bot-host recovered after a crash (or whose writes failed) end where it stopped.
  const partialLegs = (d.legs || []).filter((l) => l.metadata && l.metadata.partial).map((l) => l.botRole);
  const details = h('dl', { class: 'details' }, [
    ['User', `${s.targetDisplayName} ${s.targetUpn ? `(${s.targetUpn})` : ''}`],
    ['Start', dateTime(s.startTime)], ['Duration', durationCell(s)], ['Direction', s.direction],
    ['Call type', s.callType], ['Calling party', s.callingParty], ['Called party', s.calledParty],
    ['Answering party', s.answeredBy], ['Release cause', s.releaseCause], ['Media', statusIcon(s.mediaStatus)],
    ['Profile', s.profile], ['Expiration', dateTime(s.expiration)], ['Recording type', s.doubleRecordingType],
    ['Participants', s.participants.join(', ')],
    ...(partialLegs.length ? [['Partial recording',
      `the ${partialLegs.join(' and ')} leg stops where its bot stopped recording (recovered after a crash)`]] : []),
    ['Merged recording', { pending: 'being merged (the primary leg plays meanwhile)', done: 'stored',
      failed: `not merged: ${d.merge && d.merge.error}` }[d.merge && d.merge.state]],
  ].map(([k, v]) => [h('dt', {}, k), h('dd', {}, v || '—')]).flat());
  const tagList = h('p', { id: 'tags' }, d.tagDetails.length ? d.tagDetails.map((t) => h('span', { class: 'chip' }, t.name)) : 'No tags.');
  const notes = h('ul', { class: 'notes', id: 'notes' });
  function drawNotes() {
    notes.replaceChildren(...d.noteDetails.map((n) => h('li', {},
      h('div', {}, n.text), h('small', { class: 'muted' }, `${n.authorUpn}, ${dateTime(n.createdAt)}`),
      (n.authorOid === me.oid ? can(me, 'addNotes') : can(me, 'deleteOthersNotes'))
        ? [' ', h('button', { type: 'button', 'aria-label': `Delete note of ${n.authorUpn}`, onclick: async () => {
          try {
            await api(`/interactions/${id}/notes/${n.id}`, { method: 'DELETE' });
            d.noteDetails = d.noteDetails.filter((x) => x.id !== n.id);
            drawNotes();
          } catch (e) { toast(e.message); }
        } }, 'Delete')] : '')));
    if (!d.noteDetails.length) notes.append(h('li', { class: 'muted' }, 'No notes.'));
  }
  const noteText = h('textarea', { id: 'note-text', required: true, maxlength: 10000, rows: 3 });
  const noteForm = can(me, 'addNotes') ? h('form', { onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const n = await api(`/interactions/${id}/notes`, { method: 'POST', body: { text: noteText.value } });
      d.noteDetails.push(n);
      noteText.value = '';
      drawNotes();
      toast('Note added');
    } catch (e) { toast(`Note not added: ${e.message}`); }
  } }, h('label', { for: 'note-text' }, 'Add a note'), h('br'), noteText, h('br'), h('button', { type: 'submit' }, 'Add note')) : '';

  main.replaceChildren(
    h('p', {}, h('a', { href: '/ui/interactions' }, '← Interactions')),
    h('h1', { class: s.mediaStatus === 'Recording' ? 'err' : '' }, `Interaction ${id}: ${s.targetDisplayName || s.callingParty || ''}`),
    h('div', { class: 'player' },
      h('section', { 'aria-label': 'Player' },
        mayPlay ? [
          legSwitch,
          h('h2', {}, 'Time line'), timeline, segInfo,
          h('div', { class: 'controls' },
            h('button', { type: 'button', id: 'prev-seg', onclick: () => jump(-1) }, 'Previous segment'),
            playBtn,
            h('button', { type: 'button', id: 'next-seg', onclick: () => jump(1) }, 'Next segment'),
            timeOut,
            mute, h('label', { for: 'volume' }, 'Volume'), vol,
            h('label', { for: 'speed' }, 'Speed'), speed,
            can(me, 'download') ? h('a', { id: 'download', href: mediaUrl(id, leg, true), download: `interaction-${id}.ogg` }, 'Download Audio') : ''),
          h('h2', {}, 'Participants'), legend, audio,
        ] : h('p', {}, 'Your access profile does not allow playing recordings.'),
        h('h2', {}, 'Notes'), notes, noteForm),
      h('section', { 'aria-label': 'Details' }, h('h2', {}, 'Details'), details, h('h2', {}, 'Tags'), tagList)));
  drawNotes();
  const dl = main.querySelector('#download');
  legSwitch && legSwitch.addEventListener('change', () => { if (dl) dl.href = mediaUrl(id, leg, true); });
  await loadLeg();
  const ticker = setInterval(() => tick(main), 1000);
  return () => { clearInterval(ticker); audio.pause(); audio.removeAttribute('src'); audio.load(); };
}
