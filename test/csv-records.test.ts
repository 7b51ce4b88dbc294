import { CsvRecordReader, CsvRecordTooLongError, CsvSyntaxError } from '../src/datasets/csv-records';

const MiB = 1024 * 1024;

/** Every record of `text`, fed to one reader in the chunks that `cuts` mark; what it threw, if anything. */
function read(text: string, cuts: number[] = [], maxRecordLength = 64 * 1024) {
  const records: (readonly string[])[] = [];
  const reader = new CsvRecordReader({ onRecord: (record) => records.push(record), maxRecordLength });
  try {
    let from = 0;
    for (const cut of [...cuts, text.length]) {
      reader.push(text.slice(from, cut));
      from = cut;
    }
    reader.end();
    return { records };
  } catch (error) {
    return { records, error };
  }
}

/** Cuts `text` at every pair of positions. */
function* everyTwoCuts(text: string): Generator<number[]> {
  for (let first = 0; first <= text.length; first++) {
    for (let second = first; second <= text.length; second++) yield [first, second];
  }
}

/** `text` cut into chunks of `size` characters. */
const chunked = (text: string, size: number) => Array.from({ length: Math.ceil(text.length / size) }, (_, i) => i * size);

describe('the CSV record reader', () => {
  const TRICKY =
    '\uFEFFinput,label\r\n' +
    '"a ""b""\r\nc",x\r\n' +
    '\r\n' +
    'z,"q"\r' +
    'he said "hi",\n' +
    ',,\r' +
    '\r' +
    '\uFEFFw,v\r\n' +
    'last,"end"';
  const RECORDS = [
    ['input', 'label'],
    ['a "b"\r\nc', 'x'],
    [''],
    ['z', 'q'],
    ['he said "hi"', ''],
    ['', '', ''],
    [''],
    ['\uFEFFw', 'v'],
    ['last', 'end'],
  ];

  it('reads RFC 4180 quoting, CRLF, LF and lone CR line ends mixed, blank and short rows, and a last line without a line end', () => {
    expect(read(TRICKY)).toEqual({ records: RECORDS });
  });

  it('reads the same records however the text is cut into chunks', () => {
    for (const cuts of everyTwoCuts(TRICKY)) expect(read(TRICKY, cuts)).toEqual({ records: RECORDS });
  });

  it.each([
    ['a LF', 'input,label\nhi,a\n'],
    ['a CRLF', 'input,label\r\nhi,a\r\n'],
    ['a CR', 'input,label\rhi,a\r'],
    ['a quoted cell and a CR', 'input,label\rhi,"a"\r'],
    ['a quoted cell and a CRLF', 'input,label\r\nhi,"a"\r\n'],
    ['a quoted cell and a blank', 'input,label\nhi,"a" '],
  ])('reads the last record, and nothing after it, from a text that ends with %s', (_name, text) => {
    expect(read(text)).toEqual({ records: [['input', 'label'], ['hi', 'a']] });
  });

  it('refuses a quote that is never closed, naming its row, after the records before it', () => {
    const text = 'input,label\nfine,a\n"open,b\nmore,c\n';
    for (const cuts of everyTwoCuts(text)) {
      const { records, error } = read(text, cuts);
      expect(records).toEqual([['input', 'label'], ['fine', 'a']]);
      expect(error).toBeInstanceOf(CsvSyntaxError);
      expect((error as Error).message).toMatch(/^Quote Not Closed: .*row 3/);
    }
  });

  it('refuses text after a closing quote, naming its row, after the records before it', () => {
    const text = 'input,label\nfine,a\n"said "hi" twice",b\nmore,c\n';
    for (const cuts of everyTwoCuts(text)) {
      const { records, error } = read(text, cuts);
      expect(records).toEqual([['input', 'label'], ['fine', 'a']]);
      expect(error).toBeInstanceOf(CsvSyntaxError);
      expect((error as Error).message).toMatch(/^Invalid Closing Quote: in row 3/);
    }
  });

  it('refuses a record longer than its limit, whether it ends in the same chunk or not', () => {
    const text = `input,label\nshort,a\n${'x'.repeat(30)},b\nok,c\n`;
    for (const cuts of everyTwoCuts(text)) {
      const { records, error } = read(text, cuts, 20);
      expect(records).toEqual([['input', 'label'], ['short', 'a']]);
      expect(error).toBeInstanceOf(CsvRecordTooLongError);
      expect(error).toMatchObject({ row: 3, limit: 20 });
    }
    // The limit counts the record's line end.
    expect(read('input,label\n1234567890123456789\n', [], 20).error).toBeUndefined();
    expect(read('input,label\n12345678901234567890\n', [], 20).error).toMatchObject({ row: 2 });
  });

  // papaparse reads an unfinished record again with each chunk: an endless one cost time growing
  // with the square of its length (2 MiB of `""` took 3 s, these 8 MiB nearly a minute).
  it('refuses an endless quoted cell after reading a few chunks of it', () => {
    const text = `input,label\n"${'""'.repeat(4 * MiB)}`;
    const started = performance.now();
    const { error } = read(text, chunked(text, 65_536));
    expect(error).toMatchObject({ row: 2, limit: 65_536 });
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('names the misplaced quote that left a long cell open, rather than its length', () => {
    const text = `input,label\n"said "hi" ${'x'.repeat(MiB)}`;
    const { error } = read(text, chunked(text, 65_536));
    expect(error).toBeInstanceOf(CsvSyntaxError);
    expect((error as Error).message).toMatch(/^Invalid Closing Quote: in row 2/);
  });

  // The hand-written reader this replaced was written because csv-parse spent ~25 µs on each row
  // whose cell count differs from the header's: tens of seconds for a megabyte of them.
  it.each([
    ['blank lines', '\n', 1024 * 1024],
    ['one-cell lines', 'x\n', 512 * 1024],
  ])('reads a megabyte of %s in a fraction of a second', (_name, line, count) => {
    const text = `input,label\n${line.repeat(count)}`;
    const started = performance.now();
    const { records, error } = read(text, chunked(text, 65_536));
    expect(error).toBeUndefined();
    expect(records).toHaveLength(count + 1);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
