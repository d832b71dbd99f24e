import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { readCompareResults, renderReport, renderReportFromFile, resolveReportOptions } from '../src/eval/report/index.ts';
import type { CompareResults } from '../src/eval/results.ts';
import { RetformerError } from '../src/util/errors.ts';
import { HOSTILE_LABEL, makeReportFixture } from './helpers/report-fixture.ts';
import { cell, countOf, methodRow, methodRowCount } from './helpers/report-html.ts';

const root = mkdtempSync(join(tmpdir(), 'retformer-report-'));
after(() => rmSync(root, { recursive: true, force: true }));

const COLUMNS = [
  ['many', (r: CompareResults['methods'][number]) => r.metrics.many],
  ['medium', (r: CompareResults['methods'][number]) => r.metrics.medium],
  ['few', (r: CompareResults['methods'][number]) => r.metrics.few],
  ['overall', (r: CompareResults['methods'][number]) => r.metrics.overall],
  ['macroF1', (r: CompareResults['methods'][number]) => r.metrics.macroF1],
  ['worst', (r: CompareResults['methods'][number]) => r.metrics.worstClass.accuracy],
] as const;

async function render(name: string, fixture: Parameters<typeof makeReportFixture>[1] = {}) {
  const results = await makeReportFixture(join(root, `${name}-data`), fixture);
  const outDir = join(root, name);
  const out = await renderReport(results, outDir);
  return { results, outDir, ...out };
}

describe('renderReport on a realistic comparison', () => {
  let r: Awaited<ReturnType<typeof render>>;
  before(async () => {
    r = await render('main');
  });

  it('builds a fixture of the intended shape', () => {
    assert.equal(r.results.classes.length, 99);
    assert.equal(Math.max(...r.results.trainCounts), 517);
    assert.equal(Math.min(...r.results.trainCounts), 2);
    assert.ok(r.results.test.length > 1800 && r.results.test.length < 2000, `test size ${r.results.test.length}`);
    assert.equal(r.results.methods.length, 8);
    assert.equal(r.results.gallery.length, 12);
  });

  it('writes the page, the Markdown, the chart SVGs and the thumbnails', () => {
    for (const f of ['index.html', 'report.md', 'chart-buckets.svg', 'chart-per-class.svg', 'chart-purity.svg']) {
      assert.ok(existsSync(join(r.outDir, f)), f);
    }
    assert.equal(readFileSync(join(r.outDir, 'index.html'), 'utf8'), r.html);
    assert.equal(readFileSync(join(r.outDir, 'report.md'), 'utf8'), r.markdown);
    assert.ok(!/<script/i.test(r.html), 'the page needs no script');
    assert.ok(!/(src|href)="https?:/i.test(r.html), 'no external assets');
  });

  it('has one table row per method with its numbers to one decimal', () => {
    assert.equal(methodRowCount(r.html), r.results.methods.length);
    for (const m of r.results.methods) {
      const row = methodRow(r.html, m.key);
      assert.ok(row, `row for ${m.key}`);
      assert.ok(row.includes(m.name));
      for (const [col, get] of COLUMNS) assert.equal(cell(row, col).text, (get(m) as number).toFixed(1), `${m.key} ${col}`);
    }
  });

  it('marks exactly the best value of each column', () => {
    for (const [col, get] of COLUMNS) {
      const rounded = r.results.methods.map((m) => Math.round((get(m) as number) * 10) / 10);
      const best = Math.max(...rounded);
      r.results.methods.forEach((m, i) => {
        assert.equal(cell(methodRow(r.html, m.key)!, col).best, rounded[i] === best, `${m.key} ${col}`);
      });
    }
    // the same in Markdown: bold numbers
    const full = r.results.methods.find((m) => m.key === 'adaptive')!;
    assert.ok(r.markdown.includes(`**${full.metrics.overall.toFixed(1)}**`));
  });

  it('draws one bar per method and bucket, one point per class and method, one purity point per class with a value', async () => {
    const bars = readFileSync(join(r.outDir, 'chart-buckets.svg'), 'utf8');
    assert.equal(countOf(bars, 'aria-roledescription="bar"'), r.results.methods.length * 4);
    const scatter = readFileSync(join(r.outDir, 'chart-per-class.svg'), 'utf8');
    assert.equal(countOf(scatter, 'aria-roledescription="circle"'), 2 * r.results.classes.length);
    const purity = readFileSync(join(r.outDir, 'chart-purity.svg'), 'utf8');
    const withPurity = r.results.purity.filter((p) => p !== null).length;
    assert.ok(withPurity < r.results.classes.length, 'the fixture has a class without purity');
    assert.equal(countOf(purity, 'aria-roledescription="circle"'), withPurity);
    for (const svg of [bars, scatter, purity]) {
      const meta = await sharp(Buffer.from(svg)).metadata();
      assert.equal(meta.format, 'svg');
      assert.ok((meta.width ?? 0) > 300 && (meta.height ?? 0) > 200);
      const png = await sharp(Buffer.from(svg)).png().toBuffer();
      assert.ok(png.length > 1000);
    }
  });

  it('inlines the three SVGs with ids that do not collide', () => {
    assert.equal(countOf(r.html, '<svg'), 3);
    const ids = [...r.html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
    assert.equal(new Set(ids).size, ids.length, 'duplicate ids');
    for (const ref of r.html.matchAll(/url\(#([^)]+)\)/g)) assert.ok(ids.includes(ref[1]), `dangling ${ref[1]}`);
  });

  it('copies every gallery picture as a 64 px PNG and links each one', async () => {
    const sources = new Set(r.results.gallery.flatMap((g) => [g.testPath, ...g.neighbours.slice(0, 5).map((n) => n.source)]));
    const files = readdirSync(join(r.outDir, 'img'));
    assert.equal(files.length, sources.size);
    for (const f of files) {
      const meta = await sharp(join(r.outDir, 'img', f)).metadata();
      assert.equal(meta.format, 'png');
      assert.equal(meta.width, 64);
      assert.equal(meta.height, 64);
      assert.ok(r.html.includes(`src="img/${f}"`), `page links ${f}`);
      assert.ok(r.markdown.includes(`(img/${f})`), `markdown links ${f}`);
    }
    assert.equal(countOf(r.html, 'class="card"'), 12);
    for (const g of r.results.gallery) assert.ok(r.html.includes(`(p = ${g.fullProb.toFixed(2)})`));
  });

  it('writes Markdown with the table, the bucket numbers, chart links and the gallery table', () => {
    for (const m of r.results.methods) assert.ok(r.markdown.includes(`| ${m.name} | `), m.name);
    for (const f of ['chart-buckets.svg', 'chart-per-class.svg', 'chart-purity.svg']) assert.match(r.markdown, new RegExp(`!\\[[^\\]]*\\]\\(${f}\\)`));
    assert.match(r.markdown, /\| Few \| < 20 \| 41 \| \d+ \| 2–19 \| \d+\.\d% \|/);
    assert.equal(countOf(r.markdown, '(p = '), 12);
  });
});

describe('renderReport on awkward results', () => {
  it('escapes labels and texts that carry markup', async () => {
    const r = await render('hostile', { hostile: true });
    assert.ok(r.results.classes.includes(HOSTILE_LABEL));
    const svgs = ['chart-buckets.svg', 'chart-per-class.svg', 'chart-purity.svg'].map((f) => readFileSync(join(r.outDir, f), 'utf8'));
    for (const text of [r.html, r.markdown, ...svgs]) {
      assert.ok(!/<script/i.test(text), 'raw <script>');
      assert.ok(!/<img src=x/i.test(text), 'raw <img> from a neighbour text');
    }
    assert.ok(r.html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co|*'));
    assert.ok(svgs[0].includes('kNN &lt;script&gt;vote&lt;/script&gt;') || svgs[0].includes('&lt;script&gt;vote&lt;/script&gt;'), 'method name drawn escaped on the bar chart axis');
    assert.ok(r.markdown.includes('&lt;script&gt;alert("x")&lt;/script&gt; &amp; co\\|\\*'));
    // the escaped label did not break the Markdown gallery table: every row still has 5 cells
    const galleryRows = r.markdown.split('\n').filter((l) => l.includes('(p = '));
    for (const line of galleryRows) assert.equal(line.replace(/\\\|/g, '').split('|').length - 2, 5, line);
  });

  it('prints a dash for an empty bucket and draws no bar for it', async () => {
    const r = await render('nofew', { edges: { many: 100, few: 1 } });
    for (const m of r.results.methods) {
      assert.equal(m.metrics.few, null);
      assert.equal(cell(methodRow(r.html, m.key)!, 'few').text, '–');
      assert.equal(cell(methodRow(r.html, m.key)!, 'few').best, false);
    }
    const bars = readFileSync(join(r.outDir, 'chart-buckets.svg'), 'utf8');
    assert.equal(countOf(bars, 'aria-roledescription="bar"'), r.results.methods.length * 3);
    assert.match(r.markdown, /\| MLP only \| [\d.]+ \| [\d.]+ \| – \|/);
  });

  it('explains charts it cannot draw and shows a placeholder for a missing picture', async () => {
    const results = await makeReportFixture(join(root, 'sparse-data'), { dropMethods: ['mlp-only'], noPurity: true });
    rmSync(results.gallery[0].testPath);
    const outDir = join(root, 'sparse');
    await renderReport(await makeReportFixture(join(root, 'sparse-full-data'), { galleryItems: 1 }), outDir);
    assert.ok(existsSync(join(outDir, 'chart-purity.svg')), 'a first render into the folder draws purity');
    const { html, markdown } = await renderReport(results, outDir);
    assert.ok(existsSync(join(outDir, 'chart-buckets.svg')));
    assert.ok(!existsSync(join(outDir, 'chart-per-class.svg')));
    assert.ok(!existsSync(join(outDir, 'chart-purity.svg')));
    assert.match(html, /Per-class accuracy against training count: not drawn/);
    assert.match(html, /Retrieval purity per class: not drawn/);
    assert.match(markdown, /Retrieval purity per class: not drawn/);
    assert.equal(countOf(html, '>no image</div>'), 1);
    assert.match(html, /1 picture\(s\) could not be read/);
    assert.equal(methodRowCount(html), 7);
    // purity is null everywhere: the bucket table shows dashes
    assert.match(markdown, /\| Many \| > 100 \| 29 \| \d+ \| 106–517 \| – \|/);
  });

  it('rejects bad options with a one-line error', () => {
    assert.throws(() => resolveReportOptions({ galleryNeighbours: -1 }), (e: unknown) => e instanceof RetformerError && /galleryNeighbours/.test(e.message) && !e.message.includes('\n'));
    assert.equal(resolveReportOptions().thumbSize, 64);
  });
});

describe('renderReportFromFile', () => {
  it('renders a results.json written by JSON.stringify (nulls survive the round trip)', async () => {
    const results = await makeReportFixture(join(root, 'json-data'), { edges: { many: 100, few: 1 }, galleryItems: 2 });
    const file = join(root, 'results.json');
    writeFileSync(file, JSON.stringify(results));
    const { html } = await renderReportFromFile(file, join(root, 'from-json'));
    assert.equal(methodRowCount(html), 8);
    assert.equal(cell(methodRow(html, 'full')!, 'few').text, '–');
  });

  it('names the file and the field of a malformed results.json on one line', () => {
    const results = JSON.parse(JSON.stringify({ createdAt: 'x', seed: 1, classes: ['a'], trainCounts: [1], edges: { many: 2, few: 1 }, test: [], methods: [{ key: 'k', name: 'n', kind: 'baseline', metrics: { overall: 'high' } }], purity: [null], gallery: [], timings: {}, settings: {} }));
    const file = join(root, 'bad.json');
    writeFileSync(file, JSON.stringify(results));
    assert.throws(() => readCompareResults(file), (e: unknown) => e instanceof RetformerError && e.message.startsWith(`${file}: methods.0.metrics.overall:`) && !e.message.includes('\n'));
    writeFileSync(file, JSON.stringify({ ...results, methods: [], purity: [] }));
    assert.throws(() => readCompareResults(file), /purity: has 0 entries for 1 classes/);
    assert.throws(() => readCompareResults(join(root, 'missing.json')), /missing\.json: file not found/);
  });
});
