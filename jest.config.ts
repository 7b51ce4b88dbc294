import type { Config } from 'jest';

const config: Config = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  setupFiles: ['reflect-metadata'],
  // Each test file starts real servers; two workers match the two cores CI has.
  maxWorkers: 2,
  testTimeout: 30_000,
};

export default config;
