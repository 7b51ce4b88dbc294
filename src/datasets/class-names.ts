import { BadUserInputError, type FieldProblem } from '../errors';
import type { DatasetLimits } from './limits';
import { characterLength, listCapped, plural, quote } from './messages';

/**
 * Class names come from users (ZIP folder names, `classes[].name`, CSV labels) and end up as
 * labels in model metadata and possibly as folder names wherever a dataset is laid out on
 * disk. So a name must be unable to address anything but itself: no path separators, no `.`
 * or `..`, no NUL or control characters — checked on the NFKC form too, because fullwidth
 * `／` or `．．` become `/` and `..` under compatibility normalisation. Bidirectional
 * controls are refused as well: they make one name display as another.
 */
const FORBIDDEN = /[/\\\p{Cc}\p{Cs}\u202a-\u202e\u2066-\u2069]/u;

export type ClassNameCheck = { ok: true; name: string } | { ok: false; problem: string };

/** Trims, NFC-normalises and checks one name; `problem` completes "the class name … ". */
export function checkClassName(raw: string, maxLength: number): ClassNameCheck {
  const name = raw.normalize('NFC').trim();
  if (name.length === 0) return { ok: false, problem: 'is empty' };
  const length = characterLength(name);
  if (length > maxLength) {
    return { ok: false, problem: `is ${length} characters long; at most ${maxLength} are allowed` };
  }
  for (const form of [name, name.normalize('NFKC')]) {
    if (FORBIDDEN.test(form)) {
      return { ok: false, problem: 'contains a slash, a backslash or a control character' };
    }
    if (form === '.' || form === '..') return { ok: false, problem: 'cannot be "." or ".."' };
  }
  return { ok: true, name };
}

/**
 * Two names with the same key are the same class: case-insensitive (folders collide on
 * case-insensitive file systems, and users do not mean "Cat" and "cat" as two classes) and
 * after NFC, so the decomposed names macOS writes match the composed ones typed elsewhere.
 */
export function classKey(name: string): string {
  return name.normalize('NFC').toLowerCase().normalize('NFC');
}

/** Plain string order (UTF-16 code units): the same on every machine and locale, so label indices are stable. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Refuses a class count outside `minClasses..maxClasses`. `described` names the classes as the
 * user sent them ("class folder", "class", "label").
 */
export function checkClassCount(
  names: readonly string[],
  limits: DatasetLimits,
  field: string,
  described: string,
): void {
  const problems = classCountProblems(names, limits, field, described);
  if (problems.length > 0) throw BadUserInputError.of(problems);
}

/** `checkClassCount`'s problem, if any, to report with others. */
export function classCountProblems(
  names: readonly string[],
  limits: DatasetLimits,
  field: string,
  described: string,
): FieldProblem[] {
  const found = `${plural(names.length, described)}${names.length > 0 ? ` (${listCapped(names.map(quote))})` : ''}`;
  if (names.length < limits.minClasses) {
    return [{ field, message: `found ${found}; at least ${limits.minClasses} are needed` }];
  }
  if (names.length > limits.maxClasses) {
    return [{ field, message: `found ${found}; at most ${limits.maxClasses} are allowed` }];
  }
  return [];
}
