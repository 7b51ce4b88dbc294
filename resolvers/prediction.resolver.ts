import type { FileUpload } from 'graphql-upload-minimal';
import { GraphQLUpload } from 'graphql-upload-minimal';
import { Arg, Ctx, ID, Int, Mutation, Resolver } from 'type-graphql';

import { Prediction } from '../schema/prediction.type';
import { BadUserInputError } from '../src/errors';
import type { Context } from './context';

const TOP_K = { nullable: true, description: 'How many classes `top` lists (1 to the number of classes; default 5).' };

@Resolver()
export class PredictionResolver {
  @Mutation(() => Prediction, { description: 'Classifies one image, sent as an upload or as base64.' })
  async classifyImage(
    @Arg('token', () => ID) token: string,
    @Arg('image', () => GraphQLUpload, { nullable: true }) image: Promise<FileUpload> | null,
    @Arg('imageBase64', () => String, { nullable: true }) imageBase64: string | null,
    @Arg('topK', () => Int, TOP_K) topK: number | null,
    @Ctx() { services, documents }: Context,
  ): Promise<Prediction> {
    if (Boolean(image) === Boolean(imageBase64)) {
      throw new BadUserInputError('Send the image either as "image" or as "imageBase64".', 'image');
    }
    const input = image ? { upload: image } : { base64: imageBase64 as string };
    const [prediction] = await services.predictions.classifyImages(token, [input], topK ?? undefined, documents);
    return prediction as Prediction;
  }

  @Mutation(() => [Prediction], { description: 'Classifies several images, in order.' })
  async classifyImages(
    @Arg('token', () => ID) token: string,
    @Arg('images', () => [GraphQLUpload]) images: Promise<FileUpload>[],
    @Arg('topK', () => Int, TOP_K) topK: number | null,
    @Ctx() { services, documents }: Context,
  ): Promise<Prediction[]> {
    const inputs = images.map((upload) => ({ upload }));
    return services.predictions.classifyImages(token, inputs, topK ?? undefined, documents);
  }

  @Mutation(() => Prediction, { description: 'Classifies one text.' })
  async classifyText(
    @Arg('token', () => ID) token: string,
    @Arg('text') text: string,
    @Arg('topK', () => Int, TOP_K) topK: number | null,
    @Ctx() { services, documents }: Context,
  ): Promise<Prediction> {
    const [prediction] = await services.predictions.classifyTexts(token, [text], topK ?? undefined, documents);
    return prediction as Prediction;
  }

  @Mutation(() => [Prediction], { description: 'Classifies several texts, in order.' })
  async classifyTexts(
    @Arg('token', () => ID) token: string,
    @Arg('texts', () => [String]) texts: string[],
    @Arg('topK', () => Int, TOP_K) topK: number | null,
    @Ctx() { services, documents }: Context,
  ): Promise<Prediction[]> {
    return services.predictions.classifyTexts(token, texts, topK ?? undefined, documents);
  }
}
