import type { FileUpload } from 'graphql-upload-minimal';
import { Arg, Ctx, ID, Int, Mutation, Resolver } from 'type-graphql';

import { Prediction } from '../schema/prediction.type';
import { Upload } from '../schema/scalars';
import type { Context } from './context';

const TOP_K = { nullable: true, description: 'How many classes `top` lists (1 to the number of classes; default 5).' };

@Resolver()
export class PredictionResolver {
  @Mutation(() => Prediction, { nullable: true, description: 'Classifies one image, sent as an upload or as base64.' })
  async classifyImage(
    @Arg('token', () => ID) token: string,
    @Arg('image', () => Upload, { nullable: true }) image: Promise<FileUpload> | null,
    @Arg('imageBase64', () => String, { nullable: true }) imageBase64: string | null,
    @Arg('topK', () => Int, TOP_K) topK: number | null,
    @Ctx() { services, documents }: Context,
  ): Promise<Prediction> {
    return services.predictions.classifyImage(token, { image, imageBase64 }, topK ?? undefined, documents);
  }

  @Mutation(() => [Prediction], { nullable: true, description: 'Classifies several images, in order.' })
  async classifyImages(
    @Arg('token', () => ID) token: string,
    @Arg('images', () => [Upload]) images: Promise<FileUpload>[],
    @Arg('topK', () => Int, TOP_K) topK: number | null,
    @Ctx() { services, documents }: Context,
  ): Promise<Prediction[]> {
    return services.predictions.classifyImages(token, images, topK ?? undefined, documents);
  }

  @Mutation(() => Prediction, { nullable: true, description: 'Classifies one text.' })
  async classifyText(
    @Arg('token', () => ID) token: string,
    @Arg('text') text: string,
    @Arg('topK', () => Int, TOP_K) topK: number | null,
    @Ctx() { services, documents }: Context,
  ): Promise<Prediction> {
    return services.predictions.classifyText(token, text, topK ?? undefined, documents);
  }

  @Mutation(() => [Prediction], { nullable: true, description: 'Classifies several texts, in order.' })
  async classifyTexts(
    @Arg('token', () => ID) token: string,
    @Arg('texts', () => [String]) texts: string[],
    @Arg('topK', () => Int, TOP_K) topK: number | null,
    @Ctx() { services, documents }: Context,
  ): Promise<Prediction[]> {
    return services.predictions.classifyTexts(token, texts, topK ?? undefined, documents);
  }
}
