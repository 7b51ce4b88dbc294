/**
 * The one home of text preprocessing: the vocabulary is built from the training texts when a
 * job is prepared, shipped with the model as JSON, and the same `encode` turns texts into
 * token ids for training and for inference.
 */

export const PAD_TOKEN = '<pad>';
export const UNK_TOKEN = '<unk>';
export const PAD_ID = 0;
export const UNK_ID = 1;

/** Longest token sequence fed to a model; longer texts keep their first tokens. Default `256`. */
export const DEFAULT_MAX_SEQUENCE_LENGTH = 256;
/** Largest vocabulary, special tokens included; rarer words become `<unk>`. Default `20_000`. */
export const DEFAULT_MAX_VOCABULARY = 20_000;

const TOKEN = /[\p{L}\p{M}\p{N}]+(?:['’][\p{L}\p{M}]+)*|[!?]/gu;

/** NFKC-normalised, lower-cased words, numbers, and `!`/`?` (which carry sentiment). */
export function tokenize(text: string): string[] {
  return text.normalize('NFKC').toLowerCase().replace(/’/g, "'").match(TOKEN) ?? [];
}

export class Vocabulary {
  private readonly ids: Map<string, number>;

  /** `tokens[id]` is the token with that id; ids 0 and 1 are `<pad>` and `<unk>`. */
  constructor(readonly tokens: readonly string[]) {
    if (tokens[PAD_ID] !== PAD_TOKEN || tokens[UNK_ID] !== UNK_TOKEN) {
      throw new Error('A vocabulary starts with <pad> and <unk>');
    }
    this.ids = new Map(tokens.map((token, id) => [token, id]));
  }

  /** Most frequent tokens first (ties alphabetical, so the same texts give the same ids). */
  static build(texts: Iterable<string>, maxSize = DEFAULT_MAX_VOCABULARY): Vocabulary {
    const counts = new Map<string, number>();
    for (const text of texts) {
      for (const token of tokenize(text)) counts.set(token, (counts.get(token) ?? 0) + 1);
    }
    const ranked = [...counts.entries()]
      .sort(([a, countA], [b, countB]) => countB - countA || (a < b ? -1 : a > b ? 1 : 0))
      .slice(0, Math.max(0, maxSize - 2))
      .map(([token]) => token);
    return new Vocabulary([PAD_TOKEN, UNK_TOKEN, ...ranked]);
  }

  get size(): number {
    return this.tokens.length;
  }

  /** Token ids of `text`, at most `maxLength` of them and never none (an empty text is `<unk>`). */
  encode(text: string, maxLength = DEFAULT_MAX_SEQUENCE_LENGTH): number[] {
    const ids = tokenize(text)
      .slice(0, maxLength)
      .map((token) => this.ids.get(token) ?? UNK_ID);
    return ids.length > 0 ? ids : [UNK_ID];
  }
}
