import { GraphQLError } from 'graphql';
import { BadUserInputError, ErrorCode } from '../src/errors';
import { formatError as format } from '../src/server/format-error';

describe('error formatting', () => {
  const asApolloWould = (error: GraphQLError) => format(error.toJSON(), error);

  it('masks an unexpected error as INTERNAL_SERVER_ERROR without its message', () => {
    const thrown = new GraphQLError('ECONNREFUSED 10.0.0.7:9000 (s3 secret bucket)', {
      originalError: new Error('ECONNREFUSED 10.0.0.7:9000 (s3 secret bucket)'),
      path: ['status'],
    });
    const formatted = asApolloWould(thrown);
    expect(formatted).toEqual({
      message: 'Internal server error',
      path: ['status'],
      extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
    });
  });

  it('masks a GraphQLError a library raised with an unknown code', () => {
    const formatted = asApolloWould(new GraphQLError('driver says no', { extensions: { code: 'DRIVER_FAILURE' } }));
    expect(formatted.extensions?.code).toBe(ErrorCode.INTERNAL_SERVER_ERROR);
    expect(formatted.message).toBe('Internal server error');
  });

  it('passes the platform own errors through with their code and field', () => {
    const thrown = new GraphQLError('wrapped', {
      originalError: new BadUserInputError('batchSize must be between 1 and 32', 'batchSize'),
      path: ['submitTraining'],
    });
    const formatted = format({ message: 'batchSize must be between 1 and 32', extensions: { code: 'BAD_USER_INPUT', field: 'batchSize' } }, thrown);
    expect(formatted.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'batchSize' });
  });
});
