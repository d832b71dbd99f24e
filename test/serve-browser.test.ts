import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { type RunningServer, startServer } from '../src/serve/server.ts';
import { removeTempDirs } from './helpers/kb-fixtures.ts';
import { makeTrainedServeFixture, type TrainedServeFixture } from './helpers/serve-fixtures.ts';

/**
 * The web page end to end in a real headless browser (Debian's chromium driven by playwright-core)
 * over a real trained run and file KB: classify a picture, see the prediction and its neighbours,
 * add a pair and see it among the next prediction's neighbours, remove it and see it gone.
 */
const CHROMIUM = process.env.RETFORMER_CHROMIUM ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `chromium not found at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`;
const TOKEN = 'browser-test-token';
const WAIT = { timeout: 60_000 };

describe('web page in a real browser', { skip }, () => {
  let fx: TrainedServeFixture;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  before(async () => {
    fx = await makeTrainedServeFixture();
    server = await startServer({ runDir: fx.runDir, port: 0, token: TOKEN });
    const { chromium } = await import('playwright-core');
    // root (CI containers) can only run chromium without its sandbox
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.setDefaultTimeout(WAIT.timeout);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    removeTempDirs();
  });

  const neighbourTexts = () => page.locator('#neighbours li .pair-text').allTextContents();

  it('classifies a picture, learns a new pair, forgets it', async () => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('response', (r) => {
      if (r.status() >= 400 && r.status() !== 401) errors.push(`${r.status()} ${r.url()}`);
    });
    await page.goto(server.url);
    await page.locator('#model-line', { hasText: 'knowledge base: 30 pairs' }).waitFor();
    assert.equal(await page.locator('#pairs li').count(), 12, 'first page of pairs');

    // 1. pick a picture: label, top classes, branches, neighbours ordered by attention with thumbnails
    const query = await fx.png('purple', 'circle', 77);
    await page.setInputFiles('#predict-file', { name: 'query.png', mimeType: 'image/png', buffer: query });
    await page.locator('#status', { hasText: 'Predicted' }).waitFor();
    const label = await page.locator('#pred-label').textContent();
    assert.ok(['red', 'green', 'blue', 'yellow', 'purple'].includes(label ?? ''), `label ${label}`);
    assert.equal(await page.locator('#top-classes li').count(), 5);
    assert.equal(await page.locator('#branches li').count(), 2, 'MLP and retrieval branches');
    assert.equal(await page.locator('#neighbours li').count(), 4);
    const attention = await page.locator('#neighbours li p.small').allTextContents();
    const weights = attention.map((t) => Number(/attention ([\d.]+)%/.exec(t)?.[1]));
    assert.deepEqual([...weights].sort((a, b) => b - a), weights, 'gallery ordered by attention');
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('#neighbours img')].every((i) => i.complete && i.naturalWidth > 0));

    // 2. add a pair (the same picture, so it must be retrieved): it shows among the next prediction's neighbours
    const text = 'my <b>own</b> purple circle';
    assert.ok(!(await neighbourTexts()).includes(text));
    await page.fill('#token', TOKEN);
    await page.setInputFiles('#add-file', { name: 'mine.png', mimeType: 'image/png', buffer: query });
    await page.fill('#add-text', text);
    await page.fill('#add-label', 'purple');
    await page.click('button[type="submit"]:has-text("Add to the knowledge base")');
    await page.locator('#status', { hasText: 'Prediction now' }).waitFor();
    assert.ok((await neighbourTexts()).includes(text), 'the added pair is a neighbour of the next prediction (its text shown literally)');
    await page.locator('#model-line', { hasText: 'knowledge base: 31 pairs' }).waitFor();

    // 3. find it in the KB browser by text and remove it: gone from the neighbours
    await page.fill('#search-text', 'my own purple circle');
    await page.click('#search-form button');
    const card = page.locator('#pairs li', { hasText: text });
    await card.waitFor();
    await card.getByRole('button', { name: /Remove pair/ }).click();
    await page.locator('#status', { hasText: /Removed pair .* Prediction now/ }).waitFor();
    assert.ok(!(await neighbourTexts()).includes(text), 'the removed pair is no longer a neighbour');
    await page.locator('#model-line', { hasText: 'knowledge base: 30 pairs' }).waitFor();

    // 4. a wrong token is refused with the server's one-line message
    await page.fill('#token', 'not-the-token');
    await page.setInputFiles('#add-file', { name: 'mine.png', mimeType: 'image/png', buffer: query });
    await page.fill('#add-text', 'should not land');
    await page.click('button[type="submit"]:has-text("Add to the knowledge base")');
    await page.locator('#status.error', { hasText: 'Bearer' }).waitFor();
    assert.deepEqual(errors, [], 'no script errors and no failed requests');
  });

  it('takes a pasted picture, fits a phone screen and labels every control', async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(server.url);
    await page.locator('#status', { hasText: 'Ready' }).waitFor();
    const png = await fx.png('green', 'stripe', 5);
    await page.evaluate((bytes) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(bytes)], 'pasted.png', { type: 'image/png' }));
      document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt }));
    }, [...png]);
    await page.locator('#status', { hasText: 'Predicted' }).waitFor();
    assert.equal(await page.locator('#neighbours li').count(), 4);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling at phone width (overflow ${overflow}px)`);
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll<HTMLInputElement>('input, button')].filter((c) => c.labels?.length === 0 && !c.getAttribute('aria-label') && !c.textContent?.trim()).map((c) => c.id || c.outerHTML),
    );
    assert.deepEqual(unlabelled, []);
  });
});
