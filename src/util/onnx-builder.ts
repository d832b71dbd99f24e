import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** ONNX element types used here (TensorProto.DataType). */
export const ElemType = { FLOAT: 1, INT64: 7, FLOAT16: 10 } as const;

/** How float weights are stored: fp32 as is, or fp16 with a Cast back to fp32 (the `_fp16` export style with float32 inputs/outputs). */
export type WeightPrecision = 'fp32' | 'fp16';

type AttrValue = number | number[] | { float: number };

export interface ValueSpec {
  name: string;
  elemType: number;
  /** A number is a fixed size, a string a named dynamic dimension. */
  dims: (number | string)[];
}

/** Round a float32 to IEEE half precision (round to nearest even) and return its bit pattern. */
export function float32ToFloat16Bits(value: number): number {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** Decode a half-precision bit pattern to a number. */
export function float16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * A small imperative ONNX graph builder over the `onnx-proto` messages: add initializers and nodes,
 * get back output names, then `toBytes()` the ModelProto.
 */
export class OnnxGraphBuilder {
  private readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  private readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  private counter = 0;

  constructor(readonly precision: WeightPrecision = 'fp32') {}

  /** A fresh intermediate value name. */
  fresh(hint: string): string {
    this.counter += 1;
    return `${hint}_${this.counter}`;
  }

  /** A float weight; stored as fp16 + Cast when the builder's precision is fp16. Returns the fp32 value name. */
  weight(name: string, data: Float32Array, dims: number[]): string {
    if (this.precision === 'fp32') {
      this.initializers.push(floatTensor(name, data, dims));
      return name;
    }
    const raw = new Uint16Array(data.length);
    for (let i = 0; i < data.length; i++) raw[i] = float32ToFloat16Bits(data[i]);
    const stored = `${name}_fp16`;
    this.initializers.push(
      onnx.TensorProto.create({ name: stored, dataType: ElemType.FLOAT16, dims, rawData: new Uint8Array(raw.buffer) }),
    );
    this.node('Cast', [stored], { to: ElemType.FLOAT }, name);
    return name;
  }

  /** A float constant that always stays fp32 (scales, masks). */
  floatConst(name: string, data: Float32Array, dims: number[]): string {
    this.initializers.push(floatTensor(name, data, dims));
    return name;
  }

  /** An int64 constant (shapes, axes, indices). */
  int64Const(name: string, values: number[], dims: number[] = [values.length]): string {
    const raw = new BigInt64Array(values.map((v) => BigInt(v)));
    this.initializers.push(onnx.TensorProto.create({ name, dataType: ElemType.INT64, dims, rawData: new Uint8Array(raw.buffer) }));
    return name;
  }

  /** Add a node; returns its (first) output name. */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, output?: string): string {
    return this.nodeOutputs(opType, inputs, attrs, [output ?? this.fresh(opType.toLowerCase())])[0];
  }

  /** Add a node with several outputs (given names); returns them. */
  nodeOutputs(opType: string, inputs: string[], attrs: Record<string, AttrValue>, outputs: string[]): string[] {
    const attribute = Object.entries(attrs).map(([name, v]) => {
      if (Array.isArray(v)) return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v });
      if (typeof v === 'object') return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v.float });
      return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i: v });
    });
    this.nodes.push(onnx.NodeProto.create({ opType, input: inputs, output: outputs, name: this.fresh(`${opType}_node`), attribute }));
    return outputs;
  }

  /** Serialise as a ModelProto (IR 8, default opset 17). */
  toBytes(graphName: string, inputs: ValueSpec[], outputs: ValueSpec[], producerName = 'retformer', metadata: Record<string, string> = {}): Uint8Array {
    const valueInfo = (v: ValueSpec) =>
      onnx.ValueInfoProto.create({
        name: v.name,
        type: {
          tensorType: {
            elemType: v.elemType,
            shape: { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
          },
        },
      });
    const graph = onnx.GraphProto.create({
      name: graphName,
      node: this.nodes,
      initializer: this.initializers,
      input: inputs.map(valueInfo),
      output: outputs.map(valueInfo),
    });
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName,
      producerVersion: '1',
      opsetImport: [{ domain: '', version: 17 }],
      metadataProps: Object.entries(metadata).map(([key, value]) => onnx.StringStringEntryProto.create({ key, value })),
      graph,
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function floatTensor(name: string, data: Float32Array, dims: number[]) {
  const copy = new Float32Array(data); // own buffer, exact byte range
  return onnx.TensorProto.create({ name, dataType: ElemType.FLOAT, dims, rawData: new Uint8Array(copy.buffer) });
}

/** Read every initializer of an ONNX file back as float32 arrays (fp16 ones decoded), keyed by name. */
export function readOnnxInitializers(bytes: Uint8Array): Map<string, { dims: number[]; data: Float32Array }> {
  const model = onnx.ModelProto.decode(bytes);
  const out = new Map<string, { dims: number[]; data: Float32Array }>();
  for (const t of model.graph?.initializer ?? []) {
    const dims = (t.dims ?? []).map((d) => Number(d));
    const raw = t.rawData ?? new Uint8Array();
    const aligned = new Uint8Array(raw); // copy to an aligned buffer
    if (t.dataType === ElemType.FLOAT) out.set(t.name ?? '', { dims, data: new Float32Array(aligned.buffer) });
    else if (t.dataType === ElemType.FLOAT16) {
      const half = new Uint16Array(aligned.buffer);
      const data = new Float32Array(half.length);
      for (let i = 0; i < half.length; i++) data[i] = float16BitsToNumber(half[i]);
      out.set(t.name ?? '', { dims, data });
    }
  }
  return out;
}
