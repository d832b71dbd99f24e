import cliProgress from 'cli-progress';

/** A progress reporter for long work: a bar with rate and ETA on a terminal, a line every few seconds otherwise. */
export interface Progress {
  /** Advance by n units (default 1), optionally updating the extra fields shown (loss, etc.). */
  tick(n?: number, fields?: Record<string, string | number>): void;
  /** Set an absolute position. */
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

export interface ProgressOptions {
  /** Unit name shown with the rate, e.g. "img" -> "123 img/s". */
  unit?: string;
  /** Silence everything (tests, --quiet, --json). */
  quiet?: boolean;
  /** Extra field names rendered after the bar, e.g. ['loss']. */
  fields?: string[];
}

const silent: Progress = { tick() {}, update() {}, stop() {} };

/** Start a progress bar on stderr. Respects RETFORMER_QUIET=1. */
export function startProgress(label: string, total: number, options: ProgressOptions = {}): Progress {
  if (options.quiet || process.env.RETFORMER_QUIET === '1') return silent;
  const unit = options.unit ?? 'it';
  const extra = (options.fields ?? []).map((f) => ` ${f} {${f}}`).join('');
  const isTTY = Boolean(process.stderr.isTTY);
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% {value}/{total} | {rate} ${unit}/s | ETA {eta_formatted}${extra}`,
      stream: process.stderr,
      noTTYOutput: !isTTY,
      notTTYSchedule: 5000,
      hideCursor: isTTY,
      etaBuffer: 50,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  let done = 0;
  let fields: Record<string, string | number> = Object.fromEntries((options.fields ?? []).map((f) => [f, '-']));
  const rate = () => {
    const s = (performance.now() - started) / 1000;
    return s > 0 ? (done / s).toFixed(1) : '0';
  };
  bar.start(total, 0, { rate: '0', ...fields });
  return {
    tick(n = 1, f) {
      done += n;
      if (f) fields = { ...fields, ...f };
      bar.update(done, { rate: rate(), ...fields });
    },
    update(d, f) {
      done = d;
      if (f) fields = { ...fields, ...f };
      bar.update(done, { rate: rate(), ...fields });
    },
    stop() {
      bar.update(done, { rate: rate(), ...fields });
      bar.stop();
    },
  };
}
