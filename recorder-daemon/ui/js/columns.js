// The columns of the Interactions and Active Calls tables and the store filters behind them.
import { h, clock, duration, date, time } from './util.js';

export const DIRECTIONS = ['Incoming', 'Outgoing', 'None'];
export const CALL_TYPES = ['Internal p2p', 'External p2p', 'PSTN p2p', 'Internal Meeting', 'External Meeting',
  'Internal Meeting with External Participants', 'Queue Call'];
export const RELEASE_CAUSES = ['Normal', 'Failure', 'Missed', 'Abandoned', 'Transferred'];
export const MEDIA_STATUSES = ['Recording', 'Pending', 'Available', 'Failed', 'Unavailable', 'Deleted'];

export function statusIcon(s) {
  return h('span', { class: 'status' }, h('span', { class: `dot s-${s}`, 'aria-hidden': 'true' }), s);
}

/** Ticking duration of a call: active calls count up every second (see tick()). */
export function durationCell(r) {
  if (r.mediaStatus === 'Recording' && !r.releaseTime) {
    return h('span', { 'data-tick': r.startTime }, clock(duration(r.startTime)));
  }
  return clock(duration(r.startTime, r.releaseTime || r.startTime));
}

export function tick(root) {
  for (const e of root.querySelectorAll('[data-tick]')) e.textContent = clock(duration(e.dataset.tick));
}

// filter: kind text (wildcards as the store), select (repeatable key), dates, times, tag.
export const COLUMNS = [
  { id: 'user', label: 'User', sort: 'targetDisplayName', filter: { kind: 'text', key: 'user', hint: 'UPN or object id' },
    cell: (r) => h('a', { href: `/ui/interactions/${r.id}` }, r.targetDisplayName || r.targetUpn || '(unknown)') },
  { id: 'date', label: 'Date', sort: 'startTime', filter: { kind: 'dates' }, cell: (r) => date(r.startTime) },
  { id: 'start', label: 'Start Time', sort: 'startTime', filter: { kind: 'times' }, cell: (r) => time(r.startTime) },
  { id: 'duration', label: 'Duration', cell: durationCell },
  { id: 'direction', label: 'Direction', sort: 'direction', filter: { kind: 'select', key: 'direction', options: DIRECTIONS }, cell: (r) => r.direction },
  { id: 'called', label: 'Called Party', sort: 'calledParty', filter: { kind: 'text', key: 'calledParty', hint: '732, 732* or *Bill' }, cell: (r) => r.calledParty },
  { id: 'calling', label: 'Calling Party', sort: 'callingParty', filter: { kind: 'text', key: 'callingParty', hint: '732, 732* or *Bill' }, cell: (r) => r.callingParty },
  { id: 'answered', label: 'Answering Party', sort: 'answeredBy', filter: { kind: 'text', key: 'answeredBy', hint: '732, 732* or *Bill' }, cell: (r) => r.answeredBy },
  { id: 'participants', label: 'Participants', hidden: true, filter: { kind: 'text', key: 'participant', hint: 'name' }, cell: (r) => r.participants.join(', ') },
  { id: 'release', label: 'Release Cause', sort: 'releaseCause', filter: { kind: 'select', key: 'releaseCause', options: RELEASE_CAUSES }, cell: (r) => r.releaseCause },
  { id: 'type', label: 'Call Type', sort: 'callType', filter: { kind: 'select', key: 'callType', options: CALL_TYPES }, cell: (r) => r.callType },
  { id: 'tags', label: 'Tags', filter: { kind: 'tag', key: 'tag' }, cell: (r) => r.tags.map((t) => h('span', { class: 'chip' }, t)) },
  { id: 'notes', label: 'Notes', filter: { kind: 'text', key: 'notes', hint: 'whole words' }, cell: (r) => (r.notes.length ? r.notes.join(' | ').slice(0, 60) : '') },
  { id: 'media', label: 'Media', sort: 'mediaStatus', filter: { kind: 'select', key: 'mediaStatus', options: MEDIA_STATUSES }, cell: (r) => statusIcon(r.mediaStatus) },
  { id: 'profile', label: 'Profile', sort: 'profile', hidden: true, cell: (r) => r.profile },
  { id: 'queue', label: 'Queue', sort: 'queueName', hidden: true, cell: (r) => r.queueName },
  { id: 'expiration', label: 'Expiration', sort: 'expiration', hidden: true, cell: (r) => date(r.expiration) },
];
