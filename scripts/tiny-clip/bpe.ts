/**
 * A tiny byte-pair-encoding trainer and the CLIP-style `tokenizer.json` (Hugging Face tokenizers
 * format) built from it: lower-case normaliser, CLIP's regex split + byte-level pre-tokenizer,
 * `</w>` end-of-word suffix, `<|startoftext|>` / `<|endoftext|>` specials with the end token as
 * the largest id (CLIP's text tower pools at argmax(input_ids)).
 */

export const END_OF_WORD = '</w>';
export const START_TOKEN = '<|startoftext|>';
export const END_TOKEN = '<|endoftext|>';

/** GPT-2 / CLIP byte-to-unicode table: printable bytes map to themselves, the rest to code points from 256 up. */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const table = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (printable.includes(b)) table[b] = String.fromCodePoint(b);
    else table[b] = String.fromCodePoint(256 + extra++);
  }
  return table;
}

export interface BpeModel {
  /** token -> id, ids dense from 0; specials last. */
  vocab: Map<string, number>;
  /** Merge rules in priority order, as "left right". */
  merges: string[];
}

/**
 * Learn `numMerges` merges from a word list (words already lower-case, letters/digits only).
 * Each word is split into characters with `</w>` glued to the last one; the most frequent adjacent
 * pair is merged each round, ties broken by the pair's text so the result is deterministic.
 */
export function trainBpe(words: readonly string[], numMerges: number): BpeModel {
  const counts = new Map<string, number>();
  for (const w of words) counts.set(w, (counts.get(w) ?? 0) + 1);
  const corpus = [...counts.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([w, n]) => {
      const chars = [...w];
      chars[chars.length - 1] += END_OF_WORD;
      return { symbols: chars, count: n };
    });

  const base = bytesToUnicode();
  const vocabList: string[] = [...base, ...base.map((c) => c + END_OF_WORD)];
  const merges: string[] = [];
  for (let round = 0; round < numMerges; round++) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of corpus) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    }
    let best = '';
    let bestCount = 0;
    for (const [key, n] of pairs) {
      if (n > bestCount || (n === bestCount && key < best)) {
        best = key;
        bestCount = n;
      }
    }
    if (bestCount < 2) break; // nothing worth merging is left
    const [left, right] = best.split(' ');
    const merged = left + right;
    merges.push(best);
    vocabList.push(merged);
    for (const entry of corpus) {
      const s = entry.symbols;
      const next: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === left && s[i + 1] === right) {
          next.push(merged);
          i++;
        } else next.push(s[i]);
      }
      entry.symbols = next;
    }
  }
  vocabList.push(START_TOKEN, END_TOKEN);
  return { vocab: new Map(vocabList.map((t, i) => [t, i])), merges };
}

/** The Hugging Face `tokenizer.json` for a trained BPE model, in CLIP's layout. */
export function clipTokenizerJson(model: BpeModel): Record<string, unknown> {
  const startId = model.vocab.get(START_TOKEN)!;
  const endId = model.vocab.get(END_TOKEN)!;
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: true,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(startId, START_TOKEN), special(endId, END_TOKEN)],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: {
            Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
          },
          behavior: 'Removed',
          invert: true,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'RobertaProcessing',
      sep: [END_TOKEN, endId],
      cls: [START_TOKEN, startId],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: END_TOKEN,
      continuing_subword_prefix: '',
      end_of_word_suffix: END_OF_WORD,
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries(model.vocab),
      merges: model.merges,
    },
  };
}

/** `tokenizer_config.json` as the CLIP exports carry it. */
export function clipTokenizerConfig(contextLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'CLIPTokenizer',
    model_max_length: contextLength,
    do_lower_case: true,
    bos_token: START_TOKEN,
    eos_token: END_TOKEN,
    pad_token: END_TOKEN,
    unk_token: END_TOKEN,
    add_prefix_space: false,
    clean_up_tokenization_spaces: true,
    errors: 'replace',
  };
}
