import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, stat } from 'node:fs/promises';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { mapConcurrent } from '../util/concurrency.ts';
import type { Bucket, BucketEdges } from './types.ts';
import { RetformerError } from '../util/errors.ts';
import { writeJsonAtomic } from '../util/fs.ts';
import { startProgress } from '../util/progress.ts';
import { writeClassList } from './classes.ts';
import { type ManifestRow, writeManifest } from './manifest.ts';
import { bucketOf } from './stats.ts';

export const EMOJI_VENDORS = ['apple', 'google', 'twitter', 'facebook'] as const;
export type EmojiVendor = (typeof EMOJI_VENDORS)[number];
export type EmojiSplit = 'train' | 'test' | 'kb';

/** The bucket edges the emoji demo reports with (training pictures per subcategory): Many > 40, Medium 16..40, Few < 16. */
export const EMOJI_EDGES: BucketEdges = { many: 40, few: 16 };

const vendorList = z.array(z.enum(EMOJI_VENDORS)).min(1);
export const emojiBenchmarkOptionsSchema = z.object({
  trainVendors: vendorList.default(['apple', 'facebook']),
  testVendors: vendorList.default(['google']),
  kbVendors: vendorList.default(['twitter']),
  /** Parallel file reads/copies. */
  concurrency: z.number().int().positive().default(16),
  quiet: z.boolean().default(false),
});
export type EmojiBenchmarkOptions = z.input<typeof emojiBenchmarkOptionsSchema>;

/** One emoji of emoji-datasource (vendor independent), with the text the benchmark pairs with its pictures. */
export interface EmojiRecord {
  unified: string;
  /** File name of its 64 px picture, e.g. `1f600.png`. */
  image: string;
  char: string;
  name: string;
  category: string;
  subcategory: string;
  /** Lower-cased name plus emojilib keywords (underscores to spaces), de-duplicated, comma separated. */
  text: string;
}

interface DatasourceEntry {
  unified: string;
  image: string;
  name: string | null;
  short_names: string[];
  category: string;
  subcategory: string;
  [hasImg: `has_img_${string}`]: boolean | undefined;
}

export interface EmojiBenchmarkInfo {
  /** Absolute path of the benchmark folder. */
  dir: string;
  /** Absolute paths of the files written. */
  files: { train: string; test: string; kb: string; classes: string; info: string };
  vendors: Record<EmojiSplit, EmojiVendor[]>;
  /** Images per split, and the number of classes (subcategories). */
  counts: { train: number; test: number; kb: number; classes: number };
  /** Images per split and vendor. */
  perVendor: Record<EmojiSplit, Partial<Record<EmojiVendor, number>>>;
  classes: string[];
  /** Training / test images per class, in class order. */
  trainCounts: number[];
  testCounts: number[];
  edges: BucketEdges;
  /** Classes and training images per bucket (buckets from training counts). */
  buckets: Record<Bucket, { classes: number; images: number }>;
  /** Training/KB pictures left out because their bytes equal a test picture's (leakage guard). */
  droppedDuplicates: number;
  /** Package versions the pictures and texts came from. */
  sources: Record<string, string>;
  /** Pictures copied by this build, and pictures already in place with the same size. */
  copied: number;
  reused: number;
}

const requireFromHere = createRequire(import.meta.url);

/** Folder of an installed npm package. */
function packageDir(pkg: string): string {
  try {
    return dirname(requireFromHere.resolve(`${pkg}/package.json`));
  } catch {
    throw new RetformerError(`npm package ${pkg} is not installed (run npm install)`);
  }
}

function packageVersion(pkg: string): string {
  return (JSON.parse(readFileSync(join(packageDir(pkg), 'package.json'), 'utf8')) as { version: string }).version;
}

function readDatasource(vendor: EmojiVendor): DatasourceEntry[] {
  return JSON.parse(readFileSync(join(packageDir(`emoji-datasource-${vendor}`), 'emoji.json'), 'utf8')) as DatasourceEntry[];
}

/** The emoji character of a `unified` code such as `1F468-200D-1F4BB`. */
export function emojiChar(unified: string): string {
  return String.fromCodePoint(...unified.split('-').map((h) => Number.parseInt(h, 16)));
}

/** Name (lower case) then keywords (underscores to spaces), trimmed, de-duplicated case-insensitively. */
export function emojiText(name: string, keywords: readonly string[]): string {
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const raw of [name.toLowerCase(), ...keywords.map((k) => k.replace(/_/g, ' '))]) {
    const t = raw.replace(/\s+/g, ' ').trim();
    if (t === '' || seen.has(t.toLowerCase())) continue;
    seen.add(t.toLowerCase());
    parts.push(t);
  }
  return parts.join(', ');
}

function toRecord(e: DatasourceEntry, keywords: Record<string, string[]>): EmojiRecord {
  const char = emojiChar(e.unified);
  const name = e.name ?? e.short_names[0]?.replace(/_/g, ' ') ?? e.unified;
  return { unified: e.unified, image: e.image, char, name, category: e.category, subcategory: e.subcategory, text: emojiText(name, keywords[char] ?? []) };
}

/** All emoji that `vendor` has a picture for, with texts from emojilib. */
export function loadEmojiRecords(vendor: EmojiVendor): EmojiRecord[] {
  const keywords = JSON.parse(readFileSync(join(packageDir('emojilib'), 'dist', 'emoji-en-US.json'), 'utf8')) as Record<string, string[]>;
  return readDatasource(vendor)
    .filter((e) => e[`has_img_${vendor}`] === true)
    .map((e) => toRecord(e, keywords));
}

/** Absolute path of a vendor's 64 px picture of an emoji inside its npm package. */
export function emojiPicturePath(vendor: EmojiVendor, image: string): string {
  return join(packageDir(`emoji-datasource-${vendor}`), 'img', vendor, '64', image);
}

interface Picture {
  split: EmojiSplit;
  vendor: EmojiVendor;
  record: EmojiRecord;
  source: string;
  target: string;
  hash: string;
}

function checkDisjoint(vendors: Record<EmojiSplit, EmojiVendor[]>): void {
  const owner = new Map<EmojiVendor, EmojiSplit>();
  for (const split of ['train', 'test', 'kb'] as const) {
    for (const v of vendors[split]) {
      const other = owner.get(v);
      if (other === split) throw new RetformerError(`emoji: vendor "${v}" is listed twice in --${split}-vendors`);
      if (other !== undefined) throw new RetformerError(`emoji: vendor "${v}" is in both --${other}-vendors and --${split}-vendors (vendor sets must not overlap)`);
      owner.set(v, split);
    }
  }
}

async function sameSize(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([stat(a), stat(b)]);
    return sa.isFile() && sa.size === sb.size;
  } catch {
    return false;
  }
}

/**
 * Build the emoji long-tail benchmark in `outDir` from the installed emoji-datasource packages: labels are the 99
 * emoji subcategories; train / test / knowledge-base pictures come from disjoint vendor sets (default apple+facebook
 * / google / twitter), texts from emoji names and emojilib keywords. Pictures are copied into `outDir/images/<vendor>/`
 * (skipped when already there with the same size); writes train.csv, test.csv (`path,label,text`), kb.csv
 * (`path,text,id,label`), classes.txt (sorted) and info.json. A training or KB picture whose bytes equal a test
 * picture's is dropped.
 */
export async function buildEmojiBenchmark(outDir: string, options: EmojiBenchmarkOptions = {}): Promise<EmojiBenchmarkInfo> {
  const parsed = emojiBenchmarkOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RetformerError(`emoji: bad option ${issue.path.join('.')}: ${issue.message} (vendors: ${EMOJI_VENDORS.join(', ')})`);
  }
  const opts = parsed.data;
  const vendors: Record<EmojiSplit, EmojiVendor[]> = { train: opts.trainVendors, test: opts.testVendors, kb: opts.kbVendors };
  checkDisjoint(vendors);
  const dir = resolve(outDir);
  mkdirSync(dir, { recursive: true });

  // [pictures] every (split, vendor, emoji) to copy, test first so the leakage guard knows the test hashes
  const pictures: Picture[] = [];
  for (const split of ['test', 'train', 'kb'] as const) {
    for (const vendor of vendors[split]) {
      for (const record of loadEmojiRecords(vendor)) {
        pictures.push({ split, vendor, record, source: emojiPicturePath(vendor, record.image), target: join(dir, 'images', vendor, record.image), hash: '' });
      }
    }
  }

  const hashing = startProgress('emoji: hash', pictures.length, { unit: 'img', quiet: opts.quiet });
  await mapConcurrent(pictures, opts.concurrency, async (p) => {
    p.hash = createHash('sha256').update(await readFile(p.source)).digest('hex');
    hashing.tick();
  });
  hashing.stop();
  const testHashes = new Set(pictures.filter((p) => p.split === 'test').map((p) => p.hash));
  const kept = pictures.filter((p) => p.split === 'test' || !testHashes.has(p.hash));

  let copied = 0;
  const copying = startProgress('emoji: copy', kept.length, { unit: 'img', quiet: opts.quiet });
  const madeDirs = new Set<string>();
  await mapConcurrent(kept, opts.concurrency, async (p) => {
    if (!(await sameSize(p.target, p.source))) {
      const folder = dirname(p.target);
      if (!madeDirs.has(folder)) {
        await mkdir(folder, { recursive: true });
        madeDirs.add(folder);
      }
      const tmp = `${p.target}.tmp-${process.pid}`;
      await copyFile(p.source, tmp);
      await rename(tmp, p.target);
      copied++;
    }
    copying.tick();
  });
  copying.stop();

  const classes = [...new Set(pictures.map((p) => p.record.subcategory))].sort();
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const rowsOf = (split: EmojiSplit): ManifestRow[] =>
    kept
      .filter((p) => p.split === split)
      .map((p) => ({ path: p.target, label: p.record.subcategory, text: p.record.text, extra: { id: `${p.vendor}:${p.record.unified.toLowerCase()}` } }));
  const rows = { train: rowsOf('train'), test: rowsOf('test'), kb: rowsOf('kb') };
  const files = {
    train: join(dir, 'train.csv'),
    test: join(dir, 'test.csv'),
    kb: join(dir, 'kb.csv'),
    classes: join(dir, 'classes.txt'),
    info: join(dir, 'info.json'),
  };
  writeManifest(files.train, rows.train, ['path', 'label', 'text']);
  writeManifest(files.test, rows.test, ['path', 'label', 'text']);
  writeManifest(files.kb, rows.kb, ['path', 'text', 'id', 'label']);
  writeClassList(files.classes, classes);

  const countPerClass = (split: EmojiSplit) => {
    const counts = new Array<number>(classes.length).fill(0);
    for (const r of rows[split]) counts[classIndex.get(r.label!)!]++;
    return counts;
  };
  const trainCounts = countPerClass('train');
  const buckets: EmojiBenchmarkInfo['buckets'] = { many: { classes: 0, images: 0 }, medium: { classes: 0, images: 0 }, few: { classes: 0, images: 0 } };
  trainCounts.forEach((n) => {
    const b = buckets[bucketOf(n, EMOJI_EDGES)];
    b.classes++;
    b.images += n;
  });
  const perVendor: EmojiBenchmarkInfo['perVendor'] = { train: {}, test: {}, kb: {} };
  for (const p of kept) perVendor[p.split][p.vendor] = (perVendor[p.split][p.vendor] ?? 0) + 1;
  const sources = Object.fromEntries(
    ['emojilib', ...EMOJI_VENDORS.filter((v) => Object.values(vendors).some((l) => l.includes(v))).map((v) => `emoji-datasource-${v}`)].map((pkg) => [pkg, packageVersion(pkg)]),
  );
  const info: EmojiBenchmarkInfo = {
    dir,
    files,
    vendors,
    counts: { train: rows.train.length, test: rows.test.length, kb: rows.kb.length, classes: classes.length },
    perVendor,
    classes,
    trainCounts,
    testCounts: countPerClass('test'),
    edges: EMOJI_EDGES,
    buckets,
    droppedDuplicates: pictures.length - kept.length,
    sources,
    copied,
    reused: kept.length - copied,
  };
  const relativeFiles = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, v.slice(dir.length + 1)]));
  writeJsonAtomic(files.info, {
    description:
      'Emoji long-tail benchmark: labels are emoji subcategories; train, test and knowledge-base pictures come from disjoint vendor sets; texts are emoji names plus emojilib keywords. Paths in the CSVs are relative to this folder.',
    ...info,
    dir: undefined,
    files: relativeFiles,
  });
  return info;
}
