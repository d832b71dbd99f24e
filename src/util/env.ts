/**
 * Every environment variable retformer reads, in one place (the README lists them):
 *   RETFORMER_CACHE          embedding cache folder (default ./.cache/retformer/embeddings)
 *   RETFORMER_QUIET=1        no progress output
 *   RETFORMER_ORT_DEVICE     cpu | cuda for the ONNX CLIP encoder (default cpu)
 *   RETFORMER_ORT_THREADS    ONNX Runtime intra-op threads for the ONNX CLIP encoder
 *   RETFORMER_TEST_CRASH_AT  test hook: kill -9 at a named stage of a KB write (src/kb/crash-point.ts)
 *   ORT_DISABLE_TELEMETRY    ONNX Runtime's own switch; retformer defaults it to 1 (src/util/ort.ts)
 * Values are read when asked for (tests set them per process), except where a caller says otherwise.
 */

const read = (name: string): string | undefined => {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
};

export const env = {
  cacheDir: () => read('RETFORMER_CACHE'),
  quiet: () => process.env.RETFORMER_QUIET === '1',
  ortDevice: () => read('RETFORMER_ORT_DEVICE'),
  ortThreads: () => read('RETFORMER_ORT_THREADS'),
  testCrashAt: () => read('RETFORMER_TEST_CRASH_AT'),
  /** Turn ONNX Runtime's usage telemetry off unless the user set the variable (read by ONNX Runtime itself). */
  defaultTelemetryOff(): void {
    process.env.ORT_DISABLE_TELEMETRY ??= '1';
  },
};
