/**
 * The emoji pictures shipped in node_modules (emoji-datasource-<vendor>, 64 px) with their
 * subcategory and a text (emoji name + emojilib keywords), for the embedded encoder's benchmark.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const VENDORS = ['apple', 'google', 'twitter', 'facebook'] as const;
export type Vendor = (typeof VENDORS)[number];

export interface EmojiItem {
  /** The `unified` code points, e.g. "1F600": one emoji across vendors. */
  unified: string;
  name: string;
  category: string;
  subcategory: string;
  /** "grinning face: face, smile, happy, ..." */
  text: string;
  /** Absolute path of each vendor's 64 px picture, where the vendor has one. */
  images: Partial<Record<Vendor, string>>;
}

interface EmojiRow {
  name: string | null;
  unified: string;
  non_qualified: string | null;
  short_name: string;
  image: string;
  category: string;
  subcategory: string;
  [key: string]: unknown;
}

const require = createRequire(import.meta.url);

function toChar(unified: string): string {
  return String.fromCodePoint(...unified.split('-').map((h) => Number.parseInt(h, 16)));
}

export function loadEmoji(): EmojiItem[] {
  const rows = JSON.parse(readFileSync(require.resolve('emoji-datasource-twitter/emoji.json'), 'utf8')) as EmojiRow[];
  const keywords = JSON.parse(readFileSync(require.resolve('emojilib/dist/emoji-en-US.json'), 'utf8')) as Record<string, string[]>;
  const roots = Object.fromEntries(VENDORS.map((v) => [v, dirname(require.resolve(`emoji-datasource-${v}/package.json`))])) as Record<Vendor, string>;
  return rows.map((r) => {
    const name = (r.name ?? r.short_name).toLowerCase();
    const words = keywords[toChar(r.unified)] ?? (r.non_qualified ? keywords[toChar(r.non_qualified)] : undefined) ?? [];
    const kw = words.map((w) => w.replaceAll('_', ' ')).filter((w) => w !== name);
    const images: Partial<Record<Vendor, string>> = {};
    for (const v of VENDORS) if (r[`has_img_${v}`]) images[v] = join(roots[v], 'img', v, '64', r.image);
    return { unified: r.unified, name, category: r.category, subcategory: r.subcategory, text: kw.length ? `${name}: ${kw.join(', ')}` : name, images };
  });
}
