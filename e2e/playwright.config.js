// Debian's chromium, headless, at 1280x720; one worker (the machine is shared).
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: './tests',
  timeout: 45_000,
  workers: 1,
  reporter: 'list',
  outputDir: process.env.PW_OUTPUT || '/tmp/recorder-ui-test-results',
  use: {
    baseURL: process.env.BASE,
    viewport: { width: 1280, height: 720 },
    acceptDownloads: true,
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: ['--autoplay-policy=no-user-gesture-required', '--no-sandbox'],
    },
  },
});
