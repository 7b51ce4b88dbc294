import { CsvRecordReader, CsvSyntaxError } from '../src/datasets/csv-records';

/** Every record of `text`, fed to one reader in the chunks that `cuts` mark. */
function read(text: string, cuts: number[] = []): (readonly string[])[] {
  const reader = new CsvRecordReader();
  const records: (readonly string[])[] = [];
  let from = 0;
  for (const cut of [...cuts, text.length]) {
    for (const record of reader.push(text.slice(from, cut))) records.push(record);
    from = cut;
  }
  for (const record of reader.end()) records.push(record);
  return records;
}

describe('the CSV record reader', () => {
  const TRICKY = '\uFEFFinput,label\r\n"a ""b""\r\nc",x\r\n\r\n"q"z,y\rhe said "hi",\n,,\nlast,"end"';
  const RECORDS = [
    ['input', 'label'],
    ['a "b"\r\nc', 'x'],
    [''],
    ['qz', 'y'],
    ['he said "hi"', ''],
    ['', '', ''],
    ['last', 'end'],
  ];

  it('reads RFC 4180 quoting, any line end, blank and short rows, and a last line without a line end', () => {
    expect(read(TRICKY)).toEqual(RECORDS);
  });

  it('reads the same records however the text is cut into chunks', () => {
    for (let first = 0; first <= TRICKY.length; first++) {
      for (let second = first; second <= TRICKY.length; second++) {
        expect(read(TRICKY, [first, second])).toEqual(RECORDS);
      }
    }
  });

  it('refuses a quote that is never closed, naming the line it opened on', () => {
    expect(() => read('input,label\nfine,a\n"open,b\nmore,c\n')).toThrow(CsvSyntaxError);
    expect(() => read('input,label\nfine,a\n"open,b\nmore,c\n')).toThrow(/Quote Not Closed.*line 3/);
  });

  it('reads a megabyte of blank lines in a small fraction of a second', () => {
    const started = performance.now();
    expect(read(`input,label\n${'\n'.repeat(1024 * 1024)}`, [65_536, 131_072])).toHaveLength(1024 * 1024 + 1);
    expect(performance.now() - started).toBeLessThan(500);
  });
});
