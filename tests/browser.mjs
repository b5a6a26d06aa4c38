// Headless Chromium for the dashboard suites: Debian's /usr/bin/chromium (scripts/bootstrap.sh
// installs it) driven by playwright-core (no browser download). Each suite gets its own worker;
// screenshots go to test-output/ at desktop and phone sizes.

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, TEST_VARS } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const OUT = path.join(ROOT, 'test-output');
export const DESKTOP = { width: 1280, height: 900 };
export const PHONE = { width: 390, height: 844 };

// scripts/test.sh fails a CI run whose log shows this reason: CI must run the browser suite.
export const skipBrowser = existsSync(CHROMIUM)
  ? false
  : `browser suite skipped: no Chromium at ${CHROMIUM} (run scripts/bootstrap.sh)`;

/** Launches headless Chromium with the flags this machine needs. */
export async function launchBrowser() {
  await mkdir(OUT, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** A fresh page (own session storage) with console errors collected in `page.errors`; logged in with `key` unless `login` is false; `context` adds browser-context options (e.g. `timezoneId`, `locale`). */
export async function newPage(browser, worker, { width = DESKTOP.width, height = DESKTOP.height, login = true, key = TEST_VARS.ADMIN_API_KEY, context: options = {} } = {}) {
  const context = await browser.newContext({ ...options, viewport: { width, height } });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|WebSocket/.test(m.text())) page.errors.push(m.text());
  });
  if (login) {
    await page.goto(`${worker.url}/#/calls`);
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Calls', level: 2 }).waitFor();
  }
  return page;
}

/** Saves a full-page screenshot as test-output/dashboard-<name>.png at the page's current size. */
export const shot = (page, name) => page.screenshot({ path: path.join(OUT, `dashboard-${name}.png`), fullPage: true });

/** Saves test-output/dashboard-<name>-desktop.png and -phone.png, then restores the desktop size. */
export async function shotBoth(page, name) {
  await page.setViewportSize(DESKTOP);
  await shot(page, `${name}-desktop`);
  await page.setViewportSize(PHONE);
  await shot(page, `${name}-phone`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.setViewportSize(DESKTOP);
  return { overflow };
}
