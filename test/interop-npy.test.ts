import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { floatToHalf, floatToHalfBits, halfToFloat, halfValue } from '../src/util/half.ts';
import { NpyReader, NpyWriter, npyHeaderBytes, readNpyHeader } from '../src/kb/interop/npy.ts';
import { RetformerError } from '../src/util/errors.ts';
import { Rng } from '../src/util/rng.ts';
import { removeTempDirs, tempDir } from './helpers/kb-fixtures.ts';

after(removeTempDirs);

/** A .npy file with a hand-written header dict (any version), followed by `data`. */
function rawNpy(path: string, dict: string, data: Uint8Array, version = 1): string {
  const pre = version === 1 ? 10 : 12;
  const unpadded = pre + dict.length + 1;
  const total = Math.ceil(unpadded / 64) * 64;
  const header = `${dict}${' '.repeat(total - unpadded)}\n`;
  const bytes = Buffer.alloc(total + data.byteLength);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0], 0);
  if (version === 1) bytes.writeUInt16LE(header.length, 8);
  else bytes.writeUInt32LE(header.length, 8);
  bytes.write(header, pre, version === 3 ? 'utf8' : 'latin1');
  bytes.set(data, total);
  writeFileSync(path, bytes);
  return path;
}

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const m = new Float32Array(rows * cols);
  for (let i = 0; i < m.length; i++) m[i] = rng.next() * 2 - 1;
  return m;
}

function expectNpyError(path: string, pattern: RegExp): void {
  assert.throws(
    () => readNpyHeader(path),
    (err: Error) => {
      assert.ok(err instanceof RetformerError, `a user error, got ${err.stack}`);
      assert.ok(err.message.startsWith(`${path}: `), `names the file: ${err.message}`);
      assert.ok(!err.message.includes('\n'), 'one line');
      assert.match(err.message, pattern);
      return true;
    },
  );
}

test('f16: every finite half survives f16 -> f32 -> f16; known values and rounding', () => {
  const all = new Uint16Array(65536);
  for (let h = 0; h < 65536; h++) all[h] = h;
  const back = floatToHalf(halfToFloat(all));
  for (let h = 0; h < 65536; h++) {
    const halfNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (halfNaN) assert.ok(Number.isNaN(halfToFloat(new Uint16Array([back[h]]))[0]), `NaN ${h} stays NaN`);
    else assert.equal(back[h], h, `half bits ${h}`);
  }
  assert.deepEqual([...halfToFloat(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00]))], [1, -2, 65504, 2 ** -24, Number.POSITIVE_INFINITY]);
  assert.equal(floatToHalfBits(1 + 2 ** -11), 0x3c00, 'tie rounds to even (down)');
  assert.equal(floatToHalfBits(1 + 3 * 2 ** -11), 0x3c02, 'tie rounds to even (up)');
  assert.equal(floatToHalfBits(70000), 0x7c00, 'overflow is infinity');
  assert.equal(floatToHalfBits(2 ** -26), 0, 'below half the smallest subnormal is zero');
  assert.equal(floatToHalfBits(3 * 2 ** -26), 0x0001, 'above half rounds up to the smallest subnormal');
  // nearest: against a brute-force search over the table for random values
  const rng = new Rng(3);
  const table = halfToFloat(all);
  for (let t = 0; t < 2000; t++) {
    const v = Math.fround((rng.next() * 2 - 1) * 2 ** Math.floor(rng.next() * 30 - 20));
    const h = floatToHalfBits(v);
    const err = Math.abs(table[h] - v);
    for (const other of [h - 1, h + 1]) if (other >= 0 && other < 65536 && Number.isFinite(table[other])) assert.ok(Math.abs(table[other] - v) >= err, `${v}: ${h} is nearest`);
  }
});

test('f16 -> f32: every one of the 65,536 halves widens to its defined value (signed zeros, subnormals, infinities, NaN), also into a subarray', () => {
  const all = new Uint16Array(65536);
  for (let h = 0; h < 65536; h++) all[h] = h;
  const backing = new Float32Array(65536 + 3).fill(7);
  const out = halfToFloat(all, backing.subarray(2, 2 + 65536));
  for (let h = 0; h < 65536; h++) {
    const want = halfValue(h);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(out[h]), `half bits ${h} is NaN`);
    else assert.ok(Object.is(out[h], want), `half bits ${h}: ${out[h]} != ${want}`);
  }
  assert.deepEqual([backing[0], backing[1], backing[65538]], [7, 7, 7], 'writes only its subarray');
  assert.ok(Object.is(out[0x8000], -0), 'negative zero keeps its sign');
  assert.equal(out[0x3555], 1365 / 4096, 'a normal half: (1 + 341/1024) * 2^-2');
});

test('writer then reader: f4 and f2 matrices, row ranges, header as NumPy writes it', () => {
  const dir = tempDir('retformer-npy-');
  const m = randomMatrix(37, 12, 1);
  for (const dtype of ['f4', 'f2'] as const) {
    const path = join(dir, `m-${dtype}.npy`);
    const w = new NpyWriter(path, dtype, 37, 12);
    w.append(m.subarray(0, 10 * 12));
    w.append(m.subarray(10 * 12));
    w.close();
    const h = readNpyHeader(path);
    assert.deepEqual([h.rows, h.cols, h.dtype, h.version], [37, 12, dtype, [1, 0]]);
    assert.equal(h.dataOffset % 64, 0, 'data aligned to 64 bytes');
    assert.match(readFileSync(path).subarray(10, h.dataOffset).toString('latin1'), /^\{'descr': '<f[24]', 'fortran_order': False, 'shape': \(37, 12\), \} *\n$/);
    const r = NpyReader.open(path);
    const want = dtype === 'f4' ? m : halfToFloat(floatToHalf(m));
    assert.deepEqual(r.readRows(0, 37), want);
    assert.deepEqual(r.readRows(5, 3), want.subarray(5 * 12, 8 * 12));
    assert.equal(r.readRows(37, 0).length, 0);
    assert.throws(() => r.readRows(30, 8), /m-f[24]\.npy: rows 30\.\.38 out of range \(0\.\.37\)/);
    r.close();
  }
  const short = new NpyWriter(join(dir, 'short.npy'), 'f4', 3, 2);
  short.append(new Float32Array(4));
  assert.throws(() => short.close(), /short\.npy: 2 rows written, 3 declared/);
});

test('format versions 1.0, 2.0 and 3.0 and header spellings NumPy produces', () => {
  const dir = tempDir('retformer-npy-');
  const m = randomMatrix(4, 3, 2);
  const data = new Uint8Array(m.buffer);
  for (const version of [1, 2, 3]) {
    const path = rawNpy(join(dir, `v${version}.npy`), "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", data, version);
    const r = NpyReader.open(path);
    assert.deepEqual([r.header.version[0], r.rows, r.cols], [version, 4, 3]);
    assert.deepEqual(r.readRows(0, 4), m);
    r.close();
  }
  // double quotes, no trailing comma, other key order, Python 2 long suffix
  const path = rawNpy(join(dir, 'spelling.npy'), '{"shape": (4L, 3L), "fortran_order": False, "descr": "<f4"}', data);
  assert.deepEqual(NpyReader.open(path).readRows(1, 1), m.subarray(3, 6));
  // f16 data written by hand: [[1, -2], [0.5, 65504]]
  const half = new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff]);
  const hp = rawNpy(join(dir, 'half.npy'), "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }", new Uint8Array(half.buffer));
  assert.deepEqual([...NpyReader.open(hp).readRows(0, 2)], [1, -2, 0.5, 65504]);
  assert.equal(npyHeaderBytes('f2', 2, 2).byteLength, 128, 'header padded to 64-byte multiples');
});

test('malformed and unsupported files: one-line FILE: message errors', () => {
  const dir = tempDir('retformer-npy-');
  const f4 = (rows: number, cols: number) => new Uint8Array(rows * cols * 4);
  const p = (name: string) => join(dir, name);
  writeFileSync(p('text.npy'), 'hello, this is not numpy at all');
  expectNpyError(p('text.npy'), /not a \.npy file/);
  writeFileSync(p('tiny.npy'), Buffer.from([0x93, 0x4e]));
  expectNpyError(p('tiny.npy'), /not a \.npy file/);
  const v9 = Buffer.from(readFileSync(rawNpy(p('ok.npy'), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", f4(2, 2))));
  v9[6] = 9;
  writeFileSync(p('v9.npy'), v9);
  expectNpyError(p('v9.npy'), /unsupported \.npy format version 9\.0/);
  expectNpyError(rawNpy(p('f8.npy'), "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", new Uint8Array(32)), /unsupported dtype '<f8' \(expected '<f2' float16 or '<f4' float32\)/);
  expectNpyError(rawNpy(p('i8.npy'), "{'descr': '|i1', 'fortran_order': False, 'shape': (2, 2), }", new Uint8Array(4)), /unsupported dtype '\|i1'/);
  expectNpyError(rawNpy(p('be.npy'), "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", f4(2, 2)), /big-endian dtype '>f4'/);
  expectNpyError(rawNpy(p('fortran.npy'), "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", f4(2, 2)), /Fortran-order/);
  expectNpyError(rawNpy(p('1d.npy'), "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", f4(4, 1)), /expected a 2-d array \[rows, dim\], got shape \(4,\)/);
  expectNpyError(rawNpy(p('3d.npy'), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", f4(4, 2)), /got shape \(2, 2, 2\)/);
  expectNpyError(rawNpy(p('struct.npy'), "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 2), }", f4(2, 2)), /structured dtypes are not read/);
  expectNpyError(rawNpy(p('trunc.npy'), "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f4(2, 2)), /truncated: 16 bytes of data, shape \(3, 2\) <f4 needs 24/);
  expectNpyError(rawNpy(p('extra.npy'), "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }", f4(2, 2)), /8 unexpected bytes after the data/);
  expectNpyError(rawNpy(p('garbage.npy'), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), ", f4(2, 2)), /malformed header/);
  expectNpyError(rawNpy(p('noshape.npy'), "{'descr': '<f4', 'fortran_order': False}", f4(2, 2)), /malformed header \(shape is not a tuple of sizes\)/);
  expectNpyError(rawNpy(p('nofortran.npy'), "{'descr': '<f4', 'shape': (2, 2)}", f4(2, 2)), /fortran_order missing/);
  expectNpyError(rawNpy(p('zero-dim.npy'), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 0), }", new Uint8Array(0)), /dimension 0/);
  const noNewline = Buffer.from(readFileSync(p('ok.npy')));
  noNewline[noNewline.readUInt16LE(8) + 9] = 0x20;
  writeFileSync(p('nonl.npy'), noNewline);
  expectNpyError(p('nonl.npy'), /does not end with a newline/);
  const longHeader = Buffer.from(readFileSync(p('ok.npy')).subarray(0, 20));
  longHeader.writeUInt16LE(5000, 8);
  writeFileSync(p('cut.npy'), longHeader);
  expectNpyError(p('cut.npy'), /truncated header/);
  expectNpyError(p('absent.npy'), /cannot open \(ENOENT\)/);
});
