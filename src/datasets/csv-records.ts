import { type ParseError, Parser, type ParseStepResult } from 'papaparse';

/**
 * A CSV that cannot be taken apart into records: a quote that is never closed, or text after a
 * closing quote (`"a"b`). Its message names the row, counting the first record as row 1.
 */
export class CsvSyntaxError extends Error {
  override readonly name = 'CsvSyntaxError';
}

/** A record longer than the reader takes (see `maxRecordLength`). */
export class CsvRecordTooLongError extends Error {
  override readonly name = 'CsvRecordTooLongError';

  constructor(
    /** The record's row, counting the first record as row 1. */
    readonly row: number,
    readonly limit: number,
  ) {
    super(`row ${row} is longer than ${limit} characters`);
  }
}

export interface CsvRecordReaderOptions {
  /** Called with each record, in order; what it throws stops the reading. */
  onRecord: (record: readonly string[]) => void;
  /**
   * The longest record taken, in characters of the text (quotes included). Why a limit:
   * papaparse reads an unfinished record again from its start with every chunk (its own
   * streamers do the same), so a record that never ends, such as an unclosed quote before
   * megabytes of text, costs time growing with the square of its length: 2 MiB of `""` took
   * 3 s, 20 MiB would take minutes. Refused at this length, each character is read at most a
   * few times.
   */
  maxRecordLength: number;
}

const BOM = 0xfeff;
/** A CR not followed by a LF: an old Mac line end, read as a LF. One ending a chunk waits for the next. */
const LONE_CR = /\r(?=[^\n])/g;

/**
 * Splits CSV text into records of cells with papaparse, fed in chunks of any size:
 * comma-separated, RFC 4180 quoting (`"a, b"`, `""` for a quote, line breaks inside quotes), a
 * leading BOM dropped. CRLF, LF and lone CR all end a record, mixed as they come, as Python's csv
 * module reads them; a CRLF or LF inside quotes stays in the cell as written (a lone CR there
 * becomes a LF). A quote inside an unquoted cell is text (`he said "hi"`), as in a spreadsheet;
 * text after a closing quote (`"a"b`) is refused, blanks there are dropped. Rows keep the cells
 * they have; comparing them with the header is the caller's business.
 *
 * Why papaparse's core `Parser` (which its own entry points wrap; its source calls it exposed
 * for testing, but it is exported and typed) fed chunk by chunk, and not `Papa.parse`: on a
 * stream, papaparse either drops parse errors (`NODE_STREAM_INPUT`) or reports through callbacks
 * that cannot say how long the unfinished record has grown, which the limit above needs; on a
 * string, it strips a leading U+FEFF, so a chunk starting with one would read differently.
 * Carrying the unfinished record over to the next chunk is what its streamers do too
 * (`ignoreLastRow`, then the text from `meta.cursor` on).
 */
export class CsvRecordReader {
  private readonly onRecord: (record: readonly string[]) => void;
  private readonly maxRecordLength: number;
  /** The text of the unfinished last record, read again with the next chunk. */
  private rest = '';
  private started = false;
  /** Records read so far. */
  private row = 0;

  constructor({ onRecord, maxRecordLength }: CsvRecordReaderOptions) {
    this.onRecord = onRecord;
    this.maxRecordLength = maxRecordLength;
  }

  /** Hands on the records that this chunk completes. */
  push(chunk: string): void {
    if (chunk.length === 0) return;
    if (!this.started) {
      this.started = true;
      if (chunk.charCodeAt(0) === BOM) chunk = chunk.slice(1);
    }
    const text = (this.rest + chunk).replace(LONE_CR, '\n');
    const { cursor, errors } = this.parse(text, true);
    this.rest = text.slice(cursor);
    if (this.rest.length > this.maxRecordLength) {
      // An unfinished record past the limit: whatever follows cannot bring it under.
      throw misplacedQuote(errors, this.row + 1) ?? new CsvRecordTooLongError(this.row + 1, this.maxRecordLength);
    }
  }

  /** Hands on the last record, when the text does not end with a line break. */
  end(): void {
    if (this.rest === '') return;
    // With a line end after it, the last record reads like any other: at the very end of its
    // text, papaparse takes blanks or a CR after a closing quote for text after it.
    const text = `${this.rest}\n`;
    this.rest = '';
    const { cursor, errors } = this.parse(text, true);
    if (cursor < text.length) {
      // Only a quote still open leaves a record unfinished before a line end.
      throw (
        misplacedQuote(errors, this.row + 1) ??
        new CsvSyntaxError(`Quote Not Closed: the quote opened in row ${this.row + 1} is never closed`)
      );
    }
  }

  /**
   * Hands on the records of `text`; when `more` text follows, its last record may go on there and
   * is left out. Answers where that record starts, and the problems seen in it.
   */
  private parse(text: string, more: boolean): { cursor: number; errors: ParseError[] } {
    let start = 0;
    let failure: { error: unknown } | undefined;
    const parser: Parser = new Parser({
      delimiter: ',',
      newline: '\n',
      quoteChar: '"',
      step: ({ data, errors, meta }: ParseStepResult<string[][]>) => {
        try {
          this.take(data[0]!, errors, meta.cursor - start);
          start = meta.cursor;
        } catch (error) {
          failure = { error };
          parser.abort();
        }
      },
    });
    // Parser.parse is typed `any`; its result has the shape of a ParseResult.
    const result: { errors: ParseError[]; meta: { cursor: number } } = parser.parse(text, 0, more);
    if (failure) throw failure.error;
    return { cursor: result.meta.cursor, errors: result.errors };
  }

  /** Checks a record of `length` characters (its line end included), and hands it on. */
  private take(cells: string[], errors: ParseError[], length: number): void {
    this.row++;
    const [error] = errors;
    if (error) throw new CsvSyntaxError(describe(error, this.row));
    if (length > this.maxRecordLength) throw new CsvRecordTooLongError(this.row, this.maxRecordLength);
    // Records end at LF; a CRLF's CR is left on the last cell, unless that cell was quoted.
    // Every other CR is followed by a LF, so it cannot end an unquoted cell.
    const last = cells.length - 1;
    if (cells[last]!.endsWith('\r')) cells[last] = cells[last]!.slice(0, -1);
    this.onRecord(cells);
  }
}

function describe(error: ParseError, row: number): string {
  if (error.code === 'InvalidQuotes') {
    return (
      `Invalid Closing Quote: in row ${row}, a quoted cell's closing quote is followed by more text; ` +
      'a quote inside a quoted cell is written as two ("")'
    );
  }
  return `${error.message} (row ${row})`;
}

/**
 * The first text after a closing quote in an unfinished record, which says more than its length
 * or its open quote: `"he said "hi" …` leaves a quote open to the end of the file.
 */
function misplacedQuote(errors: ParseError[], row: number): CsvSyntaxError | undefined {
  const error = errors.find((e) => e.code === 'InvalidQuotes');
  return error && new CsvSyntaxError(describe(error, row));
}
