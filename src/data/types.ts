/** One labelled image of a dataset, as every reader (CSV manifest, image folder, LIFT split file) returns it. */
export interface Sample {
  /** Absolute path of the image file. */
  path: string;
  /** Class name (ints in LIFT files are kept as their decimal string). */
  label: string;
  /** Optional caption / description. */
  text?: string;
  /** Optional id of this picture's own KB pair (a CSV's `id` column): retrieval leaves it out (the leakage guard). */
  id?: string;
  /** Optional split tag (train, val, test, ...). */
  split?: string;
  /** The true label when `label` was corrupted by `data noise`. */
  cleanLabel?: string;
  /** 1-based data row (or line) in the source file, for error messages. */
  row: number;
}

export interface Dataset {
  /** The file or folder the samples were read from. */
  source: string;
  samples: Sample[];
  /** Class names in their fixed order; a sample's class index is classes.indexOf(label). */
  classes: string[];
}

/** Long-tail bucket edges in training images per class: Many > many, Medium few..many (inclusive), Few < few. */
export interface BucketEdges {
  many: number;
  few: number;
}

export const LIFT_BUCKETS: BucketEdges = { many: 100, few: 20 };

export type Bucket = 'many' | 'medium' | 'few';
