/** A CSV the reader cannot take apart into records (today: a quote that is never closed). */
export class CsvSyntaxError extends Error {
  override readonly name = 'CsvSyntaxError';
}

const COMMA = 0x2c;
const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;
const BOM = 0xfeff;
const BLANK_RECORD: readonly string[] = Object.freeze(['']);

const enum State {
  /** At the start of a field: a quote here opens a quoted field. */
  FieldStart,
  Unquoted,
  Quoted,
  /** A quote inside a quoted field: a second one is an escaped quote, anything else closes the field. */
  QuoteInQuoted,
}

/**
 * Splits CSV text into records of cells, fed in chunks of any size: comma-separated, RFC 4180
 * quoting (`"a, b"`, `""` for a quote, line breaks inside quotes), a leading BOM dropped. CRLF,
 * LF and lone CR all end a record, as Python's csv module reads them. Lenient where a
 * spreadsheet is: a quote inside an unquoted cell is text (`he said "hi"`), and text after a
 * closing quote joins the cell (`"a"b` is `ab`). Rows keep the cells they have; comparing them
 * with the header is the caller's business.
 *
 * Why not csv-parse: asked to accept rows whose cell count differs from the header's
 * (`relax_column_count`), it builds an `Error` for every such row, with a stack trace and a
 * JSON copy of its state, and throws it away: ~25 µs a row. A megabyte of blank lines is a
 * million such rows, and it read them one 64 KiB chunk at a time without yielding, so the event
 * loop stood still for seconds per chunk, tens of seconds in all. Here every character costs
 * the same few nanoseconds whatever the rows look like, so reading is bounded by the file's
 * size limit, and a chunk takes about a millisecond.
 */
export class CsvRecordReader {
  private state = State.FieldStart;
  /** The current field's text from earlier chunks. */
  private field = '';
  private cells: string[] = [];
  private started = false;
  /** The last chunk ended a record with CR: a LF starting the next one belongs to it. */
  private pendingLf = false;
  /** Line of the text being read (1-based), and the one where the open quote opened. */
  private line = 1;
  private quoteLine = 0;

  /** The records that this chunk completes. */
  push(chunk: string): (readonly string[])[] {
    const records: (readonly string[])[] = [];
    let i = 0;
    if (chunk.length === 0) return records;
    if (!this.started) {
      this.started = true;
      if (chunk.charCodeAt(0) === BOM) i = 1;
    }
    if (this.pendingLf) {
      this.pendingLf = false;
      if (chunk.charCodeAt(i) === LF) i++;
    }
    /** Where the current field's text in this chunk starts. */
    let start = i;
    while (i < chunk.length) {
      const c = chunk.charCodeAt(i);
      switch (this.state) {
        case State.FieldStart:
          if ((c === LF || c === CR) && this.cells.length === 0) {
            // A blank line, what a hostile file is made of: one shared record, nothing allocated.
            records.push(BLANK_RECORD);
            this.line++;
            i = this.afterLineEnd(chunk, i);
            start = i;
          } else if (c === QUOTE) {
            this.state = State.Quoted;
            this.quoteLine = this.line;
            start = ++i;
          } else {
            this.state = State.Unquoted; // and the same character again, as the field's first
          }
          continue;
        case State.Unquoted:
          if (c === COMMA) {
            this.endField(chunk.slice(start, i));
            start = ++i;
          } else if (c === LF || c === CR) {
            this.endField(chunk.slice(start, i));
            records.push(this.endRecord());
            i = this.afterLineEnd(chunk, i);
            start = i;
          } else {
            i++;
          }
          continue;
        case State.Quoted:
          if (c === QUOTE) {
            this.field += chunk.slice(start, i);
            this.state = State.QuoteInQuoted;
            start = i + 1;
          } else if (c === LF) {
            this.line++;
          }
          i++;
          continue;
        case State.QuoteInQuoted:
          if (c === QUOTE) {
            this.field += '"';
            this.state = State.Quoted;
            start = ++i;
          } else {
            // The quote closed the field; this character is read as if the field were unquoted.
            this.state = State.Unquoted;
            start = i;
          }
          continue;
      }
    }
    if (this.state === State.Unquoted || this.state === State.Quoted) this.field += chunk.slice(start);
    return records;
  }

  /** The last record, when the text does not end with a line break. */
  end(): (readonly string[])[] {
    if (this.state === State.Quoted) {
      throw new CsvSyntaxError(`Quote Not Closed: the quote opened on line ${this.quoteLine} is never closed`);
    }
    if (this.state === State.FieldStart && this.cells.length === 0) return [];
    this.endField('');
    return [this.endRecord()];
  }

  /** The index after the line end at `i`: a CR's LF is part of it, even in the next chunk. */
  private afterLineEnd(chunk: string, i: number): number {
    if (chunk.charCodeAt(i) === CR) {
      if (i + 1 === chunk.length) this.pendingLf = true;
      else if (chunk.charCodeAt(i + 1) === LF) return i + 2;
    }
    return i + 1;
  }

  private endField(rest: string): void {
    this.cells.push(this.field + rest);
    this.field = '';
    this.state = State.FieldStart;
  }

  private endRecord(): string[] {
    const record = this.cells;
    this.cells = [];
    this.line++;
    return record;
  }
}
