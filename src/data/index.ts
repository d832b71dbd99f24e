// The data layer: dataset readers and writers, long-tail and label-noise generators, class statistics,
// and the emoji benchmark builder.
export { allIntegerLabels, readClassList, sortClassNames, writeClassList } from './classes.ts';
export {
  EMOJI_EDGES,
  EMOJI_VENDORS,
  type EmojiBenchmarkInfo,
  type EmojiBenchmarkOptions,
  type EmojiRecord,
  type EmojiVendor,
  buildEmojiBenchmark,
  emojiChar,
  emojiPicturePath,
  emojiText,
  loadEmojiRecords,
} from './emoji.ts';
export { type LongTailOptions, type LongTailResult, longTailCounts, makeLongTail } from './longtail.ts';
export { MANIFEST_COLUMNS, type ManifestRow, manifestColumnsFor, writeManifest } from './manifest.ts';
export { type NoiseOptions, type NoiseResult, addLabelNoise, flipTarget } from './noise.ts';
export { type DatasetFormat, IMAGE_EXTENSIONS, type ReadDatasetOptions, checkImagesExist, detectFormat, labelIndices, readDataset } from './readers.ts';
export { type DatasetStats, bucketOf, classCounts, datasetStats, formatStats, validateEdges } from './stats.ts';
export type { Dataset, Sample } from './types.ts';
