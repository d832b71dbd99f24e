/**
 * retformer as a library: the typed public API (docs/api.md). Everything the CLI does goes through
 * these functions; anything not exported here is internal and may change.
 */

// Encoders: frozen image/text encoders from a spec ("embedded", "pixels", "onnx:<dir>[#variant]")
export { createEncoder, DEFAULT_ENCODER_SPEC, type EncoderSpec, openEncoder, parseEncoderSpec } from './encoders/registry.ts';
export type { EmbedOptions, Encoder, EncoderDescriptor, ImageSource } from './encoders/types.ts';

// Knowledge bases: build from a pairs CSV, add to, open and search
export { type AddOptions, addPairsCsv, type BuildOptions, buildKnowledgeBase, MemoryKnowledgeBase, openKbEncoder, openKnowledgeBase } from './kb/index.ts';
export { createKnowledgeBase, openKnowledgeBaseSpec } from './kb/registry.ts';
export type { EmbeddedPair, KbManifest, KnowledgeBase, Modality, Neighbour, PairMeta, SearchOptions } from './kb/types.ts';

// Data: labelled image sets (CSV manifest, image folder, LIFT split)
export { classCounts, readDataset } from './data/index.ts';
export type { Bucket, BucketEdges, Dataset, Sample } from './data/types.ts';

// Training
export { type TrainConfig, TrainConfigSchema, type TrainRunOptions, type TrainRunResult, trainRun } from './train/index.ts';

// Inference: one Predictor per trained run
export { type PredictManyOptions, predictMany } from './infer/batch.ts';
export { Predictor } from './infer/predictor.ts';
export { type PredictionReport, predictionReport } from './infer/report.ts';
export type { ClassifyOptions, Evidence, Prediction, PredictorOptions } from './infer/types.ts';

// Evaluation: long-tail metrics of a run on a test split
export { type EvaluateOptions, type EvaluateResult, evaluateRun } from './eval/evaluate.ts';
export { computeMetrics } from './eval/metrics.ts';
export { type EvalMetrics, LIFT_BUCKETS } from './eval/types.ts';

// Errors: every user-facing failure is a RetformerError with a one-line message
export { RetformerError } from './util/errors.ts';
