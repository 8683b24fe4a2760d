// Against the running main job (scripts/e2e-main.sh starts scripts/run.sh): the calls here are
// the ones bot-host's simulator really played, found through the API first, never by fixed ids.
import { test, expect } from '@playwright/test';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const product = JSON.parse(readFileSync(process.env.PRODUCT_JSON, 'utf8'));
const ADMIN = product.adminToken;
const SAM = product.supervisorToken;
// The supervisor's access profile (run.sh): the traders' group, i.e. the calls recorded for
// these users (the directory run.sh imports; the store lists a call's recorded user by name).
const TRADERS = ['Alice Archer', 'Bob Baker'];
const auth = (token) => ({ headers: { Authorization: `Bearer ${token}` } });

async function allInteractions(request, token, query = '') {
  const out = [];
  for (let page = 1; ; page++) {
    const r = await request.get(`/api/v1/interactions?pageSize=100&page=${page}${query}`, auth(token));
    expect(r.status()).toBe(200);
    const j = await r.json();
    out.push(...j.items);
    if (out.length >= j.total || j.items.length === 0) return { items: out, total: j.total };
  }
}

async function detail(request, id) {
  const r = await request.get(`/api/v1/interactions/${id}`, auth(ADMIN));
  expect(r.status()).toBe(200);
  return r.json();
}

async function segments(request, id, leg) {
  const r = await request.get(`/api/v1/interactions/${id}/segments?leg=${leg}`, auth(ADMIN));
  expect(r.status()).toBe(200);
  return (await r.json()).segments;
}

/** The party wildcard the Interactions filter row takes for this calling party: a number's
 *  first digits with `*` (starts with), else `*` and a word of the name (contains). */
function wildcardFor(party) {
  const digits = party.match(/^\+?\d{6,}/);
  if (digits) return { text: `${digits[0].slice(0, 6)}*`, matches: (p) => p.startsWith(digits[0].slice(0, 6)) };
  const word = party.split(/[\s@.]+/).find((w) => w.length >= 3);
  if (!word) return null;
  return { text: `*${word}`, matches: (p) => p.toLowerCase().includes(word.toLowerCase()) };
}

/** A traders' call stored on both legs and merged, with at least two speakers on its time line
 *  and a filterable calling party. */
async function pickTradersCall(request) {
  const { items } = await allInteractions(request, ADMIN, '&mediaStatus=Available');
  const candidates = items.filter((r) => r.profile === 'Traders' && TRADERS.includes(r.targetDisplayName) && r.callingParty && wildcardFor(r.callingParty));
  for (const r of candidates) {
    const d = await detail(request, r.id);
    if (!['merged', 'primary', 'paired'].every((l) => d.playableLegs.includes(l))) continue;
    const segs = (await segments(request, r.id, 'merged')).sort((a, b) => a.start_ms - b.start_ms);
    const speakers = [...new Set(segs.map((s) => s.participant))];
    // Legend buttons show the first three speakers; the spec clicks one of those.
    const later = speakers.slice(0, 3).filter((p) => segs.some((s) => s.participant === p && s.start_ms > 2000));
    if (speakers.length >= 2 && later.length) return { call: r, detail: d, segs, speakers };
  }
  throw new Error(`no traders' call with merged, primary and paired legs and two speakers among ${candidates.length} candidates`);
}

test("supervisor: find a traders' call by party wildcard, play, jump, switch legs, download", async ({ page, request }) => {
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

  const { call, segs, speakers } = await pickTradersCall(request);
  const wild = wildcardFor(call.callingParty);
  // What the supervisor should see for this filter: the API's answer with her own token.
  const expected = await allInteractions(request, SAM, `&callingParty=${encodeURIComponent(wild.text)}`);
  expect(expected.items.map((r) => r.id)).toContain(call.id);
  for (const r of expected.items) expect(wild.matches(r.callingParty), r.callingParty).toBe(true);
  console.log(`call ${call.id} (${call.callType}, ${call.targetDisplayName}, calling ${call.callingParty}); filter "${wild.text}": ${expected.total} calls; speakers ${speakers.join(', ')}`);

  await page.goto(`/ui/#token=${SAM}`);
  await expect(page.locator('#who')).toContainText('sam@contoso.example');
  await page.getByLabel('Filter Calling Party').fill(wild.text);
  await page.getByLabel('Filter Calling Party').press('Enter');
  await expect(page.locator('#ix-status')).toHaveText(new RegExp(`^${expected.total} interactions?$`));
  const row = page.locator(`tr[data-id="${call.id}"]`);
  if (await row.count() === 0) await page.getByLabel('Rows per page').selectOption('100');
  await expect(row).toBeVisible();
  await row.dblclick();
  await expect(page).toHaveURL(new RegExp(`/ui/interactions/${call.id}$`));
  await expect(page.getByRole('heading', { name: new RegExp(`^Interaction ${call.id}:`) })).toBeVisible();

  const audio = page.locator('audio');
  const now = () => audio.evaluate((a) => a.currentTime);
  await expect.poll(() => audio.evaluate((a) => a.duration)).toBeGreaterThan(3);
  await expect.poll(() => audio.evaluate((a) => a.src)).toContain('leg=merged');

  // Play: the element's time advances.
  await page.locator('#play').click();
  await expect(page.locator('#play')).toHaveText('Pause');
  await expect.poll(now, { timeout: 10_000 }).toBeGreaterThan(1);
  await page.locator('#play').click();
  await expect(page.locator('#play')).toHaveText('Play');

  // A speaker in the legend, then Next segment: the speaker's first segment after the
  // current position (back to the start first if playing went past all of theirs).
  const legend = page.getByRole('group', { name: 'Participants' });
  let t = await now();
  const next = (p, from) => segs.find((s) => s.participant === p && s.start_ms > from * 1000 + 50);
  let speaker = speakers.slice(0, 3).find((p) => next(p, t));
  if (!speaker) {
    await page.locator('#timeline').focus();
    await page.keyboard.press('Home');
    await expect.poll(now).toBe(0);
    t = 0;
    speaker = speakers.slice(0, 3).find((p) => next(p, 0));
  }
  await legend.getByRole('button', { name: speaker, exact: true }).click();
  const shown = page.locator('#timeline .seg');
  await expect(shown).toHaveCount(segs.filter((s) => s.participant === speaker).length);
  expect(new Set(await shown.evaluateAll((s) => s.map((e) => e.dataset.participant)))).toEqual(new Set([speaker]));
  const target = next(speaker, t).start_ms / 1000;
  await page.getByRole('button', { name: 'Next segment' }).click();
  await expect.poll(now).toBeCloseTo(target, 1);
  console.log(`${speaker}: next segment from ${t.toFixed(2)} s -> ${target.toFixed(2)} s`);

  // Each leg: the source changes to it and it plays.
  for (const [leg, label] of [['primary', 'Primary'], ['paired', 'Paired'], ['merged', 'Merged']]) {
    await page.getByLabel(label, { exact: true }).check();
    await expect.poll(() => audio.evaluate((a) => a.src)).toContain(`leg=${leg}`);
    await expect.poll(() => audio.evaluate((a) => a.duration)).toBeGreaterThan(3);
    const t0 = await now();
    await page.locator('#play').click();
    await expect(page.locator('#play')).toHaveText('Pause');
    await expect.poll(now, { timeout: 10_000 }).toBeGreaterThan(t0 + 0.5);
    await page.locator('#play').click();
    await expect(page.locator('#play')).toHaveText('Play');
    expect(await audio.evaluate((a) => a.error)).toBeNull();
  }

  // Download Audio (the merged recording) and check it with opusinfo.
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download Audio' }).click()]);
  // The server names the file after the leg it served (Content-Disposition).
  expect(dl.suggestedFilename()).toMatch(new RegExp(`^interaction-${call.id}(-merged)?\\.ogg$`));
  const file = test.info().outputPath(`interaction-${call.id}.ogg`);
  await dl.saveAs(file);
  const info = spawnSync('opusinfo', [file], { encoding: 'utf8' });
  const text = `${info.stdout}${info.stderr}`;
  console.log(text.split('\n').filter((l) => /Playback length|WARNING/.test(l)).join('\n'));
  expect(info.status, text).toBe(0);
  expect(text).not.toContain('WARNING');
  expect(text).toMatch(/Playback length: \d+m:\d+\.\d+s/);
  expect(errors).toEqual([]);

  // Every play and download is in the audit trail, under the supervisor's name and this call.
  for (const action of ['play', 'download']) {
    const r = await request.get(`/api/v1/audit?name=sam%40contoso.example&action=${action}&item=${call.id}`, auth(ADMIN));
    expect(r.status()).toBe(200);
    const entries = (await r.json()).items;
    expect(entries.length, `${action} entries for call ${call.id}`).toBeGreaterThan(0);
    expect(entries.every((e) => e.userUpn === 'sam@contoso.example' && e.item === String(call.id))).toBe(true);
  }
});

test("supervisor: a non-trader's call is invisible, in the list, by its Call Link and on the API", async ({ page, request }) => {
  const { items } = await allInteractions(request, ADMIN);
  const hidden = items.find((r) => r.targetDisplayName === 'Carol Chen' && r.profile === 'Support')
    || items.find((r) => r.targetDisplayName && !TRADERS.includes(r.targetDisplayName));
  expect(hidden, 'a stored call of someone outside the traders').toBeTruthy();
  console.log(`hidden call ${hidden.id} (${hidden.targetDisplayName}, ${hidden.profile}, calling ${hidden.callingParty})`);

  // The API: the supervisor's list holds traders' calls only, and not this one.
  const mine = await allInteractions(request, SAM);
  expect(mine.total).toBeGreaterThan(0);
  expect(mine.items.map((r) => r.id)).not.toContain(hidden.id);
  for (const r of mine.items) expect(TRADERS, `call ${r.id}`).toContain(r.targetDisplayName);
  for (const path of [`/api/v1/interactions/${hidden.id}`, `/api/v1/interactions/${hidden.id}/media`,
    `/api/v1/interactions/${hidden.id}/media?download=true`, `/api/v1/interactions/${hidden.id}/segments`]) {
    const r = await request.get(path, auth(SAM));
    expect([403, 404], path).toContain(r.status());
  }
  const viaQuery = await request.get(`/api/v1/interactions/${hidden.id}/media?access_token=${SAM}`);
  expect([403, 404]).toContain(viaQuery.status());
  // The administrator does get its media: the refusal above is the access check, not a gap.
  const adminMedia = await request.get(`/api/v1/interactions/${hidden.id}/media`, auth(ADMIN));
  expect(adminMedia.status()).toBe(200);

  // The list in the UI: the filter that finds it for an administrator finds nothing of it here.
  await page.goto(`/ui/#token=${SAM}`);
  await expect(page.locator('#who')).toContainText('sam@contoso.example');
  await expect(page.locator('#ix-status')).toHaveText(`${mine.total} interaction${mine.total === 1 ? '' : 's'}`);
  await page.getByLabel('Rows per page').selectOption('100');
  await expect(page.locator('main table tbody tr[data-id]').first()).toBeVisible();
  await expect(page.locator(`tr[data-id="${hidden.id}"]`)).toHaveCount(0);
  const wild = wildcardFor(hidden.callingParty || '');
  if (wild) {
    await page.getByLabel('Filter Calling Party').fill(wild.text);
    await page.getByLabel('Filter Calling Party').press('Enter');
    await expect(page.locator('#ix-status')).toHaveText(/^\d+ interactions?$/);
    await expect(page.locator(`tr[data-id="${hidden.id}"]`)).toHaveCount(0);
  }

  // Its Call Link: a clear no-access state, no player, no audio.
  await page.goto(`/ui/interactions/${hidden.id}`);
  await expect(page.getByText('This interaction does not exist or you may not see it.')).toBeVisible();
  await expect(page.locator('audio')).toHaveCount(0);
  await expect(page.locator('#play')).toHaveCount(0);
  if (hidden.targetDisplayName) await expect(page.getByText(hidden.targetDisplayName)).toHaveCount(0);
});

/** Objects a storage of the running product holds under `prefix`, fetched with the daemon's
 *  own `recorder-daemon fetch` (local directory or Azurite alike). */
let fetches = 0;
function storedObjects(storage, prefix) {
  // A fresh directory per fetch: an earlier fetch's files must not be counted again.
  const out = test.info().outputPath(`fetch-${++fetches}-${storage}`);
  const r = spawnSync(`${product.bin}/recorder-daemon`,
    ['fetch', '--config', product.storeConfig, '--storage', storage, '--prefix', prefix, '--out', out], { encoding: 'utf8' });
  expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [e.name]));
  return existsSync(out) ? walk(out).length : 0;
}

/** The storages the product was configured with (`[[storage]] name` in recorder.toml). */
function storageNames() {
  const toml = readFileSync(product.storeConfig, 'utf8');
  return [...toml.matchAll(/^\[\[storage\]\]\s*\nname\s*=\s*"([^"]+)"/gm)].map((m) => m[1]);
}

test("admin: a deleted call's media leaves storage in the next retention cycle; a legal-hold user's call survives it; both audited", async ({ request }) => {
  const { items } = await allInteractions(request, ADMIN, '&mediaStatus=Available');
  // Not the traders' or Carol's calls the tests above use.
  const erin = items.filter((r) => r.targetDisplayName === 'Erin Evans');
  const bob = items.filter((r) => r.targetDisplayName === 'Bob Baker');
  expect(erin.length, 'Erin has stored calls').toBeGreaterThan(0);
  expect(bob.length, 'Bob has stored calls').toBeGreaterThan(0);
  const [gone, held] = [erin[0], bob[bob.length - 1]];
  const storages = storageNames();
  expect(storages.length).toBeGreaterThan(0);
  const paths = async (id) => (await detail(request, id)).legs.map((l) => l.mediaPath).filter(Boolean);
  const gonePaths = await paths(gone.id);
  expect(gonePaths.length).toBeGreaterThan(0);
  const before = gonePaths.flatMap((p) => storages.map((s) => storedObjects(s, p))).reduce((a, b) => a + b, 0);
  expect(before, `objects of call ${gone.id} in storage before`).toBeGreaterThan(0);

  const deletion = (id) => request.post(`/api/v1/interactions/${id}/deletion`, {
    ...auth(ADMIN), data: { scope: 'metadataAndMedia', authorizedBy: 'Compliance e2e', note: 'end-to-end check' },
  });
  // Both deletions are requested first; then Bob goes on legal hold, which must stop the
  // cycle from executing his (and refuse any new request for his calls).
  for (const c of [gone, held]) {
    const r = await deletion(c.id);
    expect(r.status(), await r.text()).toBeLessThan(300);
  }
  const users = await (await request.get('/api/v1/users', auth(ADMIN))).json();
  const bobUser = (users.items ?? users).find((u) => u.upn === 'bob@contoso.example');
  expect(bobUser, 'Bob in the directory').toBeTruthy();
  const hold = await request.put(`/api/v1/users/${bobUser.oid}/legal-hold`, { ...auth(ADMIN), data: { legalHold: true } });
  expect(hold.status(), await hold.text()).toBeLessThan(300);
  if (bob.length > 1) {
    const refused = await deletion(bob[0].id);
    expect(refused.status()).toBe(409);
  }
  const cycle = await request.post('/api/v1/retention/run', auth(ADMIN));
  expect(cycle.status(), await cycle.text()).toBe(200);
  // (The daemon's own cycle may have executed the first request already: the outcome below
  // is what is checked, not which cycle did it.)
  expect((await cycle.json()).requestsOnHold).toBeGreaterThanOrEqual(1);

  // The deleted call: not served, and no object of it left in any storage.
  const media = await request.get(`/api/v1/interactions/${gone.id}/media`, auth(ADMIN));
  expect([404, 410]).toContain(media.status());
  const after = gonePaths.flatMap((p) => storages.map((s) => storedObjects(s, p))).reduce((a, b) => a + b, 0);
  expect(after, `objects of call ${gone.id} in storage after the cycle`).toBe(0);

  // The held user's call: still Available and served, its objects untouched.
  const kept = await detail(request, held.id);
  expect(kept.mediaStatus).toBe('Available');
  const keptMedia = await request.get(`/api/v1/interactions/${held.id}/media`, { headers: { ...auth(ADMIN).headers, Range: 'bytes=0-99' } });
  expect(keptMedia.status()).toBe(206);

  // And the audit trail says who asked for both deletions.
  const audit = await (await request.get(`/api/v1/audit?action=delete&pageSize=100`, auth(ADMIN))).json();
  for (const c of [gone, held]) {
    expect(audit.items.some((e) => e.item === String(c.id)), `delete of ${c.id} audited`).toBe(true);
  }
});
