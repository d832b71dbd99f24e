/**
 * Child-process script for test/ort-telemetry.test.ts: creates and runs one ONNX Runtime session
 * of the model, as training and predict do, without loading any encoder.
 *   node --import tsx test/helpers/ort-sessions.ts
 */
import { ModelConfigSchema } from '../../src/model/config.ts';
import { ForwardGraph } from '../../src/model/onnx/session.ts';
import { initParams, paramSpecs } from '../../src/model/params.ts';

const config = ModelConfigSchema.parse({ k: 2, width: 8, heads: 2, layers: 1, hidden: 8 });
const dims = { inputDim: 4, classes: 3 };
const graph = new ForwardGraph(config, dims, initParams(paramSpecs(config, dims), 1));
await graph.run({ n: 1, query: new Float32Array(4), imageTokens: new Float32Array(3 * 4), neighbourTexts: new Float32Array(2 * 4) });
await graph.release();
