import type { NonEmptyArray } from 'type-graphql';

import { ModelResolver } from './model.resolver';
import { PlatformResolver } from './platform.resolver';
import { PredictionResolver } from './prediction.resolver';
import { TrainingResolver } from './training.resolver';

export const resolvers: NonEmptyArray<Function> = [PlatformResolver, ModelResolver, TrainingResolver, PredictionResolver];
export * from './context';
