import type { GalleryItem } from '../results.ts';
import { DASH, escapeMarkdown as md, formatNumber, formatSeconds, formatShare, truncate } from './format.ts';
import { BASELINE_KEY, buildBucketSummaries, buildHeadline, buildResultsRows, buildSettings, buildTimings, FULL_KEY, formatDelta, METRIC_COLUMNS } from './model.ts';
import type { PageInputs } from './html.ts';

function table(header: string[], rows: string[][], align: ('l' | 'r')[]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const rule = align.map((a) => (a === 'r' ? '---:' : '---'));
  return [line(header), line(rule), ...rows.map(line)].join('\n');
}

function image(thumbs: Map<string, string | null>, source: string, alt: string): string {
  const src = thumbs.get(source);
  // alt text: brackets and backslashes would end the link text early
  return src ? `![${md(truncate(alt, 40))}](${src})` : '(no image)';
}

function galleryRow(item: GalleryItem, inputs: PageInputs): string[] {
  const { thumbs, options } = inputs;
  const neighbours = item.neighbours.slice(0, options.galleryNeighbours).map((n) => {
    const text = md(truncate(n.text ?? '', Math.min(options.textMaxChars, 40)));
    const who = n.label ? `**${md(n.label)}**${text ? ` ${text}` : ''}` : text || DASH;
    return `${image(thumbs, n.source, n.label ?? n.text ?? '')} ${who} sim ${formatNumber(n.similarity, 2)} att ${formatNumber(n.attention, 2)}`;
  });
  return [
    image(thumbs, item.testPath, item.label),
    md(item.label),
    md(item.mlpPred),
    `${md(item.fullPred)} (p = ${formatNumber(item.fullProb, 2)})`,
    neighbours.join('<br>') || DASH,
  ];
}

/** The report as Markdown: the same tables, the charts as image links, the gallery as a table. */
export function renderMarkdown(inputs: PageInputs): string {
  const { results, charts, skipped, options } = inputs;
  const out: string[] = [];
  out.push(`# ${md(options.title)}`, '');
  out.push(`${results.classes.length} classes · ${results.test.length} test pictures · ${results.methods.length} methods · seed ${results.seed} · ${md(results.createdAt)}`, '');

  const headline = buildHeadline(results);
  if (headline) {
    const parts = headline.deltas.map((d) => `${d.title} ${formatDelta(d.delta)}`);
    out.push(`**${md(headline.fullName)} vs ${md(headline.baselineName)}** (accuracy points): ${parts.join(', ')}.`, '');
  }

  out.push('## Results', '');
  out.push(`Top-1 accuracy (%). Many / Medium / Few: mean per-class accuracy over the bucket's classes; Overall: per test picture; Balanced: mean per-class accuracy over all classes. Best per column in bold; ${DASH} marks an empty bucket.`, '');
  const rows = buildResultsRows(results);
  const showTrain = rows.some((r) => r.trainSeconds !== null);
  out.push(
    table(
      ['Method', ...METRIC_COLUMNS.map((c) => c.title), ...(showTrain ? ['Train time'] : [])],
      rows.map((r) => [
        md(r.name),
        ...r.cells.map((cell, i) => {
          const text = cell.best ? `**${cell.text}**` : cell.text;
          return METRIC_COLUMNS[i].key === 'worst' && r.worstLabel !== null ? `${text} (${md(truncate(r.worstLabel, 28))})` : text;
        }),
        ...(showTrain ? [r.trainSeconds === null ? DASH : formatSeconds(r.trainSeconds)] : []),
      ]),
      ['l', ...METRIC_COLUMNS.map(() => 'r' as const), ...(showTrain ? ['r' as const] : [])],
    ),
    '',
  );

  for (const section of results.sections ?? []) {
    out.push(`## ${md(section.title)}`, '');
    for (const note of section.notes) out.push(md(note), '');
    if (section.rows.length > 0) {
      out.push(
        table(
          section.header.map(md),
          section.rows.map((r) => r.map(md)),
          section.header.map((_, i) => (i === 0 ? 'l' : 'r')),
        ),
        '',
      );
    }
  }

  out.push('## Buckets', '');
  out.push(
    table(
      ['Bucket', 'Training images', 'Classes', 'Test pictures', 'Train range', 'Mean purity'],
      buildBucketSummaries(results).map((b) => [
        b.title,
        b.rule,
        String(b.classes),
        String(b.testSamples),
        b.trainMin === null ? DASH : `${b.trainMin}–${b.trainMax}`,
        formatShare(b.meanPurity),
      ]),
      ['l', 'l', 'r', 'r', 'r', 'r'],
    ),
    '',
  );

  out.push('## Charts', '');
  for (const chart of charts) out.push(`### ${md(chart.title)}`, '', `![${md(chart.title)}](${chart.file})`, '', md(chart.caption), '');
  for (const s of skipped) out.push(`*${md(s.title)}: not drawn — ${md(s.reason)}.*`, '');

  out.push('## Tail pictures retrieval fixed', '');
  const baseName = results.methods.find((m) => m.key === BASELINE_KEY)?.name ?? 'MLP only';
  const fullName = results.methods.find((m) => m.key === FULL_KEY)?.name ?? 'RetFormer full';
  const items = results.gallery.slice(0, options.galleryItems);
  if (items.length === 0) {
    out.push(`No Few-class test picture was wrong for ${md(baseName)} and right for ${md(fullName)}.`, '');
  } else {
    out.push(`Few-class test pictures ${md(baseName)} got wrong and ${md(fullName)} got right, with the top neighbours (similarity, attention weight).`, '');
    out.push(
      table(['Test', 'True', md(baseName), md(fullName), 'Top neighbours'], items.map((it) => galleryRow(it, inputs)), ['l', 'l', 'l', 'l', 'l']),
      '',
    );
  }

  out.push('## Settings', '');
  out.push(table(['Setting', 'Value'], buildSettings(results).map(([k, v]) => [md(k), md(v)]), ['l', 'l']), '');
  const timings = buildTimings(results);
  if (timings.length > 0) {
    out.push('## Timings', '');
    const total = timings.reduce((a, [, s]) => a + s, 0);
    out.push(table(['Step', 'Time'], [...timings.map(([k, s]) => [md(k), formatSeconds(s)]), ['**total**', `**${formatSeconds(total)}**`]], ['l', 'r']), '');
  }
  return out.join('\n');
}
