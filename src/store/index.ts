import type { StoreConfig } from '../config';
import { UnreachableCaseError } from '../unreachable';
import { FsStore } from './fs.store';
import type { ObjectStore } from './object-store';
import { S3Store } from './s3.store';

export * from './object-store';
export { FsStore } from './fs.store';
export { S3Store } from './s3.store';

export function createStore(config: StoreConfig): ObjectStore {
  switch (config.kind) {
    case 'fs':
      return new FsStore(config.root);
    case 's3':
      return new S3Store(config);
    default:
      throw new UnreachableCaseError(config);
  }
}
