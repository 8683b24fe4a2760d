// The Playwright suite run against the RUNNING main job (scripts/e2e-main.sh), not against
// scripts/ui-test.sh's seeded daemon: a separate config and test directory, so neither
// runner picks up the other's tests. Debian's chromium, headless; one worker.
import { defineConfig } from '@playwright/test';
import { readFileSync } from 'node:fs';

const product = JSON.parse(readFileSync(process.env.PRODUCT_JSON, 'utf8'));

export default defineConfig({
  testDir: './main-job',
  timeout: 90_000,
  workers: 1,
  reporter: 'list',
  outputDir: process.env.PW_OUTPUT || '/tmp/recorder-e2e-main-results',
  use: {
    baseURL: product.store,
    viewport: { width: 1280, height: 720 },
    acceptDownloads: true,
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: ['--autoplay-policy=no-user-gesture-required', '--no-sandbox'],
    },
  },
});
