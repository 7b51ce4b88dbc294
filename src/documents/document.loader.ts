import DataLoader from 'dataloader';

import type { DocumentDefinition, DocumentReader, DocumentStore } from './document.store';

/**
 * Per-request document reads: however many resolvers of one operation ask for `status.json`,
 * the store is read once. Made fresh for every request (and every subscription event) in the
 * context factory, so no request sees another's cache.
 */
export class DocumentLoader implements DocumentReader {
  private readonly loader: DataLoader<DocumentDefinition<unknown>, unknown, string>;

  constructor(private readonly documents: DocumentStore) {
    this.loader = new DataLoader(
      (definitions) => Promise.all(definitions.map((definition) => this.documents.read(definition).catch(toError))),
      { cacheKeyFn: (definition) => definition.key },
    );
  }

  read<T>(document: DocumentDefinition<T>): Promise<T> {
    return this.loader.load(document as DocumentDefinition<unknown>) as Promise<T>;
  }

  /** Drops the cached read after this request changed the document, so later fields re-read it. */
  forget(document: DocumentDefinition<unknown>): void {
    this.loader.clear(document);
  }
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
