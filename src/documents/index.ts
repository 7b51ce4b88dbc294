export * from './document.loader';
export * from './document.store';
export * from './schemas';
