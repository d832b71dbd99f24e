/**
 * Generate a tiny random-weight CLIP in the Hugging Face ONNX layout, for tests and demos:
 *   npm run fixture:tiny-clip -- OUT_DIR [--seed N] [--no-fp16]
 */
import { writeTinyClip } from './tiny-clip/index.ts';

function main(argv: string[]): void {
  const args = argv.slice(2);
  const out = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--seed');
  if (!out || args.includes('--help')) {
    process.stderr.write('usage: npm run fixture:tiny-clip -- OUT_DIR [--seed N] [--no-fp16]\n');
    process.exitCode = out ? 0 : 2;
    return;
  }
  const seedAt = args.indexOf('--seed');
  const seed = seedAt >= 0 ? Number(args[seedAt + 1]) : undefined;
  if (seed !== undefined && !Number.isInteger(seed)) {
    process.stderr.write(`make-tiny-clip: --seed must be an integer, got "${args[seedAt + 1]}"\n`);
    process.exitCode = 2;
    return;
  }
  const summary = writeTinyClip(out, { ...(seed === undefined ? {} : { seed }), fp16: !args.includes('--no-fp16') });
  process.stdout.write(`wrote tiny CLIP to ${summary.dir} (${summary.files.length} files, vocab ${summary.vocabSize}, ${summary.merges} merges)\n`);
}

main(process.argv);
