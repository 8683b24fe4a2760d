// The web interface in a real browser, as users of three access levels (see seed.mjs).
import { test, expect } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { readFileSync } from 'node:fs';

const seed = JSON.parse(readFileSync(process.env.SEED_OUT, 'utf8'));
const SHOTS = process.env.SCREENSHOTS;
const TOKENS = { admin: process.env.ADMIN_TOKEN, sup: process.env.SUP_TOKEN, nobody: process.env.NOBODY_TOKEN };

/** Console errors and uncaught exceptions; `allowed` matches expected refusals (403/404). */
function watchConsole(page) {
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return (allowed = null) => expect(errors.filter((e) => !(allowed && allowed.test(e)))).toEqual([]);
}

async function signIn(page, who, path = '/ui/') {
  await page.goto(`${path}#token=${TOKENS[who]}`);
  await expect(page.locator('#who')).toContainText('@contoso.example');
  // The token left the address bar.
  expect(page.url()).not.toContain('token=');
}

async function axe(page) {
  const r = await new AxeBuilder({ page }).analyze();
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(' ')}`)).toEqual([]);
}

const rows = (page) => page.locator('main table tbody tr[data-id]');
const column = async (page, label) => {
  const heads = await page.locator('main table thead tr').first().locator('th').allInnerTexts();
  const i = heads.findIndex((t) => t.replace(/[▲▼]/g, '').trim() === label);
  return page.locator(`main table tbody tr[data-id] td:nth-child(${i + 1})`).allInnerTexts();
};

test('sign-in page takes a pasted token', async ({ page }) => {
  const done = watchConsole(page);
  await page.goto('/ui/');
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  await axe(page);
  await page.getByLabel('Access token').fill(TOKENS.admin);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Interactions' })).toBeVisible();
  done();
});

test('interactions: filter, sort, page, columns, active call ticking', async ({ page }) => {
  const done = watchConsole(page);
  await signIn(page, 'admin');
  await expect(page.locator('#ix-status')).toHaveText('30 interactions');
  await expect(rows(page)).toHaveCount(25);
  // The active call is red and its duration ticks.
  const active = page.locator(`tr[data-id="${seed.active}"]`);
  await expect(active).toHaveClass(/active/);
  await expect(active.locator('td').nth(1)).toHaveCSS('color', 'rgb(179, 38, 30)');
  const tickCell = active.locator('[data-tick]');
  const before = await tickCell.innerText();
  await expect(tickCell).not.toHaveText(before, { timeout: 3000 });
  await axe(page);
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/interactions.png` });

  // Rows per page and the next page.
  await page.getByLabel('Rows per page').selectOption('10');
  await expect(rows(page)).toHaveCount(10);
  await page.getByRole('button', { name: 'Next page' }).click();
  await expect(page.locator('.pager')).toContainText('11–20 of 30');

  // A select filter: direction.
  await page.getByLabel('Filter Direction').selectOption('Incoming');
  await expect(page.locator('#ix-status')).toHaveText(/^\d+ interactions?$/);
  const dirs = await column(page, 'Direction');
  expect(dirs.length).toBeGreaterThan(0);
  expect(new Set(dirs)).toEqual(new Set(['Incoming']));

  // A wildcard text filter (starts with) on the calling party; sort by it, both ways.
  await page.getByLabel('Filter Calling Party').fill('+1732555*');
  await page.getByLabel('Filter Calling Party').press('Enter');
  await page.getByRole('button', { name: 'Calling Party' }).click();
  await expect(page.locator('th[aria-sort="ascending"]')).toContainText('Calling Party');
  let calling = await column(page, 'Calling Party');
  expect(calling.length).toBeGreaterThan(1);
  expect(calling.every((c) => c.startsWith('+1732555'))).toBe(true);
  expect(calling).toEqual([...calling].sort());
  await page.getByRole('button', { name: 'Calling Party' }).click();
  await expect(page.locator('th[aria-sort="descending"]')).toContainText('Calling Party');
  calling = await column(page, 'Calling Party');
  expect(calling).toEqual([...calling].sort().reverse());

  // Select Columns: hide Direction, show Participants.
  await page.getByText('Select Columns').click();
  await page.getByLabel('Direction', { exact: true }).uncheck();
  await page.getByLabel('Participants', { exact: true }).check();
  await expect(page.locator('main table thead')).not.toContainText('Direction');
  await expect(page.locator('main table thead')).toContainText('Participants');
  await page.getByLabel('Direction', { exact: true }).check();
  await page.getByLabel('Participants', { exact: true }).uncheck();

  // Saved search: save the current filters, clear, load it back.
  await page.getByRole('button', { name: 'Save search' }).click();
  await page.getByLabel('Name').fill('Incoming from 732');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await expect(page.locator('#toast')).toHaveText('Search saved');
  await expect(page.getByLabel('Saved searches').locator('option', { hasText: 'Incoming from 732' })).toHaveCount(1);
  const filtered = await page.locator('#ix-status').innerText();
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await expect(page.locator('#ix-status')).toHaveText('30 interactions');
  await page.getByLabel('Saved searches').selectOption({ label: 'Incoming from 732' });
  await expect(page.locator('#ix-status')).toHaveText(filtered);
  done();
});

test('actions: download the .ogg, export CSV, tag', async ({ page }) => {
  const done = watchConsole(page);
  await signIn(page, 'admin');
  await page.getByLabel(`Select call ${seed.meeting}`, { exact: true }).check();
  await page.getByText('Actions', { exact: true }).click();
  const [ogg] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download Audio' }).click()]);
  expect(ogg.suggestedFilename()).toMatch(/\.ogg$/);
  const oggBytes = readFileSync(await ogg.path());
  expect(oggBytes.subarray(0, 4).toString()).toBe('OggS');
  expect(oggBytes.length).toBeGreaterThan(10_000);

  await page.getByText('Actions', { exact: true }).click();
  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: /Export CSV/ }).click()]);
  const text = readFileSync(await csv.path(), 'utf8');
  expect(text).toContain('Requested By');
  expect(text).toContain('Alice Archer');

  await page.getByText('Actions', { exact: true }).click();
  await page.getByRole('button', { name: 'Tag' }).click();
  // Setting tags replaces a call's tags: keep Compliance, add Training.
  await page.getByLabel('Compliance').check();
  await page.getByLabel('Training').check();
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page.locator(`tr[data-id="${seed.meeting}"]`)).toContainText('ComplianceTraining');
  done();
});

test('player: three speakers, legend filter, play, seek, next segment, legs, notes', async ({ page }) => {
  const done = watchConsole(page);
  await signIn(page, 'admin', `/ui/interactions/${seed.meeting}`);
  await expect(page.getByRole('heading', { name: /Interaction \d+: Alice Archer/ })).toBeVisible();
  const segs = page.locator('#timeline .seg');
  await expect(segs).toHaveCount(7);
  // Three names, +1, Reset.
  const legend = page.getByRole('group', { name: 'Participants' });
  await expect(legend.locator('button[data-participant]')).toHaveCount(3);
  await expect(legend.getByRole('button', { name: 'Show 1 more participants' })).toHaveText('+1');
  const audio = page.locator('audio');
  await expect.poll(() => audio.evaluate((a) => a.duration)).toBeGreaterThan(20);
  await axe(page);
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/player.png` });

  // Only Bob's segments.
  await legend.getByRole('button', { name: 'Bob Baker' }).click();
  await expect(segs).toHaveCount(2);
  expect(new Set(await segs.evaluateAll((s) => s.map((e) => e.dataset.participant)))).toEqual(new Set(['Bob Baker']));
  // Next segment jumps to Bob's first turn, then his second.
  const bobStarts = await segs.evaluateAll((s) => s.map((e) => Number(e.dataset.start) / 1000));
  await page.getByRole('button', { name: 'Next segment' }).click();
  await expect.poll(() => audio.evaluate((a) => a.currentTime)).toBeCloseTo(bobStarts[0], 1);
  await page.getByRole('button', { name: 'Next segment' }).click();
  await expect.poll(() => audio.evaluate((a) => a.currentTime)).toBeCloseTo(bobStarts[1], 1);
  await page.getByRole('button', { name: 'Previous segment' }).click();
  await expect.poll(() => audio.evaluate((a) => a.currentTime)).toBeCloseTo(bobStarts[0], 1);
  await legend.getByRole('button', { name: 'Show 1 more participants' }).click();
  await expect(legend.getByRole('button', { name: 'Dave Diaz' })).toBeVisible();
  await page.getByRole('button', { name: 'Reset' }).click();
  await expect(segs).toHaveCount(7);

  // Drag seek: press at 20 % of the time line, release at 50 %.
  const box = await page.locator('#timeline').boundingBox();
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + box.width * 0.2, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, y, { steps: 5 });
  await page.mouse.up();
  const total = await audio.evaluate((a) => a.duration);
  await expect.poll(() => audio.evaluate((a) => a.currentTime)).toBeCloseTo(total * 0.5, 0);

  // Play: the element reaches a later time.
  await page.getByLabel('Speed').selectOption('2');
  expect(await audio.evaluate((a) => a.playbackRate)).toBe(2);
  await page.getByRole('button', { name: 'Mute' }).click();
  expect(await audio.evaluate((a) => a.muted)).toBe(true);
  await page.getByLabel('Volume').fill('0.5');
  expect(await audio.evaluate((a) => a.volume)).toBeCloseTo(0.5);
  const t0 = await audio.evaluate((a) => a.currentTime);
  await page.locator('#play').click();
  await expect(page.locator('#play')).toHaveText('Pause');
  await expect.poll(() => audio.evaluate((a) => a.currentTime), { timeout: 10_000 }).toBeGreaterThan(t0 + 1);
  await page.locator('#play').click();
  await expect(page.locator('#play')).toHaveText('Play');

  // Keyboard: the time line is a slider.
  await page.locator('#timeline').focus();
  await page.keyboard.press('Home');
  await expect.poll(() => audio.evaluate((a) => a.currentTime)).toBe(0);

  // The leg switch (primary and paired bots).
  await page.getByLabel('Paired').check();
  await expect.poll(() => audio.evaluate((a) => a.src)).toContain('leg=paired');
  await expect(segs).toHaveCount(7);

  // Tags and notes; add a note.
  await expect(page.locator('#tags')).toContainText('Compliance');
  await expect(page.locator('#notes')).toContainText('Quarterly numbers discussed');
  await page.getByLabel('Add a note').fill('Checked by the UI test.');
  await page.getByRole('button', { name: 'Add note' }).click();
  await expect(page.locator('#notes')).toContainText('Checked by the UI test.');
  done();
});

test('supervisor: own groups only, no delete, active calls refresh in place', async ({ page, request }) => {
  const done = watchConsole(page);
  await signIn(page, 'sup');
  await expect(page.locator('#ix-status')).toHaveText(/^\d+ interactions$/);
  await page.getByLabel('Rows per page').selectOption('100');
  const users = new Set(await column(page, 'User'));
  expect(users).toEqual(new Set(['Alice Archer', 'Bob Baker']));
  await page.getByText('Actions', { exact: true }).click();
  await expect(page.getByRole('button', { name: 'Download Audio' })).toHaveCount(1);
  await expect(page.getByRole('button', { name: 'Tag' })).toHaveCount(1);
  await expect(page.getByRole('button', { name: 'Delete Calls' })).toHaveCount(0);
  await expect(page.getByRole('link', { name: 'Settings' })).toHaveCount(0);

  await page.getByRole('link', { name: 'Active Calls', exact: true }).click();
  await expect(page.locator(`tr[data-id="${seed.active}"]`)).toBeVisible();
  await axe(page);
  const url = page.url();
  // A call starts while the page is open: it appears without a reload.
  const r = await request.post('/api/v1/interactions', {
    headers: { 'X-Ingest-Key': process.env.INGEST_KEY },
    data: {
      callId: 'call-live-2', recordingId: 'rec-live-2', botRole: 'primary', pairingKey: 'p2p:live-2',
      targets: [{ kind: 'user', id: 'oid-alice', displayName: 'Alice Archer', upn: 'alice@contoso.example' }],
      startTime: new Date().toISOString(), direction: 'Outgoing', callType: 'PSTN p2p', mediaStatus: 'Recording',
    },
  });
  expect(r.status()).toBe(201);
  const id = (await r.json()).interactionId;
  await expect(page.locator(`tr[data-id="${id}"]`)).toBeVisible({ timeout: 10_000 });
  expect(page.url()).toBe(url);
  await page.getByRole('link', { name: 'My Active Calls' }).click();
  await expect(page.getByText('No call is being recorded.')).toBeVisible();
  done();
});

test('a user without access sees neither the call nor its actions', async ({ page }) => {
  const done = watchConsole(page);
  await signIn(page, 'nobody');
  await expect(page.getByText('Your access profile gives you no access to calls.')).toBeVisible();
  await expect(page.locator('main table')).toHaveCount(0);
  await expect(page.getByText('Actions', { exact: true })).toHaveCount(0);
  await expect(page.getByRole('link', { name: 'Interactions' })).toHaveCount(0);
  await page.goto(`/ui/interactions/${seed.meeting}`);
  await expect(page.getByText('This interaction does not exist or you may not see it.')).toBeVisible();
  await expect(page.locator('audio')).toHaveCount(0);
  await expect(page.getByText('Alice Archer')).toHaveCount(0);
  await axe(page);
  // The refused detail request is the only error the console shows.
  done(/status of 40[34]/);
});

test('settings: tags, profiles, users with legal hold, audit trail, activity, storage', async ({ page }) => {
  const done = watchConsole(page);
  await signIn(page, 'admin', '/ui/settings/tags');
  await expect(page.getByRole('cell', { name: 'Complaint', exact: true })).toBeVisible();
  await page.getByRole('button', { name: 'New tag' }).click();
  await page.getByLabel('Name').fill('Escalation');
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('cell', { name: 'Escalation', exact: true })).toBeVisible();
  await axe(page);

  await page.getByRole('link', { name: 'Access profiles' }).click();
  await expect(page.getByRole('cell', { name: 'Sales supervisors', exact: true })).toBeVisible();
  await page.getByRole('link', { name: 'Users' }).click();
  const hold = page.getByLabel('Legal hold for carol@contoso.example');
  await hold.check();
  await expect(page.locator('#toast')).toContainText('Legal hold on');
  await page.reload();
  await expect(page.getByLabel('Legal hold for carol@contoso.example')).toBeChecked();
  await axe(page);

  await page.getByRole('link', { name: 'Audit trail' }).click();
  await page.getByLabel('Action').selectOption('legal hold');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByRole('cell', { name: 'oid-carol' })).toBeVisible();
  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
  expect(readFileSync(await csv.path(), 'utf8')).toContain('legal hold');
  await axe(page);

  for (const [link, heading] of [['Recording profiles', 'Recording profiles'], ['System activity', 'System activity'], ['Storage status', 'Storage status']]) {
    await page.getByRole('link', { name: link }).click();
    await expect(page.getByRole('heading', { name: `Settings: ${heading}` })).toBeVisible();
    // Either the data of a daemon that has the route, or "not available".
    await expect(page.locator('main section table, main section .na').first()).toBeVisible();
  }
  done();
});
