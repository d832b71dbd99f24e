/**
 * ONNX Runtime (onnxruntime-node) for the whole project, with its usage telemetry off unless the
 * user asks for it. ONNX Runtime 1.30's Linux build otherwise records a device id and an event
 * database under `~/.cache/Microsoft/DeveloperTools/.onnxruntime/` (growing with every session)
 * and leaves an empty `/tmp/mat-debug-<pid>.log` per process (both seen here). The switch is read
 * when the first session is created, so every ONNX Runtime user in this project imports `ort`
 * from here. `ORT_DISABLE_TELEMETRY=0` in the environment keeps ONNX Runtime's default for the
 * model's sessions; transformers.js (the ONNX CLIP encoder) sets the variable to 1 itself whenever
 * it is loaded.
 */
import { env } from './env.ts';

export * as ort from 'onnxruntime-node';

env.defaultTelemetryOff();
