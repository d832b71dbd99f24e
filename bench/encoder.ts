/**
 * Benchmark of the embedded encoder on the emoji pictures shipped in node_modules
 * (run: node --import tsx bench/encoder.ts [--seed N]).
 *
 * KB = twitter pictures paired with "name: emojilib keywords"; queries = google pictures (and
 * apple + facebook). Prints a Markdown table: fit time, embedding rate, image->image top-1
 * agreement (same subcategory / same emoji) and image->text recall@10, for simple baselines
 * (raw 16x16 pixels, colour histogram, both: the platform notes' floor) and the embedded encoder.
 */
import { cpus } from 'node:os';
import { DEFAULT_EMBEDDED_CONFIG, fitEmbeddedEncoder } from '../src/encoders/embedded/index.ts';
import { featureDim } from '../src/encoders/embedded/image-features.ts';
import { initTf } from '../src/util/tfjs.ts';
import { decodePictures, fitDictionary, pictureFeatures } from '../src/encoders/embedded/pipeline.ts';
import { decodeImage } from '../src/encoders/image.ts';
import { mapConcurrent } from '../src/util/concurrency.ts';
import { Rng } from '../src/util/rng.ts';
import { type EmojiItem, loadEmoji } from '../test/helpers/embedded-emoji.ts';
import { centreAndNormalize, recallAtK, top1Agreement, topK } from '../test/helpers/embedded-metrics.ts';

const seedArg = process.argv.indexOf('--seed');
const seed = seedArg >= 0 ? Number(process.argv[seedArg + 1]) : 0;

interface Row {
  name: string;
  fit?: string;
  rate?: string;
  gtSub: number;
  gtEmoji: number;
  afSub: number;
  itEmoji?: number;
  itSub?: number;
}

const pct = (x: number | undefined) => (x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const secondsSince = (t: number) => (performance.now() - t) / 1000;

const items = loadEmoji();
const kb = items.filter((e) => e.images.twitter);
const google = items.filter((e) => e.images.google);
const appleFacebook = items.flatMap((e) => (['apple', 'facebook'] as const).filter((v) => e.images[v]).map((v) => ({ item: e, path: e.images[v]! })));
const keys = (list: readonly EmojiItem[]) => ({ sub: list.map((e) => e.subcategory), emoji: list.map((e) => e.unified) });
const kbKeys = keys(kb);
const gKeys = keys(google);
const afKeys = keys(appleFacebook.map((x) => x.item));

function imageRow(name: string, kbVec: Float32Array, gVec: Float32Array, afVec: Float32Array, dim: number): Row {
  const g = topK(gVec, kbVec, dim, 1);
  const af = topK(afVec, kbVec, dim, 1);
  return { name, gtSub: top1Agreement(g, gKeys.sub, kbKeys.sub), gtEmoji: top1Agreement(g, gKeys.emoji, kbKeys.emoji), afSub: top1Agreement(af, afKeys.sub, kbKeys.sub) };
}

/** The notes' raw baselines from the 64 px pictures: 16x16 RGB (4x4 block means) and a 16-bin-per-channel histogram. */
async function rawFeatures(paths: readonly string[]): Promise<{ pixels: Float32Array; hist: Float32Array }> {
  const pixels = new Float32Array(paths.length * 768);
  const hist = new Float32Array(paths.length * 48);
  await mapConcurrent(paths, 8, async (p, i) => {
    const img = await decodeImage(p, { size: 64 });
    for (let y = 0; y < 64; y++) {
      for (let x = 0; x < 64; x++) {
        for (let c = 0; c < 3; c++) {
          const v = img.data[(y * 64 + x) * 3 + c] / 255;
          pixels[i * 768 + ((y >> 2) * 16 + (x >> 2)) * 3 + c] += v / 16;
          hist[i * 48 + c * 16 + Math.min(15, Math.floor(v * 16))] += 1 / 4096;
        }
      }
    }
  });
  return { pixels, hist };
}

function concatRows(a: Float32Array, da: number, b: Float32Array, db: number): Float32Array {
  const n = a.length / da;
  const out = new Float32Array(n * (da + db));
  for (let i = 0; i < n; i++) {
    out.set(a.subarray(i * da, i * da + da), i * (da + db));
    out.set(b.subarray(i * db, i * db + db), i * (da + db) + da);
  }
  return out;
}

/** Normalise each part to unit L2, concatenate, then centre on the KB mean and L2-normalise. */
function centredOnKb(kbRows: Float32Array, others: Float32Array[], dim: number): Float32Array[] {
  const n = kbRows.length / dim;
  const mean = new Float32Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j] += kbRows[i * dim + j] / n;
  return [kbRows, ...others].map((m) => centreAndNormalize(m.slice(), dim, mean));
}

async function main(): Promise<void> {
  await initTf();
  console.error(`emoji: ${kb.length} twitter pairs (KB), ${google.length} google, ${appleFacebook.length} apple+facebook pictures; ${cpus().length} cores`);
  const rows: Row[] = [];

  // baselines
  const [rk, rg, raf] = await Promise.all([rawFeatures(kb.map((e) => e.images.twitter!)), rawFeatures(google.map((e) => e.images.google!)), rawFeatures(appleFacebook.map((x) => x.path))]);
  rows.push(imageRow('raw pixels 16x16 RGB', ...(centredOnKb(rk.pixels, [rg.pixels, raf.pixels], 768) as [Float32Array, Float32Array, Float32Array]), 768));
  rows.push(imageRow('colour histogram 3x16', ...(centredOnKb(rk.hist, [rg.hist, raf.hist], 48) as [Float32Array, Float32Array, Float32Array]), 48));
  // as the notes: raw values concatenated (pixels in [0, 1], histogram as fractions), then centred and normalised
  const both = (r: { pixels: Float32Array; hist: Float32Array }) => concatRows(r.pixels, 768, r.hist, 48);
  rows.push(imageRow('pixels + histogram (notes floor)', ...(centredOnKb(both(rk), [both(rg), both(raf)], 816) as [Float32Array, Float32Array, Float32Array]), 816));

  // the embedded encoder's features alone (no shared space), as an ablation
  const ic = DEFAULT_EMBEDDED_CONFIG.image;
  const [pk, pg, paf] = [await decodePictures(kb.map((e) => e.images.twitter!), ic), await decodePictures(google.map((e) => e.images.google!), ic), await decodePictures(appleFacebook.map((x) => x.path), ic)];
  const dict = fitDictionary(pk, ic, DEFAULT_EMBEDDED_CONFIG.dictionaryPatches, new Rng(seed), DEFAULT_EMBEDDED_CONFIG.kmeansIterations);
  const fdim = featureDim(ic);
  rows.push(imageRow('embedded features, no shared space', ...(centredOnKb(pictureFeatures(pk, ic, dict), [pictureFeatures(pg, ic, dict), pictureFeatures(paf, ic, dict)], fdim) as [Float32Array, Float32Array, Float32Array]), fdim));

  // the embedded encoder
  let t = performance.now();
  const encoder = await fitEmbeddedEncoder(
    kb.map((e) => ({ image: e.images.twitter!, text: e.text })),
    { seed },
  );
  const fitSeconds = secondsSince(t);
  const kbVec = await encoder.embedImages(kb.map((e) => e.images.twitter!));
  t = performance.now();
  const gVec = await encoder.embedImages(google.map((e) => e.images.google!));
  const rate = google.length / secondsSince(t);
  t = performance.now();
  const textVec = await encoder.embedTexts(kb.map((e) => e.text));
  const textRate = kb.length / secondsSince(t);
  const afVec = await encoder.embedImages(appleFacebook.map((x) => x.path));
  const row = imageRow(`embedded (d=${encoder.dim})`, kbVec, gVec, afVec, encoder.dim);
  const it = topK(gVec, textVec, encoder.dim, 10);
  rows.push({
    ...row,
    fit: `${fitSeconds.toFixed(1)} s`,
    rate: `${rate.toFixed(0)} img/s (text ${textRate.toFixed(0)}/s)`,
    itEmoji: recallAtK(it, gKeys.emoji, kbKeys.emoji, 10),
    itSub: recallAtK(it, gKeys.sub, kbKeys.sub, 10),
  });

  console.log(`| encoder | fit (${kb.length} pairs) | embed rate (64 px PNG) | google->twitter top-1 same subcategory | same emoji | apple+facebook->twitter same subcategory | google image->text R@10 own emoji | R@10 same subcategory |`);
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.name} | ${r.fit ?? 'none'} | ${r.rate ?? '-'} | ${pct(r.gtSub)} | ${pct(r.gtEmoji)} | ${pct(r.afSub)} | ${pct(r.itEmoji)} | ${pct(r.itSub)} |`);
  }
  const counts = new Map<string, number>();
  for (const k of kbKeys.sub) counts.set(k, (counts.get(k) ?? 0) + 1);
  const chance = gKeys.sub.reduce((a, k) => a + (counts.get(k) ?? 0) / kb.length, 0) / google.length;
  console.log(`\nseed ${seed}; exact cosine search over ${kb.length} KB items; a random neighbour has the same subcategory ${pct(chance)} of the time.`);
}

await main();
