import { constants } from 'node:buffer';
import { closeSync, fstatSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { RetformerError, toUserError } from '../util/errors.ts';
import { fsyncPath } from '../util/fs.ts';
import { crashPoint } from './crash-point.ts';
import { preadExact, writeAll } from './io.ts';

/**
 * Locality layout of a saved HNSW index (usearch's dense file format, version 2).
 *
 * usearch stores node i's vector and graph record at slot i, and slots follow insertion order, which
 * for imported embeddings is unrelated to where a vector lies. A search at 1M pairs then reads each
 * candidate from a random place in a 1.3 GB file: a cache miss and a TLB miss per distance. This
 * renumbers the slots so that nodes near each other in the graph sit near each other in the file,
 * without changing the graph: every node keeps its key, level and neighbour lists (slot numbers
 * mapped), so searches return the same keys at the same distances.
 *
 * The order: a breadth-first search over the level-0 graph started at once from every "hub" (the
 * nodes HNSW promoted to level 2 or above: about one per M^2 nodes, spread over the data by
 * construction), each node joining the hub that reaches it first; the hubs' groups follow each
 * other in the order a breadth-first search over the hubs' own level-2 links reaches them, and
 * inside a group nodes keep the order the search reached them. At 1M pairs (M = 32) that is ~1,000
 * groups of ~1,000 neighbouring nodes, and a search reads a few compact regions instead of the
 * whole file (docs/kb-format.md, "Index layout": 0.90 -> 0.60 ms per query, recall unchanged).
 *
 * The file is rewritten beside itself and renamed over: a crash leaves the old file (or a temp file
 * that KB recovery removes). Laying out an index that is already laid out changes nothing.
 *
 * File layout read here (usearch 2.x, `index_dense_gt::save_to_stream` then `index_gt::save_to_stream`):
 *   [rows u32][bytes per vector u32]  vectors [rows, bytes per vector] in slot order
 *   dense head (64 bytes: "usearch", version u16 x3, metric/scalar/key/slot kinds u8, counts...)
 *   graph head: size, connectivity, connectivity_base, max_level, entry_slot (u64 each)
 *   levels [size] i16, then each node: key u64, level i16, level 0 list (count u32, connectivity_base
 *   slots u32), then one list (count u32, connectivity slots u32) per level above.
 */

/** What laying out did. `reason` is set when the file was left as it is (a format this code does not know). */
export interface IndexLayout {
  /** Nodes whose slot changed (0: the file was already laid out, or was left alone). */
  moved: number;
  /** Groups of the layout (hubs, plus one for nodes no hub reaches). */
  groups: number;
  reason?: string;
}

const MATRIX_HEAD = 8;
const DENSE_HEAD = 64;
const GRAPH_HEAD = 40;
const NODE_HEAD = 10; // key u64 + level i16
const KIND_U64 = 14;
const KIND_U32 = 15;
const HUB_LEVEL = 2;
const WRITE_CHUNK = 4 << 20;

interface ParsedIndex {
  rows: number;
  vectorBytes: number;
  /** The dense head and the graph head, as read. */
  heads: Buffer;
  entry: number;
  levels: Int16Array; // [rows]
  /** Levels and node records, as read: [levels | nodes]. */
  graph: Buffer;
  /** Offset in `graph` of each node's record. */
  nodeAt: Float64Array; // [rows]
  listBytes: number;
  baseListBytes: number;
}

/** Bytes of a node record at `level`: its head, its level-0 list, one list per level above. */
function nodeBytes(p: Pick<ParsedIndex, 'baseListBytes' | 'listBytes'>, level: number): number {
  return NODE_HEAD + p.baseListBytes + level * p.listBytes;
}

/**
 * Lay out the index file at `path` in place (see above). Synchronous: it runs inside a KB commit.
 * `by`: 'locality' (what KB commits do), or 'key' (slots in key order: the layout usearch writes for
 * a KB built in one go; for benchmarks and tests).
 */
export function layOutIndexFile(path: string, by: 'locality' | 'key' = 'locality', onProgress?: (done: number, total: number) => void): IndexLayout {
  const fd = openSync(path, 'r');
  try {
    const parsed = parseIndex(fd, fstatSync(fd).size, path);
    if (typeof parsed === 'string') return { moved: 0, groups: 0, reason: parsed };
    if (parsed.rows === 0) return { moved: 0, groups: 0 }; // an empty KB's index: nothing to place
    const { order, groups } = by === 'locality' ? localityOrder(parsed) : keyOrder(parsed);
    let moved = 0;
    for (let i = 0; i < order.length; i++) if (order[i] !== i) moved++;
    if (moved === 0) return { moved, groups };
    onProgress?.(0, parsed.rows);
    writePermuted(fd, path, parsed, order, onProgress);
    return { moved, groups };
  } finally {
    closeSync(fd);
  }
}

/**
 * How far a node's level-0 neighbours sit from it in the file, in slots: the median distance, and
 * the share of links shorter than `window` slots. The layout makes both better (at 1M, M = 32:
 * median 215k -> 131k slots, see docs/interop.md). Undefined for a file this code cannot read.
 */
export function linkLocality(path: string, window: number): { median: number; near: number } | undefined {
  const fd = openSync(path, 'r');
  try {
    const p = parseIndex(fd, fstatSync(fd).size, path);
    if (typeof p === 'string') return undefined;
    let links = 0;
    for (let node = 0; node < p.rows; node++) links += p.graph.readUInt32LE(p.nodeAt[node] + NODE_HEAD);
    if (links === 0) return { median: 0, near: 1 };
    const spans = new Uint32Array(links); // [links] slot distance of each level-0 link
    let at = 0;
    let near = 0;
    for (let node = 0; node < p.rows; node++) {
      const list = p.nodeAt[node] + NODE_HEAD;
      const count = p.graph.readUInt32LE(list);
      for (let j = 0; j < count; j++) {
        const span = Math.abs(p.graph.readUInt32LE(list + 4 + 4 * j) - node);
        if (span < window) near++;
        spans[at++] = span;
      }
    }
    spans.sort();
    return { median: spans[links >> 1], near: near / links };
  } finally {
    closeSync(fd);
  }
}

/** Read the heads and the graph of a saved index, or say why this file is not one this code can lay out. */
function parseIndex(fd: number, size: number, path: string): ParsedIndex | string {
  if (size < MATRIX_HEAD) return 'no vector matrix';
  const matrix = Buffer.alloc(MATRIX_HEAD);
  preadExact(fd, matrix, 0, path);
  const rows = matrix.readUInt32LE(0);
  const vectorBytes = matrix.readUInt32LE(4);
  const headsAt = MATRIX_HEAD + rows * vectorBytes;
  if (headsAt + DENSE_HEAD + GRAPH_HEAD > size) return 'not a usearch index with its vectors';
  const heads = Buffer.alloc(DENSE_HEAD + GRAPH_HEAD);
  preadExact(fd, heads, headsAt, path);
  if (heads.toString('latin1', 0, 7) !== 'usearch') return 'no usearch magic after the vectors';
  if (heads.readUInt16LE(7) !== 2) return `usearch format version ${heads.readUInt16LE(7)}, not 2`;
  if (heads[15] !== KIND_U64 || heads[16] !== KIND_U32) return 'keys are not u64 or slots are not u32';
  const graphHead = DENSE_HEAD;
  const count = Number(heads.readBigUInt64LE(graphHead));
  const connectivity = Number(heads.readBigUInt64LE(graphHead + 8));
  const connectivityBase = Number(heads.readBigUInt64LE(graphHead + 16));
  const entry = Number(heads.readBigUInt64LE(graphHead + 32));
  if (count !== rows || (rows > 0 && entry >= rows)) return 'graph size or entry does not match the vectors';
  if (size - headsAt - heads.length > constants.MAX_LENGTH) return 'graph records larger than one Buffer';
  const graph = Buffer.allocUnsafe(size - headsAt - heads.length);
  preadExact(fd, graph, headsAt + heads.length, path);
  const levels = new Int16Array(rows);
  for (let i = 0; i < rows; i++) levels[i] = graph.readInt16LE(2 * i);
  const listBytes = 4 + 4 * connectivity;
  const baseListBytes = 4 + 4 * connectivityBase;
  const nodeAt = new Float64Array(rows);
  let at = 2 * rows;
  for (let i = 0; i < rows; i++) {
    if (levels[i] < 0) return `node ${i} has level ${levels[i]}`;
    nodeAt[i] = at;
    at += nodeBytes({ baseListBytes, listBytes }, levels[i]);
  }
  if (at !== graph.length) return `node records end at ${at} bytes, the file's graph has ${graph.length}`;
  return { rows, vectorBytes, heads, entry, levels, graph, nodeAt, listBytes, baseListBytes };
}

/** order[newSlot] = oldSlot: groups of nodes around each hub, by a breadth-first search over level 0 from all hubs at once. */
function localityOrder(p: ParsedIndex): { order: Uint32Array; groups: number } {
  const { rows, graph, nodeAt } = p;
  const group = new Int32Array(rows).fill(-1); // [rows] the hub group a node joined
  const queue = new Uint32Array(rows); // nodes in the order the search reached them
  let head = 0;
  let tail = 0;
  for (const hub of hubOrder(p)) {
    group[hub] = tail;
    queue[tail++] = hub;
  }
  const hubs = tail;
  while (head < tail) {
    const node = queue[head++];
    const list = nodeAt[node] + NODE_HEAD;
    const count = graph.readUInt32LE(list);
    for (let j = 0; j < count; j++) {
      const next = graph.readUInt32LE(list + 4 + 4 * j);
      if (next < rows && group[next] < 0) {
        group[next] = group[node];
        queue[tail++] = next;
      }
    }
  }
  for (let i = 0; i < rows; i++) {
    if (group[i] < 0) {
      group[i] = hubs; // not reachable from a hub (removed nodes): one last group
      queue[tail++] = i;
    }
  }
  // counting sort by group, keeping the order reached inside each group
  const starts = new Uint32Array(hubs + 2);
  for (let i = 0; i < rows; i++) starts[group[i] + 1]++;
  for (let g = 1; g < starts.length; g++) starts[g] += starts[g - 1];
  const order = new Uint32Array(rows);
  for (let i = 0; i < rows; i++) order[starts[group[queue[i]]]++] = queue[i];
  const groups = starts[hubs] === rows ? hubs : hubs + 1;
  return { order, groups };
}

/** order[newSlot] = oldSlot: slots by ascending key. */
function keyOrder(p: ParsedIndex): { order: Uint32Array; groups: number } {
  const keys = new Float64Array(p.rows); // [rows] the keys, exact below 2^53
  for (let i = 0; i < p.rows; i++) keys[i] = Number(p.graph.readBigUInt64LE(p.nodeAt[i]));
  const order = Uint32Array.from({ length: p.rows }, (_, i) => i).sort((a, b) => keys[a] - keys[b] || a - b);
  return { order, groups: 1 };
}

/**
 * The hubs (nodes at level HUB_LEVEL or above; the entry alone if there are none), in the order a
 * breadth-first search over their level-HUB_LEVEL links from the entry reaches them, so that linked
 * hubs' groups lie next to each other; hubs it does not reach follow in slot order.
 */
function hubOrder(p: ParsedIndex): number[] {
  const { rows, levels, graph, nodeAt } = p;
  if (levels[p.entry] < HUB_LEVEL) return [p.entry];
  const seen = new Uint8Array(rows);
  const order = [p.entry];
  seen[p.entry] = 1;
  for (let head = 0; head < order.length; head++) {
    const node = order[head];
    const list = nodeAt[node] + nodeBytes(p, HUB_LEVEL - 1); // its level-HUB_LEVEL list: right after the record of a level-(HUB_LEVEL - 1) node
    const count = graph.readUInt32LE(list);
    for (let j = 0; j < count; j++) {
      const next = graph.readUInt32LE(list + 4 + 4 * j);
      if (next < rows && !seen[next] && levels[next] >= HUB_LEVEL) {
        seen[next] = 1;
        order.push(next);
      }
    }
  }
  for (let i = 0; i < rows; i++) if (levels[i] >= HUB_LEVEL && !seen[i]) order.push(i);
  return order;
}

/**
 * Write the index with node order[i] at slot i to a temp file, fsync, rename over `path`.
 * `onProgress` hears rows placed at each written chunk: the first half for vectors, the second for graph records.
 */
function writePermuted(fd: number, path: string, p: ParsedIndex, order: Uint32Array, onProgress?: (done: number, total: number) => void): void {
  const { rows, vectorBytes, graph, nodeAt, levels } = p;
  const slotOf = new Uint32Array(rows); // old slot -> new slot
  for (let i = 0; i < rows; i++) slotOf[order[i]] = i;
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  let out: number | undefined;
  try {
    const file = openSync(tmp, 'w');
    out = file;
    let maxLevel = 0;
    for (let i = 0; i < rows; i++) maxLevel = Math.max(maxLevel, levels[i]);
    const chunk = Buffer.allocUnsafe(Math.max(WRITE_CHUNK, nodeBytes(p, maxLevel), vectorBytes));
    let used = 0;
    let written = 0;
    let placed = 0; // rows of the 2 x rows to place (vectors, then graph records) that are in `chunk` or written
    const flush = () => {
      writeAll(file, chunk.subarray(0, used), written, path); // a failure names the index file, not its temp copy
      written += used;
      used = 0;
      onProgress?.(Math.floor(placed / 2), rows);
    };
    const room = (bytes: number) => {
      if (used + bytes > chunk.length) flush();
    };
    chunk.writeUInt32LE(rows, 0);
    chunk.writeUInt32LE(vectorBytes, 4);
    used = MATRIX_HEAD;
    for (let i = 0; i < rows; i++) {
      room(vectorBytes);
      preadExact(fd, chunk.subarray(used, used + vectorBytes), MATRIX_HEAD + order[i] * vectorBytes, path);
      used += vectorBytes;
      placed++;
    }
    room(p.heads.length);
    p.heads.copy(chunk, used);
    chunk.writeBigUInt64LE(BigInt(slotOf[p.entry]), used + DENSE_HEAD + 32);
    used += p.heads.length;
    for (let i = 0; i < rows; i++) {
      room(2);
      chunk.writeInt16LE(levels[order[i]], used);
      used += 2;
    }
    for (let i = 0; i < rows; i++) {
      const node = order[i];
      const bytes = nodeBytes(p, levels[node]);
      room(bytes);
      graph.copy(chunk, used, nodeAt[node], nodeAt[node] + bytes);
      let list = used + NODE_HEAD;
      for (let level = 0; level <= levels[node]; level++) {
        const count = chunk.readUInt32LE(list);
        for (let j = 0; j < count; j++) {
          const at = list + 4 + 4 * j;
          const neighbour = chunk.readUInt32LE(at);
          if (neighbour >= rows) throw new RetformerError(`${path}: node ${node} links to slot ${neighbour} of ${rows} (corrupt index)`);
          chunk.writeUInt32LE(slotOf[neighbour], at);
        }
        list += level === 0 ? p.baseListBytes : p.listBytes;
      }
      used += bytes;
      placed++;
    }
    flush();
    fsyncSync(file);
    closeSync(file);
    out = undefined;
    crashPoint('layout:before-rename');
    renameSync(tmp, path);
  } catch (err) {
    if (out !== undefined) closeSync(out);
    rmSync(tmp, { force: true });
    throw toUserError(err, path) ?? err;
  }
  fsyncPath(dirname(path));
}
