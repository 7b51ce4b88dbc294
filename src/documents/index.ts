export * from './document.loader';
export * from './document.store';
export * from './schemas';
export * from './jobs';
