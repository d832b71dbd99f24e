import type { BucketEdges, EvalMetrics } from './types.ts';

/**
 * The results of one comparison (all variants and baselines on one split): written by
 * `retformer compare` / the demo as results.json, read by the report renderer.
 */
export interface MethodResult {
  /** Stable key: mlp-only, knn-vote, image-only, zero-shot, no-text, no-image, full, adaptive. */
  key: string;
  /** Display name for tables, e.g. "RetFormer full". */
  name: string;
  kind: 'baseline' | 'retformer';
  metrics: EvalMetrics;
  /** Predicted class index per test sample, in test order. */
  predictions: number[];
  /** Top-1 probability per test sample (trained methods), for the calibration charts. */
  confidences?: number[];
  runDir?: string;
  trainSeconds?: number;
  /** Neighbours per query this method retrieved (absent for methods that do not retrieve). */
  k?: number;
}

/** A method of the comparison that did not run or finish, and why (precondition, failed training, evaluation error). */
export interface SkippedMethod {
  key: string;
  name: string;
  reason: string;
}

export interface GalleryNeighbour {
  /** Absolute path of the neighbour's image. */
  source: string;
  text: string;
  label?: string;
  similarity: number;
  /** Attention weight of this neighbour in the fusion (sums to 1 over the k neighbours). */
  attention: number;
}

/** A test picture from a Few class that MLP-only got wrong and RetFormer full got right. */
export interface GalleryItem {
  testPath: string;
  label: string;
  mlpPred: string;
  fullPred: string;
  fullProb: number;
  neighbours: GalleryNeighbour[];
}

/** An extra section of the report (the demo's KB sources, noisy labels, settings chosen on validation, label audit): text and one table. */
export interface ReportSection {
  id: string;
  title: string;
  /** Plain text paragraphs shown before the table. */
  notes: string[];
  header: string[];
  rows: string[][];
}

export interface CompareResults {
  createdAt: string;
  seed: number;
  /** Class names in class-index order. */
  classes: string[];
  /** Training images per class, in class order. */
  trainCounts: number[];
  edges: BucketEdges;
  /** Test samples in order: absolute image path and true class index. */
  test: { path: string; label: number }[];
  /** The methods that finished, in table order. */
  methods: MethodResult[];
  /** Methods asked for that were skipped, with the reason (absent when all finished). */
  skipped?: SkippedMethod[];
  /**
   * Retrieval purity per class (class order): mean share of the k image-neighbours of this class's
   * test pictures whose KB label equals the class, in [0, 1]; null when the class has no test
   * pictures or the KB has no labels.
   */
  purity: (number | null)[];
  gallery: GalleryItem[];
  /** Wall-clock seconds per step (embed, kb, train:<variant>, eval, ...). */
  timings: Record<string, number>;
  /** Free-form settings worth showing (k, epochs, encoder id, KB size, ...). */
  settings: Record<string, string | number | boolean>;
  /** Extra sections shown after the results table (optional; the demo adds them). */
  sections?: ReportSection[];
}
