import type { NonEmptyArray } from 'type-graphql';

import { ModelResolver } from './model.resolver';
import { PlatformResolver } from './platform.resolver';

export const resolvers: NonEmptyArray<Function> = [PlatformResolver, ModelResolver];
export * from './context';
