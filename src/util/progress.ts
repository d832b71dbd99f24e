import cliProgress from 'cli-progress';
import { env } from './env.ts';

/** A progress reporter for long work: a bar with rate and ETA on a terminal, a plain line every few seconds otherwise. */
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
  /** Where to write (default stderr); tests pass their own. */
  sink?: ProgressSink;
  /** Off a terminal: at most one progress line per this many ms (default 10 s). */
  intervalMs?: number;
}

const silent: Progress = { tick() {}, update() {}, stop() {} };

export interface ProgressSink {
  isTTY: boolean;
  write(text: string): void;
}

const stderrSink = (): ProgressSink => ({ isTTY: Boolean(process.stderr.isTTY), write: (t) => process.stderr.write(t) });

/**
 * Start a progress report on stderr. Respects RETFORMER_QUIET=1. On a terminal: a redrawn bar with
 * rate and ETA. Otherwise (logs, pipes, CI): one plain line every `intervalMs` while work goes on
 * and one summary line at the end, so that a log holds no redraw noise.
 */
export function startProgress(label: string, total: number, options: ProgressOptions = {}): Progress {
  if (options.quiet || env.quiet()) return silent;
  const sink = options.sink ?? stderrSink();
  const unit = options.unit ?? 'it';
  const started = performance.now();
  let done = 0;
  let fields: Record<string, string | number> = Object.fromEntries((options.fields ?? []).map((f) => [f, '-']));
  const seconds = () => (performance.now() - started) / 1000;
  const rate = () => (seconds() > 0 ? (done / seconds()).toFixed(1) : '0');
  const setFields = (f?: Record<string, string | number>) => {
    if (f) fields = { ...fields, ...f };
  };
  const fieldText = () => (options.fields ?? []).map((f) => ` ${f} ${fields[f]}`).join('');
  if (!sink.isTTY) {
    const interval = options.intervalMs ?? 10_000;
    let lastLine = performance.now();
    let stopped = false;
    const maybeLine = () => {
      if (done >= total || performance.now() - lastLine < interval) return; // the summary line follows
      lastLine = performance.now();
      const pct = total > 0 ? ` (${((100 * done) / total).toFixed(0)}%)` : '';
      sink.write(`${label}: ${done}/${total}${pct}, ${rate()} ${unit}/s${fieldText()}\n`);
    };
    return {
      tick(n = 1, f) {
        done += n;
        setFields(f);
        maybeLine();
      },
      update(d, f) {
        done = d;
        setFields(f);
        maybeLine();
      },
      stop() {
        if (stopped) return;
        stopped = true;
        sink.write(`${label}: ${done}/${total} done in ${seconds().toFixed(1)} s, ${rate()} ${unit}/s${fieldText()}\n`);
      },
    };
  }
  const extra = (options.fields ?? []).map((f) => ` ${f} {${f}}`).join('');
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% {value}/{total} | {rate} ${unit}/s | ETA {eta_formatted}${extra}`,
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { rate: '0', ...fields });
  return {
    tick(n = 1, f) {
      done += n;
      setFields(f);
      bar.update(done, { rate: rate(), ...fields });
    },
    update(d, f) {
      done = d;
      setFields(f);
      bar.update(done, { rate: rate(), ...fields });
    },
    stop() {
      bar.update(done, { rate: rate(), ...fields });
      bar.stop();
    },
  };
}
