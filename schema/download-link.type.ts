import { Field, ObjectType } from 'type-graphql';

@ObjectType({ description: 'A link to a model’s weights that works until it expires.' })
export class DownloadLink {
  @Field()
  url!: string;

  @Field()
  expiresAt!: Date;

  @Field({ description: 'The name the file downloads as.' })
  filename!: string;

  @Field(() => String, {
    nullable: true,
    description: 'Text models: the vocabulary and label names (JSON) that go with the weights.',
  })
  vocabularyUrl!: string | null;
}
