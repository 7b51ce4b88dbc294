import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { BadUserInputError } from '../errors';
import { checkClassCount, checkClassName, classKey, compareNames } from './class-names';
import { CsvRecordReader, CsvRecordTooLongError, CsvSyntaxError } from './csv-records';
import type { DatasetLimits } from './limits';
import { characterLength, formatBytes, formatCount, listCapped, plural, quote } from './messages';
import { receiveUpload, saveUpload, type UploadInput, uploadName } from './uploads';

/**
 * A validated text dataset. `input` is the cell exactly as written: cells starting with `=`,
 * `+`, `-` or `@` are kept as plain text, because the platform never writes a CSV back out
 * (the formula-injection risk is in spreadsheets opening such a file, not in reading one).
 */
export interface TextDataset {
  kind: 'text';
  /** Distinct labels, sorted (label order). */
  classes: string[];
  rows: { input: string; label: string }[];
}

export interface TextIngestOptions {
  /** An existing private folder for this submission; the caller removes it afterwards. */
  stagingDir: string;
  limits: DatasetLimits;
}

const FIELD = 'dataset';
const HEADER = 'its first row must name the columns "input" and "label"';
const NUMBER = /^[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:e[+-]?\d+)?$/i;

interface Columns {
  input: number;
  label: number;
}

/** A label as first seen: its spelling, its row, and how many rows carry it. */
interface LabelSeen {
  label: string;
  row: number;
  count: number;
}

/**
 * Ingests a CSV of `input,label` rows: UTF-8 (a BOM is fine), comma-separated, CRLF, LF or CR line
 * ends, RFC 4180 quoting (commas and line breaks inside quotes). The header is matched
 * ignoring case and order; other columns are ignored. Rows whose input or label is blank are
 * dropped, as the original platform did. Row numbers in messages count the header as row 1,
 * as a spreadsheet shows them.
 */
export async function ingestTextCsv(
  upload: UploadInput,
  { stagingDir, limits }: TextIngestOptions,
): Promise<TextDataset> {
  const file = await receiveUpload(upload, FIELD);
  const name = uploadName(file);
  const maxBytes = Math.min(limits.maxUploadBytes, limits.maxCsvBytes);
  const csvPath = join(await mkdtemp(join(stagingDir, 'csv-')), 'dataset.csv');
  await saveUpload(file, csvPath, {
    field: FIELD,
    maxBytes,
    tooLarge: () =>
      new BadUserInputError(
        `${FIELD}: ${quote(name)} is larger than the ${formatBytes(maxBytes)} allowed for a CSV`,
        FIELD,
      ),
  });
  await checkUtf8(csvPath, name);

  const rows: { input: string; label: string }[] = [];
  const labels = new Map<string, LabelSeen>(); // by class key
  let columns: Columns | undefined;
  let dataRows = 0;
  let rowNumber = 0;
  const take = (record: readonly string[]) => {
    rowNumber++;
    if (record.every((cell) => cell.trim() === '')) return;
    if (!columns) {
      columns = findColumns(record, name);
      return;
    }
    dataRows++;
    const input = record[columns.input] ?? '';
    const rawLabel = record[columns.label] ?? '';
    if (input.trim() === '' || rawLabel.trim() === '') return;
    if (rows.length === limits.maxCsvRows) {
      throw new BadUserInputError(`${FIELD}: the CSV has more than ${formatCount(limits.maxCsvRows)} rows`, FIELD);
    }
    if (input.length > limits.maxTextLength && characterLength(input) > limits.maxTextLength) {
      throw new BadUserInputError(
        `${FIELD}: row ${rowNumber}: the input is ${formatCount(characterLength(input))} characters long; ` +
          `at most ${formatCount(limits.maxTextLength)} are allowed`,
        FIELD,
      );
    }
    const label = checkLabel(rawLabel, rowNumber, labels, limits);
    rows.push({ input, label });
  };
  // Short and blank rows (a short row lacks an input or a label) are dropped like empty ones.
  // Each chunk of the file is parsed synchronously (papaparse takes a few tens of milliseconds
  // for 64 KiB of blank lines); the stream's reads between chunks let the event loop serve other
  // requests. A refusal thrown by `take` leaves the loop at once, and `finally` closes the file.
  const reader = new CsvRecordReader({ onRecord: take, maxRecordLength: maxRowLength(limits) });
  const source = createReadStream(csvPath, { encoding: 'utf8' });
  try {
    for await (const chunk of source as AsyncIterable<string>) reader.push(chunk);
    reader.end();
  } catch (error) {
    if (error instanceof CsvSyntaxError) {
      throw new BadUserInputError(`${FIELD}: ${quote(name)} is not a well-formed CSV: ${error.message}`, FIELD);
    }
    if (error instanceof CsvRecordTooLongError) {
      throw new BadUserInputError(
        `${FIELD}: row ${error.row} of ${quote(name)} is longer than ${formatCount(error.limit)} characters, ` +
          'far more than an input and a label need; is a quote left open?',
        FIELD,
      );
    }
    throw error;
  } finally {
    source.destroy();
  }

  if (!columns) throw new BadUserInputError(`${FIELD}: ${quote(name)} has no header row; ${HEADER}`, FIELD);
  if (dataRows === 0) throw new BadUserInputError(`${FIELD}: ${quote(name)} has a header row but no data rows`, FIELD);
  if (rows.length === 0) {
    throw new BadUserInputError(`${FIELD}: ${quote(name)} has no row with both an input and a label`, FIELD);
  }
  if (rows.every((row) => NUMBER.test(row.input.trim()))) {
    throw new BadUserInputError(`${FIELD}: the input column holds only numbers; text classification needs text`, FIELD);
  }
  const classes = [...labels.values()];
  checkClassCount(classes.map((c) => c.label), limits, FIELD, 'label');
  const scarce = classes.filter((c) => c.count < limits.minRowsPerClass);
  if (scarce.length > 0) {
    const described = scarce.map((c) => `${quote(c.label)} (${plural(c.count, 'row')})`);
    throw new BadUserInputError(
      `${FIELD}: too few rows for ${scarce.length === 1 ? 'label' : 'labels'} ${listCapped(described)}; ` +
        `each label needs at least ${formatCount(limits.minRowsPerClass)} so that training and validation both see it`,
      FIELD,
    );
  }
  return { kind: 'text', classes: classes.map((c) => c.label).sort(compareNames), rows };
}

/**
 * The longest row read, in characters. An input and a label take at most twice their length
 * each (a character beyond the BMP is two, a quote written as `""` is two); 64 Ki leaves room for
 * other columns. See `maxRecordLength` for why rows are limited at all.
 */
function maxRowLength(limits: DatasetLimits): number {
  return Math.max(64 * 1024, 2 * (limits.maxTextLength + limits.maxLabelLength) + 1024);
}

async function checkUtf8(path: string, name: string): Promise<void> {
  const bytes = await readFile(path);
  if (isUtf8(bytes)) return;
  // Find the first bad line; a line feed byte never occurs inside a UTF-8 sequence.
  let line = 1;
  let start = 0;
  for (;;) {
    const end = bytes.indexOf(0x0a, start);
    if (end === -1 || !isUtf8(bytes.subarray(start, end))) break;
    line++;
    start = end + 1;
  }
  throw new BadUserInputError(
    `${FIELD}: ${quote(name)} is not UTF-8 text (line ${line} holds bytes that are not UTF-8); save it as "CSV UTF-8"`,
    FIELD,
  );
}

function findColumns(header: readonly string[], name: string): Columns {
  const names = header.map((cell) => cell.trim().toLowerCase());
  const find = (column: string) => {
    const index = names.indexOf(column);
    if (index !== -1 && names.indexOf(column, index + 1) !== -1) {
      throw new BadUserInputError(`${FIELD}: the header of ${quote(name)} names the column "${column}" twice`, FIELD);
    }
    return index;
  };
  const columns = { input: find('input'), label: find('label') };
  const missing = (['input', 'label'] as const).filter((column) => columns[column] === -1);
  if (missing.length > 0) {
    const separator = header.length === 1 && /[;\t|]/.test(header[0]!) ? '; columns must be separated by commas' : '';
    throw new BadUserInputError(
      `${FIELD}: ${quote(name)} has no ${missing.map((column) => `"${column}"`).join(' or ')} column: ` +
        `${HEADER}, found ${listCapped(header.map(quote))}${separator}`,
      FIELD,
    );
  }
  return columns;
}

/** The checked label; counts it, and refuses one spelled differently from an earlier one. */
function checkLabel(
  raw: string,
  row: number,
  labels: Map<string, LabelSeen>,
  limits: DatasetLimits,
): string {
  const check = checkClassName(raw, limits.maxLabelLength);
  if (!check.ok) throw new BadUserInputError(`${FIELD}: row ${row}: the label ${quote(raw)} ${check.problem}`, FIELD);
  const key = classKey(check.name);
  const known = labels.get(key);
  if (!known) {
    labels.set(key, { label: check.name, row, count: 1 });
  } else if (known.label !== check.name) {
    throw new BadUserInputError(
      `${FIELD}: row ${row}: the label ${quote(check.name)} names the same class as ${quote(known.label)} ` +
        `(row ${known.row}); labels are compared ignoring case, so use one spelling`,
      FIELD,
    );
  } else {
    known.count++;
  }
  return check.name;
}
