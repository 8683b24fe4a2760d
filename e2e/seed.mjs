// Seeds a fresh recorder-daemon for the UI tests: a directory, access profiles of three
// levels, tags, and interactions posted the way bot-host posts them (LegUpdate JSON with the
// ingest key), the three-speaker meeting pointing at the recordings ui-test.sh made.
//   BASE=http://127.0.0.1:PORT ADMIN_TOKEN=... INGEST_KEY=... node seed.mjs
import { writeFileSync } from 'node:fs';

const { BASE, ADMIN_TOKEN, INGEST_KEY, SEED_OUT } = process.env;
if (!BASE || !ADMIN_TOKEN || !INGEST_KEY) throw new Error('BASE, ADMIN_TOKEN and INGEST_KEY are required');

async function call(method, path, body, headers = { Authorization: `Bearer ${ADMIN_TOKEN}` }) {
  const r = await fetch(`${BASE}/api/v1${path}`, {
    method, headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export const USERS = {
  alice: { id: 'oid-alice', userPrincipalName: 'alice@contoso.example', displayName: 'Alice Archer', group: 'g-sales' },
  bob: { id: 'oid-bob', userPrincipalName: 'bob@contoso.example', displayName: 'Bob Baker', group: 'g-sales' },
  carol: { id: 'oid-carol', userPrincipalName: 'carol@contoso.example', displayName: 'Carol Chen', group: 'g-support' },
  dave: { id: 'oid-dave', userPrincipalName: 'dave@contoso.example', displayName: 'Dave Diaz', group: 'g-support' },
  sup: { id: 'oid-sup', userPrincipalName: 'sup@contoso.example', displayName: 'Sam Supervisor', group: 'g-supervisors' },
  nobody: { id: 'oid-nobody', userPrincipalName: 'nobody@contoso.example', displayName: 'Nora Nobody', group: 'g-none' },
  admin: { id: 'oid-admin', userPrincipalName: 'admin@contoso.example', displayName: 'Ada Admin', group: 'g-admins' },
};
const groups = [...new Set(Object.values(USERS).map((u) => u.group))];

await call('POST', '/directory/import', {
  users: Object.values(USERS).map(({ id, userPrincipalName, displayName }) => ({ id, userPrincipalName, displayName })),
  groups: groups.map((g) => ({ id: g, displayName: g, members: Object.values(USERS).filter((u) => u.group === g).map((u) => ({ id: u.id })) })),
});
await call('POST', '/access-profiles', { name: 'Administrators', groups: ['g-admins'], callAccess: 'all', globalAdmin: true });
await call('POST', '/access-profiles', {
  name: 'Sales supervisors', groups: ['g-supervisors'], callAccess: 'ownAndGroups', callAccessGroups: ['g-sales'],
  permissions: ['play', 'download', 'tag', 'addNotes'],
});
await call('POST', '/access-profiles', { name: 'No access', groups: ['g-none'], callAccess: 'none' });
const tags = {};
for (const [name, description] of [['Compliance', 'Review for compliance'], ['Complaint', 'Customer complaint'], ['Training', 'Use for training']]) {
  tags[name] = (await call('POST', '/tags', { name, description })).id;
}

const party = (u) => ({ kind: 'user', id: USERS[u].id, displayName: USERS[u].displayName, upn: USERS[u].userPrincipalName });
const phone = (n) => ({ kind: 'phone', number: n });
const ingest = (leg) => call('POST', '/interactions', leg, { 'X-Ingest-Key': INGEST_KEY });
const iso = (ms) => new Date(ms).toISOString();
const T0 = Date.parse('2026-11-20T09:00:00Z');

// The three-speaker meeting, recorded by a primary and a paired bot (Pro).
const mStart = T0 + 3 * 86400e3;
const meetingLeg = (role) => ({
  callId: `meeting-${role}`, recordingId: `rec-meeting-${role}`, botRole: role, pairingKey: 'meeting:19:ui-test@thread.v2',
  targets: [party('alice')], callingParty: party('alice'), calledParty: { kind: 'meeting', displayName: 'Quarterly review' },
  answeredBy: party('bob'), startTime: iso(mStart), answeredTime: iso(mStart + 1000), releaseTime: iso(mStart + 26000),
  direction: 'None', callType: 'Internal Meeting', releaseCause: 'Normal', profile: 'Sales',
  participants: ['alice', 'bob', 'carol', 'dave'].map((u, i) => ({
    participantId: `p-${u}`, party: party(u), msi: 3001 + i, joinTime: iso(mStart), leaveTime: iso(mStart + 26000),
  })),
  retentionDays: 2555, storage: 'local', doubleRecordingType: 'Pro', mediaStatus: 'Available',
  mediaPath: `rec/meeting-${role}`,
});
const meeting = await ingest(meetingLeg('primary'));
await ingest(meetingLeg('paired'));

// Two-party calls of every user, spread over days, for filters, sorting and paging.
const dirs = ['Incoming', 'Outgoing', 'None'];
const causes = ['Normal', 'Normal', 'Missed', 'Abandoned', 'Transferred', 'Failure'];
const who = ['alice', 'bob', 'carol', 'dave'];
for (let i = 0; i < 28; i++) {
  const u = who[i % 4];
  const start = T0 + i * 3 * 3600e3;
  const incoming = dirs[i % 3] === 'Incoming';
  const ext = phone(`+1732555${String(1000 + i)}`);
  await ingest({
    callId: `call-${i}`, recordingId: `rec-call-${i}`, botRole: 'primary', pairingKey: `p2p:${i}`,
    targets: [party(u)], callingParty: incoming ? ext : party(u), calledParty: incoming ? party(u) : ext,
    answeredBy: party(u), startTime: iso(start), answeredTime: iso(start + 4000),
    releaseTime: iso(start + (60 + i * 17) * 1000), direction: dirs[i % 3], callType: 'PSTN p2p',
    releaseCause: causes[i % causes.length], profile: 'Default', retentionDays: 365, storage: 'local',
    doubleRecordingType: 'Essentials', mediaStatus: 'Available',
  });
}

// A call being recorded now (red, ticking) for Bob, visible to the sales supervisor.
const active = await ingest({
  callId: 'call-active', recordingId: 'rec-call-active', botRole: 'primary', pairingKey: 'p2p:active',
  targets: [party('bob')], callingParty: phone('+14255550199'), calledParty: party('bob'), answeredBy: party('bob'),
  startTime: iso(Date.now() - 95000), answeredTime: iso(Date.now() - 90000), direction: 'Incoming',
  callType: 'PSTN p2p', profile: 'Default', storage: 'local', doubleRecordingType: 'Essentials', mediaStatus: 'Recording',
});

await call('PUT', '/interactions/tags', { interactionIds: [meeting.interactionId], tagIds: [tags.Compliance] });
await call('POST', `/interactions/${meeting.interactionId}/notes`, { text: 'Quarterly numbers discussed; reviewed by compliance.' });

const out = { meeting: meeting.interactionId, active: active.interactionId, tags, users: USERS };
if (SEED_OUT) writeFileSync(SEED_OUT, JSON.stringify(out, null, 2));
console.log(JSON.stringify({ meeting: out.meeting, active: out.active }));
