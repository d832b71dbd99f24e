import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RetformerError } from '../util/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.ts';
import { Rng } from '../util/rng.ts';
import { type ModelConfig, type ModelDims, usesLabels, usesRetrieval } from './config.ts';

/** One parameter's recipe: shape, initialiser and whether AdamW decays it. */
export interface ParamSpec {
  name: string;
  shape: number[];
  init: 'normal' | 'zeros' | 'ones';
  /** Standard deviation for 'normal'. */
  std?: number;
  /** Weight decay applies to matrices only (not biases, LN, null tokens). */
  decay: boolean;
}

/** Host-side parameter values by name (row-major, the layout the forward uses: x [n,in] @ W [in,out]). */
export type ParamValues = Map<string, { shape: number[]; data: Float32Array }>;

/** A deep copy of parameter values. */
export function cloneParams(values: ParamValues): ParamValues {
  return new Map([...values].map(([name, p]) => [name, { shape: [...p.shape], data: p.data.slice() }]));
}

/** Parameter list of a model; names are stable and are the file format's keys. */
export function paramSpecs(config: ModelConfig, dims: ModelDims): ParamSpec[] {
  const { inputDim: D, classes: C } = dims;
  const { width: d, hidden, layers } = config;
  const specs: ParamSpec[] = [];
  const mat = (name: string, fanIn: number, fanOut: number, std = Math.sqrt(2 / (fanIn + fanOut))) =>
    specs.push({ name, shape: [fanIn, fanOut], init: 'normal', std, decay: true });
  const vec = (name: string, n: number, init: 'zeros' | 'ones' = 'zeros') => specs.push({ name, shape: [n], init, decay: false });

  mat('mlp.w1', D, hidden);
  vec('mlp.b1', hidden);
  mat('mlp.w2', hidden, C);
  vec('mlp.b2', C);
  if (!usesRetrieval(config)) return specs;

  mat('proj.image', D, d);
  if (config.variant !== 'no-text') mat('proj.text', D, d); // no-text: the text stream is all zeros
  for (let l = 0; l < layers; l++) {
    vec(`l${l}.lnI.g`, d, 'ones');
    vec(`l${l}.lnI.b`, d);
    vec(`l${l}.lnT.g`, d, 'ones');
    vec(`l${l}.lnT.b`, d);
    // dir 'i': text tokens query image keys/values, added to I; dir 't': image queries text, added to T
    for (const dir of ['i', 't']) {
      const p = `l${l}.${dir}`;
      mat(`${p}.wq`, d, d);
      mat(`${p}.wk`, d, d);
      mat(`${p}.wv`, d, d);
      mat(`${p}.wo`, d, d, Math.sqrt(1 / d) / Math.sqrt(2 * layers));
      vec(`${p}.bo`, d);
      if (config.simBias) specs.push({ name: `${p}.simScale`, shape: [config.heads], init: 'zeros', decay: false });
      if (config.adaptive) {
        specs.push({ name: `${p}.nullK`, shape: [d], init: 'normal', std: 0.02, decay: false });
        specs.push({ name: `${p}.nullV`, shape: [d], init: 'zeros', decay: false });
      }
    }
    if (config.ffn) {
      for (const s of ['I', 'T']) {
        const p = `l${l}.ffn${s}`;
        vec(`${p}.ln.g`, d, 'ones');
        vec(`${p}.ln.b`, d);
        mat(`${p}.w1`, d, 2 * d);
        vec(`${p}.b1`, 2 * d);
        mat(`${p}.w2`, 2 * d, d, Math.sqrt(1 / (2 * d)) / Math.sqrt(2 * layers));
        vec(`${p}.b2`, d);
      }
    }
  }
  vec('head.ln.g', 2 * d, 'ones');
  vec('head.ln.b', 2 * d);
  mat('head.w', 2 * d, C);
  vec('head.b', C);
  if (usesLabels(config)) {
    if (config.labelMemory === 'table') {
      // free per-stream label tables [C, d], at about the scale of a projected token
      for (const s of ['image', 'text']) specs.push({ name: `label.${s}`, shape: [C, d], init: 'normal', std: Math.sqrt(1 / (D + d)), decay: false });
    } else specs.push({ name: 'label.gain', shape: [2], init: 'ones', decay: false }); // tied to head.w: one gain per stream
    if (config.labelMemory === 'vote') specs.push({ name: 'label.vote', shape: [1], init: 'ones', decay: false });
  }
  if (config.adaptive) {
    specs.push({ name: 'gate.w', shape: [2 * d + D, 1], init: 'normal', std: 0.01, decay: true });
    vec('gate.b', 1);
  }
  return specs;
}

/** Seeded initial values for every parameter. */
export function initParams(specs: readonly ParamSpec[], seed: number): ParamValues {
  const rng = new Rng(seed);
  const out: ParamValues = new Map();
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (s.init === 'ones') data.fill(1);
    else if (s.init === 'normal') for (let i = 0; i < n; i++) data[i] = rng.normal() * (s.std ?? 0.02);
    out.set(s.name, { shape: [...s.shape], data });
  }
  return out;
}

interface WeightsIndex {
  format: 'retformer-weights-1';
  tensors: { name: string; shape: number[]; offset: number; length: number }[];
}

/** Save parameters as `<dir>/<stem>.json` (index) + `<stem>.bin` (float32 little-endian), atomically. */
export function saveParams(dir: string, values: ParamValues, stem = 'weights'): void {
  mkdirSync(dir, { recursive: true });
  const index: WeightsIndex = { format: 'retformer-weights-1', tensors: [] };
  let total = 0;
  for (const [name, v] of values) {
    index.tensors.push({ name, shape: v.shape, offset: total, length: v.data.length });
    total += v.data.length;
  }
  const all = new Float32Array(total);
  for (const t of index.tensors) all.set(values.get(t.name)!.data, t.offset);
  writeFileAtomic(join(dir, `${stem}.bin`), new Uint8Array(all.buffer));
  writeJsonAtomic(join(dir, `${stem}.json`), index);
}

export function loadParams(dir: string, stem = 'weights'): ParamValues {
  const indexFile = join(dir, `${stem}.json`);
  const binFile = join(dir, `${stem}.bin`);
  if (!existsSync(indexFile) || !existsSync(binFile)) throw new RetformerError(`${dir}: no saved weights (${stem}.json / ${stem}.bin missing)`);
  const index = JSON.parse(readFileSync(indexFile, 'utf8')) as WeightsIndex;
  const bytes = readFileSync(binFile);
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const out: ParamValues = new Map();
  for (const t of index.tensors) {
    if (t.offset + t.length > all.length) throw new RetformerError(`${binFile}: truncated weights file`);
    out.set(t.name, { shape: t.shape, data: all.slice(t.offset, t.offset + t.length) });
  }
  return out;
}

/** Check that saved values match the specs of the configured model. */
export function checkParams(values: ParamValues, specs: readonly ParamSpec[], where: string): void {
  for (const s of specs) {
    const v = values.get(s.name);
    if (!v) throw new RetformerError(`${where}: weights lack parameter "${s.name}" (config and weights disagree)`);
    if (v.shape.join('x') !== s.shape.join('x'))
      throw new RetformerError(`${where}: parameter "${s.name}" has shape [${v.shape}] but the config needs [${s.shape}]`);
  }
}
