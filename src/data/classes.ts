import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { RetformerError, inputError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';

/** True when every label is a plain (optionally negative) decimal integer. */
export function allIntegerLabels(labels: Iterable<string>): boolean {
  for (const label of labels) if (!/^-?\d+$/.test(label)) return false;
  return true;
}

/** The default class order when no class list is given: numeric when all labels are ints, otherwise alphabetical. */
export function sortClassNames(labels: Iterable<string>): string[] {
  const unique = [...new Set(labels)];
  if (allIntegerLabels(unique)) return unique.sort((a, b) => Number(a) - Number(b));
  return unique.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** C0 and C1 control characters (newline, tab, ...), DEL, and the Unicode line and paragraph separators. */
const CONTROL_CHARACTER = /[\p{Cc}\u2028\u2029]/u;

const CONTROL_NAMES: Readonly<Record<string, string>> = { '\n': 'newline', '\r': 'carriage return', '\t': 'tab' };

/** A label as it can be shown on one line: JSON-quoted, with every control character escaped. */
export function showLabel(label: string): string {
  return JSON.stringify(label).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Why a label cannot be a class name, or undefined when it can: a control character would break
 * the one-class-per-line files (a run's classes.txt, --classes lists) and one-line messages.
 */
export function labelProblem(label: string): string | undefined {
  const m = CONTROL_CHARACTER.exec(label);
  if (!m) return undefined;
  const c = m[0];
  const name = CONTROL_NAMES[c] ?? `U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
  return `${showLabel(label)} contains a control character (${name} at character ${m.index + 1}); class names must be printable text on one line`;
}

/** Refuse a label with a control character: one line naming the file and line (`what` says which column). */
export function checkLabel(file: string, line: number | undefined, label: string, what = 'label'): void {
  const problem = labelProblem(label);
  if (problem !== undefined) throw inputError(file, line, `${what} ${problem}`);
}

/** Read a class list: one class per line, blank lines skipped, surrounding spaces trimmed; duplicates are an error. */
export function readClassList(file: string): string[] {
  if (!existsSync(file)) throw new RetformerError(`${file}: class list not found`);
  if (statSync(file).isDirectory()) throw new RetformerError(`${file}: is a directory, expected a class list file`);
  const classes: string[] = [];
  const seen = new Map<string, number>();
  readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .forEach((raw, i) => {
      const name = raw.trim();
      if (name === '') return;
      checkLabel(file, i + 1, name, 'class');
      const first = seen.get(name);
      if (first !== undefined) throw inputError(file, i + 1, `duplicate class "${name}" (first on line ${first})`);
      seen.set(name, i + 1);
      classes.push(name);
    });
  if (classes.length === 0) throw inputError(file, undefined, 'empty class list');
  return classes;
}

/** Write a class list, one class per line, atomically (creates the folder). */
export function writeClassList(file: string, classes: readonly string[]): void {
  for (const name of classes) {
    if (/[\r\n]/.test(name) || name.trim() !== name || name === '') {
      throw new RetformerError(`${file}: class name ${JSON.stringify(name)} cannot be written to a class list`);
    }
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileAtomic(file, `${classes.join('\n')}\n`);
}

/** Resolve the `classes` option of the readers: an explicit list, a class-list file, or none. */
export function resolveClassOption(classes: string[] | string | undefined): { classes: string[]; file: string } | undefined {
  if (classes === undefined) return undefined;
  if (typeof classes === 'string') return { classes: readClassList(classes), file: classes };
  if (new Set(classes).size !== classes.length) throw new RetformerError('class list has duplicate names');
  if (classes.length === 0) throw new RetformerError('class list is empty');
  return { classes: [...classes], file: 'class list' };
}
