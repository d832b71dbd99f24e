import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { RetformerError } from '../../util/errors.ts';
import { floatToHalf, halfToFloat } from '../../util/half.ts';

/**
 * A small, checked reader and writer of NumPy `.npy` files holding one 2-d little-endian float
 * matrix [rows, cols] in C order: what clip-retrieval writes for embeddings ('<f2' or '<f4').
 * Format versions 1.0, 2.0 and 3.0 (they differ in the header length field and its encoding).
 * Anything else (other dtypes, big-endian, Fortran order, 1-d or 3-d shapes, a size that does not
 * match the header) is refused with a one-line `FILE: message` error. Rows are read by positional
 * reads of row blocks, so a 2 GB part is never held in memory.
 */
export type NpyDtype = 'f2' | 'f4';

export interface NpyHeader {
  path: string;
  /** Format version, e.g. [1, 0]. */
  version: [number, number];
  dtype: NpyDtype;
  rows: number;
  cols: number;
  /** Byte offset of row 0. */
  dataOffset: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ITEM_BYTES: Record<NpyDtype, number> = { f2: 2, f4: 4 };
const DESCR: Record<NpyDtype, string> = { f2: '<f2', f4: '<f4' };

const fail = (path: string, message: string) => new RetformerError(`${path}: ${message}`);

function preadFully(fd: number, buf: Uint8Array, position: number): number {
  let done = 0;
  while (done < buf.byteLength) {
    const n = readSync(fd, buf, done, buf.byteLength - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

// ---- the header: a Python dict literal, parsed by a tiny strict parser -----------------------

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

function parsePyLiteral(text: string): PyValue {
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const value = (): PyValue => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: Record<string, PyValue> = {};
      for (;;) {
        ws();
        if (text[i] === '}') {
          i++;
          return obj;
        }
        const key = value();
        if (typeof key !== 'string') throw new Error('dictionary key is not a string');
        ws();
        if (text[i++] !== ':') throw new Error(`expected ':' after '${key}'`);
        obj[key] = value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== '}') throw new Error(`expected ',' or '}' at offset ${i}`);
      }
    }
    if (c === '(' || c === '[') {
      const close = c === '(' ? ')' : ']';
      i++;
      const items: PyValue[] = [];
      for (;;) {
        ws();
        if (text[i] === close) {
          i++;
          return items;
        }
        items.push(value());
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== close) throw new Error(`expected ',' or '${close}' at offset ${i}`);
      }
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new Error('unterminated string');
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*|^-?\d+L?/.exec(text.slice(i))?.[0];
    if (word === undefined) throw new Error(`unexpected '${c ?? 'end of header'}' at offset ${i}`);
    i += word.length;
    if (word === 'True') return true;
    if (word === 'False') return false;
    if (word === 'None') return null;
    if (/^-?\d+L?$/.test(word)) return Number(word.replace('L', ''));
    throw new Error(`unexpected '${word}'`);
  };
  const v = value();
  ws();
  if (i !== text.length) throw new Error(`unexpected text after the dictionary at offset ${i}`);
  return v;
}

/** Read and check the header of a .npy file (and that its size matches the header). */
export function readNpyHeader(path: string): NpyHeader {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw fail(path, `cannot open (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return readHeaderFd(fd, path);
  } finally {
    closeSync(fd);
  }
}

function readHeaderFd(fd: number, path: string): NpyHeader {
  const size = fstatSync(fd).size;
  const pre = new Uint8Array(12);
  const got = preadFully(fd, pre, 0);
  if (got < 10 || MAGIC.some((b, i) => pre[i] !== b)) throw fail(path, 'not a .npy file (no \\x93NUMPY magic)');
  const major = pre[6];
  const minor = pre[7];
  if (major < 1 || major > 3 || minor !== 0) throw fail(path, `unsupported .npy format version ${major}.${minor} (1.0, 2.0 and 3.0 are read)`);
  const view = new DataView(pre.buffer);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const dataOffset = headerStart + headerLen;
  if (dataOffset > size) throw fail(path, `truncated header (${size} bytes, header needs ${dataOffset})`);
  const headerBytes = new Uint8Array(headerLen);
  preadFully(fd, headerBytes, headerStart);
  const header = Buffer.from(headerBytes).toString(major === 3 ? 'utf8' : 'latin1');
  if (!header.endsWith('\n')) throw fail(path, 'malformed header (does not end with a newline)');
  let dict: PyValue;
  try {
    dict = parsePyLiteral(header.trim());
  } catch (err) {
    throw fail(path, `malformed header: ${(err as Error).message}`);
  }
  if (dict === null || typeof dict !== 'object' || Array.isArray(dict)) throw fail(path, 'malformed header (not a dictionary)');
  const { descr, fortran_order: fortran, shape } = dict;
  if (typeof descr !== 'string') throw fail(path, `unsupported dtype ${JSON.stringify(descr)} (structured dtypes are not read; expected '<f2' float16 or '<f4' float32)`);
  let dtype: NpyDtype;
  if (descr === '<f2') dtype = 'f2';
  else if (descr === '<f4') dtype = 'f4';
  else if (descr === '>f2' || descr === '>f4') throw fail(path, `big-endian dtype '${descr}' is not read (save little-endian: '<${descr.slice(1)}')`);
  else throw fail(path, `unsupported dtype '${descr}' (expected '<f2' float16 or '<f4' float32)`);
  if (typeof fortran !== 'boolean') throw fail(path, 'malformed header (fortran_order missing or not True/False)');
  if (fortran) throw fail(path, 'Fortran-order (column-major) arrays are not read (save with np.ascontiguousarray)');
  if (!Array.isArray(shape) || shape.some((s) => typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0)) throw fail(path, 'malformed header (shape is not a tuple of sizes)');
  if (shape.length !== 2) throw fail(path, `expected a 2-d array [rows, dim], got shape (${shape.join(', ')}${shape.length === 1 ? ',' : ''})`);
  const [rows, cols] = shape as number[];
  if (cols === 0) throw fail(path, `dimension 0 in shape (${rows}, ${cols})`);
  const dataBytes = rows * cols * ITEM_BYTES[dtype];
  const have = size - dataOffset;
  if (have < dataBytes) throw fail(path, `truncated: ${have} bytes of data, shape (${rows}, ${cols}) ${descr} needs ${dataBytes}`);
  if (have > dataBytes) throw fail(path, `${have - dataBytes} unexpected bytes after the data of shape (${rows}, ${cols}) ${descr}`);
  return { path, version: [major, minor], dtype, rows, cols, dataOffset };
}

/** A .npy matrix opened for reading row ranges. */
export class NpyReader {
  private constructor(
    readonly header: NpyHeader,
    private readonly fd: number,
  ) {}

  static open(path: string): NpyReader {
    const header = readNpyHeader(path);
    return new NpyReader(header, openSync(path, 'r'));
  }

  get rows(): number {
    return this.header.rows;
  }
  get cols(): number {
    return this.header.cols;
  }

  /** Rows [start, start + count) as float32 (f16 widened exactly): [count, cols]. */
  readRows(start: number, count: number): Float32Array {
    const { rows, cols, dtype, dataOffset, path } = this.header;
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > rows) {
      throw fail(path, `rows ${start}..${start + count} out of range (0..${rows})`);
    }
    const item = ITEM_BYTES[dtype];
    const bytes = new Uint8Array(count * cols * item);
    const got = preadFully(this.fd, bytes, dataOffset + start * cols * item);
    if (got !== bytes.byteLength) throw fail(path, `file shrank while reading (rows ${start}..${start + count})`);
    if (dtype === 'f4') return new Float32Array(bytes.buffer, 0, count * cols);
    return halfToFloat(new Uint16Array(bytes.buffer, 0, count * cols));
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** The header bytes of a version 1.0 .npy file (padded to a multiple of 64 bytes, as NumPy does). */
export function npyHeaderBytes(dtype: NpyDtype, rows: number, cols: number): Uint8Array {
  const dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  const unpadded = 10 + dict.length + 1;
  const total = Math.ceil(unpadded / 64) * 64;
  const header = `${dict}${' '.repeat(total - unpadded)}\n`;
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  return out;
}

/**
 * Writes a [rows, cols] matrix into a new .npy file row block by row block. The shape is fixed up
 * front; `close()` refuses a file that got fewer or more rows than declared.
 */
export class NpyWriter {
  private written = 0;
  private position: number;
  private readonly fd: number;

  constructor(
    readonly path: string,
    readonly dtype: NpyDtype,
    readonly rows: number,
    readonly cols: number,
  ) {
    this.fd = openSync(path, 'w');
    const header = npyHeaderBytes(dtype, rows, cols);
    writeFully(this.fd, header, 0);
    this.position = header.byteLength;
  }

  /** Append whole rows: [n, cols] float32 (narrowed to f16 for an 'f2' file). */
  append(values: Float32Array): void {
    if (values.length % this.cols !== 0) throw fail(this.path, `append of ${values.length} values is not whole rows of ${this.cols}`);
    const n = values.length / this.cols;
    if (this.written + n > this.rows) throw fail(this.path, `more rows than the declared ${this.rows}`);
    const bytes = this.dtype === 'f4' ? new Uint8Array(values.buffer, values.byteOffset, values.byteLength) : new Uint8Array(floatToHalf(values).buffer);
    writeFully(this.fd, bytes, this.position);
    this.position += bytes.byteLength;
    this.written += n;
  }

  close(): void {
    closeSync(this.fd);
    if (this.written !== this.rows) throw fail(this.path, `${this.written} rows written, ${this.rows} declared`);
  }
}

function writeFully(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.byteLength) done += writeSync(fd, buf, done, buf.byteLength - done, position + done);
}
