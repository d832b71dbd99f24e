import type { CompareResults, GalleryItem, GalleryNeighbour, ReportSection } from '../results.ts';
import type { RenderedChart, SkippedChart } from './charts.ts';
import { DASH, formatNumber, formatSeconds, formatShare, truncate } from './format.ts';
import {
  type BucketSummary,
  buildBucketSummaries,
  buildHeadline,
  buildResultsRows,
  buildSettings,
  buildTimings,
  formatDelta,
  type Headline,
  METRIC_COLUMNS,
  type MethodRow,
} from './model.ts';
import type { ReportOptions } from './options.ts';
import { html, raw, type SafeHtml } from './safe-html.ts';

/** Everything the page needs besides the results: rendered charts and where each picture's thumbnail went. */
export interface PageInputs {
  results: CompareResults;
  charts: RenderedChart[];
  skipped: SkippedChart[];
  /** Source image path -> "img/<name>.png", or null when it could not be read. */
  thumbs: Map<string, string | null>;
  options: ReportOptions;
}

const CSS = `
:root{--fg:#1f2328;--muted:#656d76;--line:#d8dee4;--bg:#f6f8fa;--card:#fff;--accent:#4c78a8;--good:#1a7f37;--bad:#cf222e}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 24px 64px}
header h1{font-size:26px;margin:0 0 4px}
header p{margin:0;color:var(--muted)}
h2{font-size:19px;margin:36px 0 12px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:0 0 8px}
section>p.note{color:var(--muted);margin:4px 0 12px}
.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px}
.headline{display:flex;flex-wrap:wrap;gap:12px;margin-top:18px}
.stat{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 16px;min-width:130px}
.stat .v{font-size:22px;font-weight:650;font-variant-numeric:tabular-nums}
.stat .v.up{color:var(--good)}.stat .v.down{color:var(--bad)}
.stat .k{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;text-align:left;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right}
th .sub{text-transform:none;letter-spacing:0;font-weight:400}
table.results td:first-child{white-space:nowrap}
tbody tr:nth-child(even){background:#fafbfc}
tr.retformer td:first-child{font-weight:600}
.best{font-weight:700;color:var(--fg);background:#e6f0fa;border-radius:4px;padding:1px 5px}
.kind{display:inline-block;font-size:11px;color:var(--muted);border:1px solid var(--line);border-radius:10px;padding:0 7px;margin-left:6px;font-weight:400}
.sub{display:block;color:var(--muted);font-size:12px}
.kv td:first-child{color:var(--muted);white-space:nowrap;width:40%}
.kv td{word-break:break-word}
.tbar{display:inline-block;height:8px;background:var(--accent);border-radius:4px;vertical-align:middle;margin-right:8px;opacity:.8}
figure{margin:0 0 20px;background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px}
figure .chart{overflow-x:auto}
figure svg{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{color:var(--muted);margin-top:8px;max-width:78ch}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px}
.card .top{display:flex;gap:12px;align-items:flex-start;margin-bottom:10px}
.thumb{width:64px;height:64px;border-radius:8px;border:1px solid var(--line);background:#fff;flex:none;image-rendering:auto}
.thumb.sm{width:36px;height:36px;border-radius:6px}
.missing{display:flex;align-items:center;justify-content:center;color:var(--muted);font-size:10px;text-align:center}
.truth{font-weight:650;font-size:15px;word-break:break-word}
.pred{font-size:13px;word-break:break-word}
.pred.wrong{color:var(--bad)}.pred.right{color:var(--good)}
.pred .who{color:var(--muted);margin-right:4px}
.pred .prob{color:var(--muted);white-space:nowrap}
.nbrs{list-style:none;margin:0;padding:0;border-top:1px solid var(--line)}
.nbrs li{display:flex;gap:10px;align-items:center;padding:6px 0;border-bottom:1px dashed var(--line)}
.nbrs li:last-child{border-bottom:0}
.nbr-text{flex:1;min-width:0;font-size:12px;line-height:1.35}
.nbr-text .lbl{font-weight:600;display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.nbr-text .lbl.same{color:var(--good)}
.nbr-text .txt{color:var(--muted);display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.nbr-num{width:92px;flex:none;font-size:11px;color:var(--muted);font-variant-numeric:tabular-nums}
.att{height:6px;background:#e8ecf0;border-radius:3px;margin-top:3px}
.att>span{display:block;height:6px;background:var(--accent);border-radius:3px}
footer{margin-top:48px;color:var(--muted);font-size:12px}
`;

function thumbImg(thumbs: Map<string, string | null>, source: string, alt: string, small = false): SafeHtml {
  const src = thumbs.get(source);
  const cls = small ? 'thumb sm' : 'thumb';
  if (!src) return html`<div class="${cls} missing" title="${source}">no image</div>`;
  const size = small ? 36 : 64;
  return html`<img class="${cls}" src="${src}" alt="${alt}" title="${alt}" width="${size}" height="${size}" loading="lazy">`;
}

function headlineBlock(headline: Headline | null): SafeHtml {
  if (!headline) return html``;
  const stats = headline.deltas.map((d) => {
    const dir = d.delta === null ? '' : d.delta > 0.05 ? 'up' : d.delta < -0.05 ? 'down' : '';
    return html`<div class="stat"><div class="v ${dir}">${formatDelta(d.delta)}</div><div class="k">${d.title} (points)</div></div>`;
  });
  return html`<p class="note">${headline.fullName} against ${headline.baselineName}, in accuracy points:</p><div class="headline">${stats}</div>`;
}

function settingsBlock(results: CompareResults): SafeHtml {
  const rows = buildSettings(results).map(([k, v]) => html`<tr><td>${k}</td><td>${v}</td></tr>`);
  const timings = buildTimings(results);
  const longest = Math.max(1e-9, ...timings.map(([, s]) => s));
  const total = timings.reduce((a, [, s]) => a + s, 0);
  const timingRows = timings.map(
    ([k, s]) =>
      html`<tr><td>${k}</td><td class="num"><span class="tbar" style="width:${Math.max(2, Math.round((s / longest) * 120))}px"></span>${formatSeconds(s)}</td></tr>`,
  );
  const timingTable =
    timings.length === 0
      ? html`<p class="note">No timings recorded.</p>`
      : html`<table class="kv"><tbody>${timingRows}<tr><td><strong>total</strong></td><td class="num"><strong>${formatSeconds(total)}</strong></td></tr></tbody></table>`;
  return html`<div class="grid2">
<div class="panel"><h3>Settings</h3><table class="kv"><tbody>${rows}</tbody></table></div>
<div class="panel"><h3>Timings</h3>${timingTable}</div>
</div>`;
}

function resultsTable(rows: MethodRow[], buckets: BucketSummary[]): SafeHtml {
  const classesIn: Record<string, number> = Object.fromEntries(buckets.map((b) => [b.title, b.classes]));
  const showTrain = rows.some((r) => r.trainSeconds !== null);
  const head = METRIC_COLUMNS.map((c) => {
    const n = classesIn[c.title];
    return html`<th class="num" scope="col">${c.title}${n === undefined ? '' : html`<span class="sub">${n} classes</span>`}</th>`;
  });
  const body = rows.map((r) => {
    const cells = r.cells.map((cell, i) => {
      const value = cell.best ? html`<strong class="best">${cell.text}</strong>` : html`${cell.text}`;
      const worst = METRIC_COLUMNS[i].key === 'worst' && r.worstLabel !== null ? html`<span class="sub">${truncate(r.worstLabel, 28)}</span>` : '';
      return html`<td class="num" data-col="${METRIC_COLUMNS[i].key}">${value}${worst}</td>`;
    });
    const train = showTrain ? html`<td class="num">${r.trainSeconds === null ? DASH : formatSeconds(r.trainSeconds)}</td>` : '';
    return html`<tr class="${r.kind}" data-method="${r.key}"><td>${r.name}<span class="kind">${r.kind}</span></td>${cells}${train}</tr>`;
  });
  return html`<div class="panel"><table class="results"><thead><tr><th scope="col">Method</th>${head}${showTrain ? html`<th class="num" scope="col">Train time</th>` : ''}</tr></thead><tbody>${body}</tbody></table></div>`;
}

function bucketTable(buckets: BucketSummary[]): SafeHtml {
  const rows = buckets.map(
    (b) =>
      html`<tr data-bucket="${b.bucket}"><td>${b.title}</td><td>${b.rule}</td><td class="num">${b.classes}</td><td class="num">${b.testSamples}</td><td class="num">${b.trainMin === null ? DASH : `${b.trainMin}–${b.trainMax}`}</td><td class="num">${formatShare(b.meanPurity)}</td></tr>`,
  );
  return html`<div class="panel"><table><thead><tr><th>Bucket</th><th>Training images</th><th class="num">Classes</th><th class="num">Test pictures</th><th class="num">Train range</th><th class="num">Mean purity</th></tr></thead><tbody>${rows}</tbody></table></div>`;
}

function chartFigure(chart: RenderedChart): SafeHtml {
  // The SVG is vega's own output (it escapes the text it draws), so it is inlined as markup.
  return html`<figure id="${chart.id}"><h3>${chart.title}</h3><div class="chart">${raw(chart.svg)}</div><figcaption>${chart.caption}</figcaption></figure>`;
}

function neighbourRow(n: GalleryNeighbour, truth: string, inputs: PageInputs, maxAttention: number): SafeHtml {
  const share = maxAttention > 0 ? Math.max(0, Math.min(1, n.attention / maxAttention)) : 0;
  const label = n.label ?? '';
  const text = truncate(n.text ?? '', inputs.options.textMaxChars);
  return html`<li>${thumbImg(inputs.thumbs, n.source, label || text, true)}<div class="nbr-text">${label ? html`<span class="lbl${label === truth ? ' same' : ''}" title="${label}">${label}</span>` : ''}<span class="txt" title="${n.text ?? ''}">${text || DASH}</span></div><div class="nbr-num">sim ${formatNumber(n.similarity, 3)}<br>att ${formatNumber(n.attention, 3)}<div class="att" title="attention ${formatNumber(n.attention, 3)}"><span style="width:${(share * 100).toFixed(1)}%"></span></div></div></li>`;
}

function galleryCard(item: GalleryItem, inputs: PageInputs, baseName: string, fullName: string): SafeHtml {
  const shown = item.neighbours.slice(0, inputs.options.galleryNeighbours);
  const maxAttention = Math.max(0, ...shown.map((n) => (Number.isFinite(n.attention) ? n.attention : 0)));
  return html`<div class="card"><div class="top">${thumbImg(inputs.thumbs, item.testPath, item.label)}<div><div class="truth">${item.label}</div><div class="pred wrong"><span class="who">${baseName}:</span>${item.mlpPred}</div><div class="pred right"><span class="who">${fullName}:</span>${item.fullPred} <span class="prob">(p = ${formatNumber(item.fullProb, 2)})</span></div></div></div>${
    shown.length === 0
      ? html`<p class="note">No neighbours recorded.</p>`
      : html`<ul class="nbrs">${shown.map((n) => neighbourRow(n, item.label, inputs, maxAttention))}</ul>`
  }</div>`;
}

function gallerySection(inputs: PageInputs): SafeHtml {
  const { results, options } = inputs;
  const baseName = results.methods.find((m) => m.key === 'mlp-only')?.name ?? 'MLP only';
  const fullName = results.methods.find((m) => m.key === 'full')?.name ?? 'RetFormer full';
  const items = results.gallery.slice(0, options.galleryItems);
  if (items.length === 0) return html`<p class="note">No Few-class test picture was wrong for ${baseName} and right for ${fullName}.</p>`;
  const missing = [...inputs.thumbs.values()].filter((v) => v === null).length;
  return html`<p class="note">${items.length} test picture(s) of Few classes that ${baseName} got wrong and ${fullName} got right, with the top ${options.galleryNeighbours} retrieved neighbours (best first): similarity to the query, attention weight in the fusion (bar relative to the largest weight on the card), and the neighbour's label (green when it is the true class) and text.${missing > 0 ? ` ${missing} picture(s) could not be read and show a placeholder.` : ''}</p><div class="gallery">${items.map((it) => galleryCard(it, inputs, baseName, fullName))}</div>`;
}

function extraSection(section: ReportSection): SafeHtml {
  const head = section.header.map((h, i) => (i === 0 ? html`<th>${h}</th>` : html`<th class="num">${h}</th>`));
  const body = section.rows.map((r) => html`<tr>${r.map((c, i) => (i === 0 ? html`<td>${c}</td>` : html`<td class="num">${c}</td>`))}</tr>`);
  return html`<section id="${`extra-${section.id}`}"><h2>${section.title}</h2>${section.notes.map((n) => html`<p class="note">${n}</p>`)}${
    section.rows.length > 0 ? html`<div class="panel"><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>` : ''
  }</section>`;
}

/** The whole self-contained page (inline CSS and SVG; thumbnails from the sibling img/ folder; no script). */
export function renderHtml(inputs: PageInputs): string {
  const { results, charts, skipped, options } = inputs;
  const rows = buildResultsRows(results);
  const buckets = buildBucketSummaries(results);
  const page = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title}</title>
<style>${raw(CSS)}</style>
</head>
<body>
<main>
<header><h1>${options.title}</h1><p>${results.classes.length} classes · ${results.test.length} test pictures · ${results.methods.length} methods · seed ${results.seed} · ${results.createdAt}</p></header>
${headlineBlock(buildHeadline(results))}
<section id="results"><h2>Results</h2><p class="note">Top-1 accuracy in percent. Many / Medium / Few are the mean per-class accuracy over the classes of each bucket (by training count); Overall is per test picture (a long-tailed test set weighs the head); Balanced is the mean per-class accuracy over all classes; Macro-F1 over classes present in the test set; Worst class is the lowest per-class accuracy. The best value of each column is highlighted; ${DASH} marks an empty bucket.</p>${resultsTable(rows, buckets)}</section>
${(results.sections ?? []).map(extraSection)}
<section id="buckets-table"><h2>Buckets</h2>${bucketTable(buckets)}</section>
<section id="charts"><h2>Charts</h2>${charts.map(chartFigure)}${skipped.map((s) => html`<p class="note">${s.title}: not drawn — ${s.reason}.</p>`)}</section>
<section id="gallery"><h2>Tail pictures retrieval fixed</h2>${gallerySection(inputs)}</section>
<section id="settings"><h2>Settings and timings</h2>${settingsBlock(results)}</section>
<footer>Generated by retformer. Charts: vega-lite, rendered without a browser.</footer>
</main>
</body>
</html>
`;
  return page.value;
}
