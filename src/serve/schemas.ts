import { z } from 'zod';

/**
 * Every request and response of the HTTP service, as zod schemas. The routes validate requests
 * with them, the tests check responses against them, and /openapi.json is generated from them.
 */

const finite = z.number().describe('a finite number');
export const EmbeddingSchema = z.array(finite).min(1).max(16384).describe('a query embedding [dim] from the run\'s encoder (normalised by the server)');
const Base64Image = z.string().min(1).describe('an encoded PNG, JPEG, GIF, WebP or AVIF picture as base64 (a data: URL is accepted)');
const K = z.coerce.number().int().min(1).max(256);
const AbstainBelow = z.coerce.number().min(0).max(1).optional().describe('abstain (label and index null, abstained true) when the top probability is below this (0..1); the best guess stays first in top');
export const ModalitySchema = z.enum(['image', 'text']);
const PairId = z
  .string()
  .min(1)
  .max(200)
  .refine((id) => ![...id].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f), 'must not contain control characters');

export const ErrorSchema = z.object({ statusCode: z.int(), error: z.string(), message: z.string().describe('one line') });

// ---- requests ----

export const PredictBody = z
  .object({
    image: Base64Image.optional(),
    embedding: EmbeddingSchema.optional(),
    top: z.coerce.number().int().min(1).max(100).optional().describe('how many top classes to return (default 5)'),
    abstainBelow: AbstainBelow,
  })
  .strict();

export const PredictBatchBody = z
  .object({
    images: z.array(Base64Image).min(1).optional(),
    embeddings: z.array(EmbeddingSchema).min(1).optional(),
    top: z.coerce.number().int().min(1).max(100).optional(),
    abstainBelow: AbstainBelow,
  })
  .strict();

export const SearchQuery = z
  .object({
    text: z.string().min(1).max(2000),
    k: K.default(10),
    modality: ModalitySchema.optional().describe('index to search: text (default for a text query) or image (cross-modal)'),
  })
  .strict();

export const SearchBody = z
  .object({
    text: z.string().min(1).max(2000).optional(),
    image: Base64Image.optional(),
    embedding: EmbeddingSchema.optional(),
    k: K.optional(),
    modality: ModalitySchema.optional().describe('index to search; default image for an image or embedding, text for a text'),
  })
  .strict();

/** clip-retrieval's /knn-service request (clip_back.py); fields it has that do not apply here are accepted and ignored. */
export const KnnServiceBody = z
  .object({
    text: z.string().max(2000).nullish(),
    image: z.string().nullish(),
    image_url: z.string().nullish().describe('refused: the service never downloads'),
    embedding_input: EmbeddingSchema.nullish(),
    modality: ModalitySchema.default('image'),
    num_images: z.coerce.number().int().min(1).max(1000).default(40),
    num_result_ids: z.coerce.number().int().min(1).max(10000).optional(),
    indice_name: z.string().nullish(),
    use_mclip: z.boolean().optional(),
    deduplicate: z.boolean().optional(),
    use_safety_model: z.boolean().optional(),
    use_violence_detector: z.boolean().optional(),
    aesthetic_score: z.union([z.string(), z.number()]).optional(),
    aesthetic_weight: z.union([z.string(), z.number()]).optional(),
  })
  .passthrough();

export const AddPairBody = z
  .object({
    image: Base64Image.optional().describe('the picture (or send it as the multipart file "image")'),
    text: z.string().trim().min(1).max(2000),
    label: z.string().trim().min(1).max(200).optional(),
    id: PairId.optional().describe('default: derived from the picture, text and label'),
    allowNewLabel: z.boolean().optional().describe('accept a label the KB has not seen (default: refuse it as a likely typo)'),
  })
  .strict();

export const PairIdParams = z.object({ id: PairId }).strict();

export const PairsQuery = z
  .object({
    offset: z.coerce.number().int().min(0).default(0),
    limit: z.coerce.number().int().min(1).max(200).default(24),
  })
  .strict();

// ---- responses ----

export const PairOut = z.object({
  id: z.string(),
  row: z.int().describe('stable row key inside the KB'),
  text: z.string(),
  label: z.string().optional(),
  thumbnail: z.string().describe('URL of the pair\'s picture, served from the KB'),
});

export const NeighbourOut = PairOut.extend({ similarity: z.number() });
export const EvidenceOut = NeighbourOut.extend({ attention: z.number().describe('weight in the fusion, sums to 1 over the neighbours') });

export const PredictionOut = z.object({
  label: z.string().nullable().describe('predicted class name; null when the request set abstainBelow and the top probability is below it'),
  index: z.int().nullable(),
  probability: z.number().describe('the top class\'s probability'),
  abstained: z.boolean().optional().describe('present when the request set abstainBelow'),
  top: z.array(z.object({ label: z.string(), index: z.int(), probability: z.number() })),
  branches: z
    .object({
      image: z.number().describe('L_I: the MLP branch\'s logit for the predicted class'),
      retrieval: z.number().optional().describe('L_R: the retrieval branch\'s logit for it (absent for mlp-only)'),
    })
    .describe('the two branches before fusion, f = tau/2 (L_I + L_R)'),
  gate: z.number().optional().describe('adaptive variant: weight of the retrieval branch'),
  neighbours: z.array(EvidenceOut).describe('the k neighbours, ordered by attention'),
  kb: z.object({ generation: z.int(), size: z.int() }),
});

export const PredictBatchOut = z.object({ predictions: z.array(PredictionOut) });

export const SearchOut = z.object({ modality: ModalitySchema, k: z.int(), kb: z.object({ generation: z.int(), size: z.int() }), neighbours: z.array(NeighbourOut) });

export const KnnServiceOut = z.array(
  z.object({
    id: z.int().describe('KB row'),
    similarity: z.number(),
    caption: z.string(),
    url: z.string().describe('thumbnail URL on this server'),
    image_path: z.string().describe('the stored source picture\'s path'),
    pair_id: z.string(),
    label: z.string().optional(),
  }),
);

export const AddPairOut = z.object({ id: z.string(), kb: z.object({ generation: z.int(), size: z.int() }) });
export const RemovePairOut = z.object({ id: z.string(), removed: z.literal(true), kb: z.object({ generation: z.int(), size: z.int() }) });

export const PairsOut = z.object({ total: z.int(), offset: z.int(), limit: z.int(), generation: z.int(), pairs: z.array(PairOut) });

export const StatsOut = z.object({
  pairs: z.int(),
  generation: z.int(),
  dim: z.int(),
  dtype: z.string(),
  encoder: z.string(),
  pendingWrites: z.int(),
  writable: z.boolean().describe('a token was configured at start-up'),
  model: z.object({ id: z.string(), variant: z.string(), k: z.int(), classes: z.array(z.string()) }),
});

export const HealthOut = z.object({ status: z.literal('ok'), generation: z.int(), pairs: z.int() });
export const IndicesOut = z.array(z.string());

export type PredictionOutT = z.output<typeof PredictionOut>;
