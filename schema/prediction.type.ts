import { Field, Float, ObjectType } from 'type-graphql';

@ObjectType({ description: 'A class and the probability the model gives it.' })
export class LabelProbability {
  @Field()
  label!: string;

  @Field(() => Float, { description: 'Softmax probability, in 0..1.' })
  probability!: number;
}

@ObjectType({ description: 'A model’s answer for one input: the most probable class, and the top classes.' })
export class Prediction {
  @Field({ description: 'The most probable class.' })
  label!: string;

  @Field(() => Float)
  probability!: number;

  @Field(() => [LabelProbability], { description: 'The topK most probable classes, most probable first.' })
  top!: LabelProbability[];
}
