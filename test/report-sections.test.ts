import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { renderReport } from '../src/eval/report/index.ts';
import { makeReportFixture } from './helpers/report-fixture.ts';

const root = mkdtempSync(join(tmpdir(), 'retformer-report-sections-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('extra report sections', () => {
  it('render notes and a table in the page and the Markdown, escaped', async () => {
    const results = await makeReportFixture(join(root, 'data'), { classes: 12, testPerClass: 10, galleryItems: 2 });
    results.sections = [
      { id: 'sources', title: 'Knowledge-base sources', notes: ['Headline: <b>all</b>.'], header: ['source', 'Overall'], rows: [['downstream|x', '61.1'], ['all', '63.0']] },
    ];
    const { html, markdown } = await renderReport(results, join(root, 'out'));
    assert.match(html, /<section id="extra-sources"><h2>Knowledge-base sources<\/h2><p class="note">Headline: &lt;b&gt;all&lt;\/b&gt;\.<\/p>/);
    assert.match(html, /<td>downstream\|x<\/td><td class="num">61\.1<\/td>/);
    assert.match(markdown, /## Knowledge-base sources\n\nHeadline: &lt;b&gt;all&lt;\/b&gt;\.\n\n\| source \| Overall \|\n\| --- \| ---: \|\n\| downstream\\\|x \| 61\.1 \|/);
    assert.ok(markdown.indexOf('## Knowledge-base sources') < markdown.indexOf('## Buckets'));
  });
});
